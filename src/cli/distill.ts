/**
 * `echoatt distill`: distill a shared-attention student from its teacher (EchoAtt's "adjust" step). Progress on
 * stderr; with `--json`, the result on stdout. Ctrl-C saves a checkpoint and exits (code 130); `--resume` continues.
 */
import type { Command } from 'commander';
import { distill, type DistillProgress, type DistillResult, type TrainSelection } from '../distill/index.js';
import { DEFAULT_LOSS } from '../distill/loss.js';
import { OptionError } from '../errors.js';
import { DEFAULT_MODEL } from './defaults.js';
import { backendFromOptions, floatOption, intOption, THREADS_FLAG, topPOption } from './options.js';
import { ProgressBar } from './progress.js';
import { OutputFolder } from '../io/output.js';

interface DistillFlags {
  teacher: string;
  student?: string;
  plan?: string;
  tokenizer?: string;
  data?: string[];
  field?: string;
  lines?: boolean;
  spread?: boolean;
  generate?: number;
  genLength: number;
  genTemperature: number;
  genTopP: number;
  maxDataTokens?: number;
  steps: number;
  out: string;
  seqLen: number;
  batch: number;
  accum: number;
  lr: number;
  minLr?: number;
  warmup?: number;
  weightDecay: number;
  clip: number;
  alpha: number;
  beta: number;
  temperature: number;
  gamma: number;
  hiddenLayers?: number[];
  train: string;
  freezeEmbeddings?: boolean;
  checkpointEvery: number;
  resume?: boolean;
  force?: boolean;
  seed: number;
  teacherCache?: string;
  eval?: string[];
  evalGenerate?: number;
  evalMaxSeqs: number;
  backend?: string;
  threads?: number;
  plot: boolean;
  json?: boolean;
  quiet?: boolean;
}

function layerList(flag: string) {
  return (v: string): number[] => {
    const parts = v.split(',').map((s) => s.trim()).filter(Boolean);
    if (!parts.length || !parts.every((s) => /^\d+$/.test(s))) throw new OptionError(flag, `expected layer indices like '2,3', got '${v}'`);
    return parts.map(Number);
  };
}

function trainSelection(v: string): TrainSelection {
  if (v === 'all' || v === 'shared' || v === 'groups') return v;
  return layerList('--train')(v);
}

const collect = (v: string, prev: string[] | undefined): string[] => [...(prev ?? []), v];

export function registerDistill(program: Command): void {
  distillOptions(program.command('distill')).action(runDistill);
}

