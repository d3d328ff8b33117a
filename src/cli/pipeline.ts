/** `echoatt pipeline`: analyze → plan → share → distill → evaluate → report, resumable, in one command. */
import type { Command } from 'commander';
import { runPipeline } from '../pipeline/pipeline.js';
import type { StrategyName } from '../analysis/strategies.js';
import { ProgressBar } from './progress.js';
import { DEFAULT_MODEL } from './defaults.js';
import { floatOption, intOption } from './options.js';

interface PipelineFlags {
  model: string;
  data?: string;
  out: string;
  budget: number;
  strategy: string;
  seqs: number;
  seqLen: number;
  distillSteps: number;
  distillData?: string;
  distillGenerate: number;
  distillBatch: number;
  distillSeqLen: number;
  tasks?: string;
  limit: number;
  ppl?: string;
  pplTokens: number;
  force?: boolean;
  json?: boolean;
}

export function registerPipeline(program: Command): void {
  program
    .command('pipeline')
    .description('run the whole method: analyze → plan → share → distill → evaluate → report.html')
    .requiredOption('-o, --out <dir>', 'output directory (an interrupted run there is resumed)')
    .option('-m, --model <path>', 'teacher model', DEFAULT_MODEL)
    .option('-d, --data <path>', 'calibration text for the analysis (default: the Gutenberg corpus)')
    .option('--budget <f>', 'fraction of attention FLOPs to remove', floatOption('--budget', 0), 0.3)
    .option('--strategy <name>', 'plan strategy: budget | echoatt | span', 'budget')
    .option('--seqs <n>', 'calibration sequences', intOption('--seqs', 1), 16)
    .option('--seq-len <n>', 'calibration tokens per sequence', intOption('--seq-len', 2), 256)
    .option('--distill-steps <n>', 'distillation steps (0 skips distillation)', intOption('--distill-steps'), 150)
    .option('--distill-data <path>', 'distillation text (default: teacher-generated samples)')
    .option('--distill-generate <n>', 'teacher samples to generate for distillation', intOption('--distill-generate', 1), 160)
    .option('--distill-batch <n>', 'distillation batch (sequences)', intOption('--distill-batch', 1), 8)
    .option('--distill-seq-len <n>', 'distillation sequence length', intOption('--distill-seq-len', 2), 128)
    .option('--tasks <list>', 'comma-separated zero-shot tasks (default: all built-in)')
    .option('--limit <n>', 'items per task', intOption('--limit', 1), 100)
    .option('--ppl <file>', 'perplexity text (default: WikiText-2 test)')
    .option('--ppl-tokens <n>', 'cap on perplexity tokens', intOption('--ppl-tokens', 2), 16384)
    .option('--force', 'replace a previous run in --out')
    .option('--json', 'print summary.json to stdout')
    .action(async (f: PipelineFlags) => {
      let bar: ProgressBar | undefined;
      let barLabel = '';
      const t0 = performance.now();
      const summary = await runPipeline({
        out: f.out,
        model: f.model,
        data: f.data,
        budget: f.budget,
        strategy: f.strategy as StrategyName,
        analyzeSeqs: f.seqs,
        analyzeSeqLen: f.seqLen,
        distillSteps: f.distillSteps,
        distillData: f.distillData,
        distillGenerate: f.distillGenerate,
        distillBatch: f.distillBatch,
        distillSeqLen: f.distillSeqLen,
        tasks: f.tasks?.split(',').map((t) => t.trim()).filter(Boolean),
        limit: f.limit,
        ppl: f.ppl,
        pplTokens: f.pplTokens,
        force: f.force,
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
        const groups = summary.plan.groups.filter((g) => g.shared.length).map((g) => `${g.anchor} ← [${g.shared.join(', ')}]`).join(', ');
        process.stdout.write(
          `plan: ${groups}\nreport: ${summary.files.html}\n        ${summary.files.md}\nsummary: ${summary.files.json}\n` +
            `finished in ${((performance.now() - t0) / 1000).toFixed(0)} s\n`,
        );
      }
    });
}
