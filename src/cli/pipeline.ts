/** `echoatt pipeline`: analyze → plan → share → distill → evaluate → report, resumable, in one command. */
import type { Command } from 'commander';
import { runPipeline } from '../pipeline/pipeline.js';
import type { StrategyName } from '../analysis/strategies.js';
import { ProgressBar } from './progress.js';
import { floatOption, intOption, THREADS_FLAG } from './options.js';
import type { AlignMode } from '../analysis/search.js';
import type { TextEncoding } from '../tokenizer/lines.js';

interface PipelineFlags {
  model?: string;
  data?: string;
  out: string;
  budget: number;
  strategy: string;
  align: string;
  seqs: number;
  seqLen: number;
  distillSteps?: number;
  distillData?: string;
  distillGenerate: number;
  distillBatch?: number;
  distillSeqLen?: number;
  distillLr?: number;
  tasks?: string;
  limit?: number;
  ppl?: string;
  pplWindows?: number;
  textEncoding?: string;
  threads?: number;
  force?: boolean;
  resume?: boolean;
  json?: boolean;
}

export function registerPipeline(program: Command): void {
  program
    .command('pipeline')
    .description('run the whole method: analyze + measured plan search → share → distill → evaluate on held-out text → report.html')
    .requiredOption('-o, --out <dir>', 'output directory (new or empty; an earlier run there needs --resume or --force)')
    .option('-m, --model <path>', 'teacher model (default: gutenberg16 from ../shared; stories260K is ../shared/models/stories260K/stories260K.bin)')
    .option('-d, --data <path>', 'calibration text for the analysis and the search (default: samples of the teacher itself)')
    .option('--budget <f>', 'fraction of attention FLOPs the plan removes', floatOption('--budget', 0), 0.25)
    .option('--strategy <name>', 'plan strategy: search (measured) | budget | echoatt | span', 'search')
    .option('--align <mode>', 'head alignment of the searched plan: cosine | none', 'cosine')
    .option('--seqs <n>', 'calibration sequences', intOption('--seqs', 1), 16)
    .option('--seq-len <n>', 'calibration tokens per sequence', intOption('--seq-len', 2), 256)
    .option('--distill-steps <n>', 'distillation steps (0 skips distillation)', intOption('--distill-steps'))
    .option('--distill-data <path>', 'distillation text (default: train-sample.txt beside the model, else teacher samples)')
    .option('--distill-generate <n>', 'teacher samples to generate when there is no distillation text', intOption('--distill-generate', 1), 160)
    .option('--distill-batch <n>', 'distillation batch (sequences)', intOption('--distill-batch', 1))
    .option('--distill-seq-len <n>', 'distillation sequence length', intOption('--distill-seq-len', 2))
    .option('--distill-lr <x>', 'distillation peak learning rate', floatOption('--distill-lr', 0))
    .option('--tasks <list>', 'comma-separated zero-shot tasks (empty: none)')
    .option('--limit <n>', 'items per task', intOption('--limit', 1))
    .option('--ppl <file>', 'held-out perplexity text (default: heldout.txt beside the model, else WikiText-2 test)')
    .option('--ppl-windows <n>', 'held-out windows', intOption('--ppl-windows', 1))
    .option('--text-encoding <how>', 'text files: lines (one paragraph per line, encoded line by line) | joined (default: lines when the model folder holds heldout.txt / train-sample.txt)')
    .option(...THREADS_FLAG)
    .option('--resume', 'continue an interrupted run in --out with the same settings (finished stages are reused)')
    .option('--force', 'replace a previous run in --out (only the files it wrote); with --resume: break a stale lock')
    .option('--json', 'print summary.json to stdout')
    .action(runPipelineCommand);
}

async function runPipelineCommand(f: PipelineFlags): Promise<void> {
  let bar: ProgressBar | undefined;
  let barLabel = '';
  const t0 = performance.now();
  const summary = await runPipeline({
    out: f.out, model: f.model, data: f.data, budget: f.budget, strategy: f.strategy as StrategyName, align: f.align as AlignMode,
    analyzeSeqs: f.seqs, analyzeSeqLen: f.seqLen, distillSteps: f.distillSteps, distillData: f.distillData, distillGenerate: f.distillGenerate,
    distillBatch: f.distillBatch, distillSeqLen: f.distillSeqLen, distillLr: f.distillLr,
    tasks: f.tasks?.split(',').map((t) => t.trim()).filter(Boolean), limit: f.limit, ppl: f.ppl, pplWindows: f.pplWindows, textEncoding: f.textEncoding as TextEncoding | undefined, threads: f.threads, force: f.force, resume: f.resume,
    onStage: (stage, state, detail) => {
      bar?.finish();
      bar = undefined;
      const what = state === 'skip' ? 'already done, reused' : state === 'start' ? 'running' : 'done';
      if (state !== 'done') process.stderr.write(`[pipeline] ${stage}: ${what}${detail ? ` (${detail})` : ''}\n`);
    },
    onProgress: (label, done, total) => {
      if (!bar || barLabel !== label) {
        bar?.finish();
        bar = new ProgressBar(label, total);
        barLabel = label;
      }
      bar.total = total;
      bar.update(done);
    },
  });
  bar?.finish();
  if (f.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  else {
    process.stdout.write(`${summary.headline}\nreport: ${summary.files!.html}\n        ${summary.files!.md}\nsummary: ${summary.files!.json}\n` +
      `finished in ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
  }
}