/** The flags of `echoatt distill` (each parsed and checked as it is read). */
function distillOptions(cmd: Command): Command {
  return cmd
    .description('distill a shared-attention student from its teacher (CE + temperature KL + hidden-state MSE, AdamW)')
    .option('--teacher <path>', 'teacher: llama2.c .bin or Hugging Face directory', DEFAULT_MODEL)
    .option('--student <path>', 'student saved by `echoatt share` (Hugging Face directory)')
    .option('--plan <file>', 'or build the student from the teacher with this plan.json')
    .option('--tokenizer <path>', 'tokenizer (default: the teacher\'s)')
    .option('--data <path>', 'training text: .txt, folder of .txt, .jsonl (--field), .parquet (--field), or jsonl of {"ids":[...]}; repeatable', collect)
    .option('--field <name>', 'jsonl field / parquet column with the text (default text)')
    .option('--lines', 'text data is one paragraph per line: encode it line by line, as such corpora are tokenized for training')
    .option('--spread', 'take text data at evenly spaced paragraphs over each whole source instead of from its start')
    .option('--generate <N>', 'also train on N samples drawn from the teacher first', intOption('--generate', 1))
    .option('--gen-length <L>', 'max new tokens per teacher sample', intOption('--gen-length', 1), 256)
    .option('--gen-temperature <t>', 'teacher sampling temperature', floatOption('--gen-temperature', 0), 1)
    .option('--gen-top-p <p>', 'teacher sampling nucleus (1 = off)', topPOption('--gen-top-p'), 1)
    .option('--max-data-tokens <N>', 'stop reading text data after N tokens (default: one epoch of --steps)', intOption('--max-data-tokens', 1))
    .requiredOption('--steps <N>', 'optimizer steps', intOption('--steps', 1))
    .requiredOption('-o, --out <dir>', 'output folder (student/, checkpoint, metrics.jsonl, loss.svg/png, summary.json)')
    .option('--seq-len <T>', 'tokens per training sequence', intOption('--seq-len', 2), 128)
    .option('--batch <B>', 'sequences per micro-batch', intOption('--batch', 1), 8)
    .option('--accum <K>', 'micro-batches per optimizer step (gradient accumulation)', intOption('--accum', 1), 1)
    .option('--lr <x>', 'peak learning rate', floatOption('--lr', 0), 1e-3)
    .option('--min-lr <x>', 'final learning rate of the cosine (default lr/10)', floatOption('--min-lr', 0))
    .option('--warmup <N>', 'linear warmup steps (default 5% of --steps)', intOption('--warmup', 0))
    .option('--weight-decay <x>', 'AdamW decoupled weight decay (matrices only)', floatOption('--weight-decay', 0), 0.01)
    .option('--clip <x>', 'global gradient-norm clip (0 = off)', floatOption('--clip', 0), 1)
    .option('--alpha <x>', 'weight of CE on the data labels', floatOption('--alpha', 0), DEFAULT_LOSS.alpha)
    .option('--beta <x>', 'weight of T²·KL(teacher ‖ student)', floatOption('--beta', 0), DEFAULT_LOSS.beta)
    .option('--temperature <T>', 'KL softmax temperature', floatOption('--temperature', 0), DEFAULT_LOSS.temperature)
    .option('--gamma <x>', 'weight of the hidden-state MSE', floatOption('--gamma', 0), DEFAULT_LOSS.gamma)
    .option('--hidden-layers <list>', 'layers whose outputs the MSE matches (default: the shared layers)', layerList('--hidden-layers'))
    .option('--train <what>', 'all | shared (only shared layers) | groups (anchors + shared) | layer list like 2,3', 'all')
    .option('--freeze-embeddings', 'keep the token embedding and LM head fixed')
    .option('--checkpoint-every <K>', 'checkpoint every K steps', intOption('--checkpoint-every', 1), 100)
    .option('--resume', 'continue from <out>/checkpoint.safetensors')
    .option('--force', 'replace an earlier distill run in --out (only the files it wrote); with --resume: break a stale lock')
    .option('--seed <n>', 'seed of the data shuffle and teacher sampling', intOption('--seed'), 1)
    .option('--teacher-cache <dir>', 'cache teacher logits on disk (for several epochs)')
    .option('--eval <path>', 'held-out text to evaluate teacher and student on before and after; repeatable', collect)
    .option('--eval-generate <N>', 'also evaluate on N held-out teacher samples', intOption('--eval-generate', 1))
    .option('--eval-max-seqs <N>', 'cap on sequences per eval set', intOption('--eval-max-seqs', 1), 64)
    .option('--backend <name>', 'native | reference')
    .option(...THREADS_FLAG)
    .option('--no-plot', 'skip loss.svg / loss.png')
    .option('--json', 'print the result as JSON on stdout')
    .option('--quiet', 'no progress output');
}

/** Progress bars on stderr for the generate / eval / train phases. */
function progressPrinter(quiet: boolean | undefined): { onProgress: (p: DistillProgress) => void; bar: () => ProgressBar | undefined } {
  let bar: ProgressBar | undefined;
  let genBar: ProgressBar | undefined;
  const onProgress = (p: DistillProgress) => {
    if (quiet) return;
    if (p.phase === 'generate') {
      genBar ??= new ProgressBar('teacher samples', p.total);
      genBar.update(p.done);
      if (p.done === p.total) genBar.finish();
    } else if (p.phase === 'eval') {
      process.stderr.write(`evaluating on ${p.what}\n`);
    } else {
      bar ??= new ProgressBar('distill', p.steps - p.startStep);
      bar.update(p.step - p.startStep, `step ${p.step}/${p.steps} loss ${p.loss.toFixed(4)} (CE ${p.ce.toFixed(3)}, KL ${p.kl.toFixed(4)}) ` +
        `lr ${p.lr.toExponential(2)} ${Math.round(p.tokensPerSec)} tok/s`);
    }
  };
  return { onProgress, bar: () => bar };
}

async function runDistill(f: DistillFlags): Promise<void> {
  const backend = backendFromOptions(f);
  const out = OutputFolder.open(f.out, {
    command: 'distill', resume: f.resume, force: f.force, resumable: true,
    inputs: [f.teacher, f.student, f.plan, f.tokenizer, ...(f.data ?? []), ...(f.eval ?? [])],
  });
  const { onProgress, bar: progressBar } = progressPrinter(f.quiet);
  const res = await distill({
    teacher: f.teacher, student: f.student, plan: f.plan, tokenizer: f.tokenizer, data: f.data, dataField: f.field,
    textEncoding: f.lines ? 'lines' : 'joined', spreadData: f.spread,
    generate: f.generate ? { count: f.generate, length: f.genLength, temperature: f.genTemperature, topP: f.genTopP } : undefined,
    maxDataTokens: f.maxDataTokens, steps: f.steps, out: out.dir, seqLen: f.seqLen, batch: f.batch, accum: f.accum,
    lr: f.lr, minLr: f.minLr, warmup: f.warmup, weightDecay: f.weightDecay, clip: f.clip,
    loss: { alpha: f.alpha, beta: f.beta, temperature: f.temperature, gamma: f.gamma }, hiddenLayers: f.hiddenLayers,
    train: trainSelection(f.train), freezeEmbeddings: f.freezeEmbeddings, checkpointEvery: f.checkpointEvery,
    resume: f.resume, seed: f.seed, teacherCache: f.teacherCache, eval: f.eval, evalGenerate: f.evalGenerate,
    evalMaxSeqs: f.evalMaxSeqs, backend, plot: f.plot, handleSigint: true, onProgress,
  });
  out.close();
  const bar = progressBar();
  if (res.interrupted) {
    bar?.finish('interrupted');
    process.stderr.write(res.step > 0
      ? `interrupted at step ${res.step}/${res.steps}; checkpoint saved to ${res.checkpoint}; continue with --resume\n`
      : 'interrupted before the first step; nothing to save\n');
    if (f.json) process.stdout.write(`${JSON.stringify(res, null, 2)}\n`);
    process.exitCode = 130;
    return;
  }
  bar?.finish(`loss ${res.lastLoss?.toFixed(4) ?? '-'}`);
  if (f.json) process.stdout.write(`${JSON.stringify(res, null, 2)}\n`);
  else process.stdout.write(resultText(res));
}

/** The human-readable result: where the student is, and held-out losses before and after. */
function resultText(res: DistillResult): string {
  const lines = [`student saved to ${res.studentDir} (${res.step} steps, ${res.trainableParams} trainable params, ${Math.round(res.tokensPerSec)} tok/s)`];
  for (const a of res.evalAfter ?? []) {
    const b = res.evalBefore?.find((x) => x.name === a.name);
    const gap = b ? (b.student.loss - a.student.loss) / (b.student.loss - b.teacher.loss) : NaN;
    lines.push(`  ${a.name}: teacher ${a.teacher.loss.toFixed(4)} | student before ${b ? b.student.loss.toFixed(4) : '-'} → after ${a.student.loss.toFixed(4)} ` +
      `(ppl ${b ? b.student.perplexity.toFixed(2) : '-'} → ${a.student.perplexity.toFixed(2)}, teacher ${a.teacher.perplexity.toFixed(2)}; gap closed ${(100 * gap).toFixed(1)}%)`);
  }
  lines.push(`metrics: ${res.metricsFile}${res.plotFiles ? `; loss curve: ${res.plotFiles.svg}, ${res.plotFiles.png}` : ''}`);
  return `${lines.join('\n')}\n`;
}
