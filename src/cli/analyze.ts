/**
 * `echoatt analyze`: which layers attend alike, and sharing plans. Writes similarity.json, heatmaps (SVG + PNG),
 * plan-<strategy>.json and report.md into `--out`; progress with ETA on stderr; `--json` prints a summary on stdout.
 */
import type { Command } from 'commander';
import { loadModel, modelName } from '../models/load.js';
import { analyze, planNames, DEFAULT_BUDGET, DEFAULT_CRITICALITY_SEQS, DEFAULT_SEARCH_SEQS, DEFAULT_SEQS, DEFAULT_SEQ_LEN } from '../analysis/analyze.js';
import type { AlignMode } from '../analysis/search.js';
import { analysisSummary, writeReport } from '../analysis/report.js';
import { DEFAULT_THRESHOLD, type BudgetResource } from '../analysis/strategies.js';
import { fontInfo } from '../report/plot.js';
import { OptionError } from '../errors.js';
import { DEFAULT_MODEL } from './defaults.js';
import { backendFromOptions, floatOption, intOption, THREADS_FLAG } from './options.js';
import { ProgressBar } from './progress.js';
import { OutputFolder } from '../io/output.js';

interface AnalyzeFlags {
  model: string;
  tokenizer?: string;
  data?: string;
  field?: string;
  lines?: boolean;
  seqs: number;
  seqLen?: number;
  threshold?: number;
  k?: number;
  spanLength?: number;
  budget: number;
  budgetResource: string;
  criticalitySeqs: number;
  maxMapMb?: number;
  search: boolean;
  align: string;
  searchSeqs?: number;
  beam?: number;
  candidates?: number;
  maxShared?: number;
  seed: number;
  out: string;
  force?: boolean;
  json?: boolean;
  quiet?: boolean;
  backend?: string;
  threads?: number;
}

function alignMode(v: string): AlignMode {
  if (v !== 'cosine' && v !== 'none') throw new OptionError('--align', `expected cosine or none, got '${v}'`);
  return v;
}

function fraction(flag: string) {
  return (v: string): number => {
    const n = floatOption(flag, 0)(v);
    if (n > 1) throw new OptionError(flag, `expected a fraction in [0, 1], got '${v}'`);
    return n;
  };
}

export function registerAnalyze(program: Command): void {
  analyzeOptions(program.command('analyze')).action(runAnalyze);
}

function analyzeOptions(cmd: Command): Command {
  return cmd
    .description('measure which layers attend alike (cosine, Jensen–Shannon), layer criticality, and propose sharing plans')
    .option('-m, --model <path>', 'model: llama2.c .bin file or Hugging Face directory', DEFAULT_MODEL)
    .option('--tokenizer <path>', 'tokenizer.bin / tokenizer.json (default: found next to the model)')
    .option('-d, --data <path>', 'calibration text: file, folder of .txt, .jsonl or .parquet, sampled from end to end (default: samples of the model itself)')
    .option('--seed <n>', 'seed of the default teacher samples', intOption('--seed'), 1)
    .option('--lines', 'calibration text is one paragraph per line: encode it line by line')
    .option('--field <name>', 'text field of a .jsonl file / column of a .parquet file (default: text)')
    .option('-n, --seqs <N>', 'number of calibration sequences', intOption('--seqs', 1), DEFAULT_SEQS)
    .option('-T, --seq-len <T>', `tokens per sequence, BOS included (default: ${DEFAULT_SEQ_LEN} or the model's max positions)`, intOption('--seq-len', 2))
    .option('--threshold <x>', `cosine threshold of the echoatt and span strategies (default ${DEFAULT_THRESHOLD})`, floatOption('--threshold'))
    .option('-k, --k <k>', 'echoatt: share exactly k inner layers (best blocks) instead of using the threshold', intOption('--k', 0))
    .option('--span-length <n>', 'span: share exactly n consecutive inner layers instead of using the threshold', intOption('--span-length', 0))
    .option('--budget <f>', 'budget: fraction of the resource to remove', fraction('--budget'), DEFAULT_BUDGET)
    .option('--budget-resource <r>', 'budget: flops | kcache | params', 'flops')
    .option('--criticality-seqs <n>', `sequences for the criticality measurement (0 = skip; default min(N, ${DEFAULT_CRITICALITY_SEQS}))`, intOption('--criticality-seqs', 0), DEFAULT_CRITICALITY_SEQS)
    .option('--max-map-mb <MiB>', 'memory budget for held attention maps (more layers per forward pass)', floatOption('--max-map-mb', 1))
    .option('--no-search', 'skip the measured plan search (plan-search.json)')
    .option('--align <mode>', 'search: head alignment, cosine | none', 'cosine')
    .option('--search-seqs <n>', `search: calibration sequences it measures on (default ${DEFAULT_SEARCH_SEQS})`, intOption('--search-seqs', 1))
    .option('--beam <n>', 'search: plans kept per step (default 2)', intOption('--beam', 1))
    .option('--candidates <n>', 'search: moves tried per kept plan and step (default 8)', intOption('--candidates', 1))
    .option('--max-shared <k>', 'search: go to k shared layers and choose there, instead of stopping at the budget', intOption('--max-shared', 1))
    .requiredOption('-o, --out <dir>', 'output folder')
    .option('--force', 'replace an earlier analyze output in --out (only the files it wrote)')
    .option('--json', 'print a JSON summary on stdout')
    .option('-q, --quiet', 'no progress bar')
    .option('--backend <name>', 'native | reference')
    .option(...THREADS_FLAG);
}

async function runAnalyze(f: AnalyzeFlags): Promise<void> {
  if (!['flops', 'kcache', 'params'].includes(f.budgetResource)) {
    throw new OptionError('--budget-resource', `expected flops, kcache or params, got '${f.budgetResource}'`);
  }
  const backend = backendFromOptions(f);
  const out = OutputFolder.open(f.out, { command: 'analyze', force: f.force, inputs: [f.model, f.tokenizer, f.data] });
  const { model, tokenizer } = loadModel(f.model, { tokenizer: f.tokenizer, backend });
  const name = modelName(f.model);
  let bar: ProgressBar | undefined;
  const result = await analyze(model, tokenizer, {
    data: f.data,
    field: f.field,
    encoding: f.lines ? 'lines' : 'joined',
    seqs: f.seqs,
    seqLen: f.seqLen,
    threshold: f.threshold,
    k: f.k,
    spanLength: f.spanLength,
    budget: f.budget,
    budgetResource: f.budgetResource as BudgetResource,
    criticalitySeqs: f.criticalitySeqs,
    maxMapBytes: f.maxMapMb !== undefined ? f.maxMapMb * 1048576 : undefined,
    seed: f.seed,
    search: f.search ? { align: alignMode(f.align), seqs: f.searchSeqs, beam: f.beam, candidates: f.candidates, maxShared: f.maxShared } : false,
    modelName: name,
    onProgress: (p) => {
      bar ??= new ProgressBar('analyze', p.total, { silent: f.quiet });
      bar.update(p.done, `${p.phase} · ${p.tokens} tokens`);
    },
  });
  bar?.finish('writing report');
  const command = `echoatt analyze ${process.argv.slice(3).join(' ')}`.trim();
  const files = await writeReport(result, out.dir, { command });
  out.close();
  if (!fontInfo().files.length && !f.quiet) {
    process.stderr.write('echoatt: note: DejaVu fonts not found (Debian: apt-get install fonts-dejavu-core); PNG text uses whatever system fonts exist\n');
  }
  if (f.json) {
    process.stdout.write(`${JSON.stringify(analysisSummary(result, files), null, 2)}\n`);
    return;
  }
  const lines = [
    `analyzed ${result.model.name} on ${result.data.sequences}×${result.data.seqLen} tokens of ${result.data.description} ` +
      `in ${(result.timing.totalMs / 1000).toFixed(1)} s (${result.timing.similarityTokensPerSecond.toFixed(0)} tokens/s similarity)`,
    `teacher loss ${result.teacherLoss.mean.toFixed(4)} nats/token`,
    ...planNames(result).map((k) => {
      const g = result.plans[k]!.plan.groups;
      return `plan ${k}: ${g.length ? g.map((x) => `${x.anchor} <- [${x.shared.join(', ')}]`).join('; ') : '(nothing shared)'}`;
    }),
    `wrote ${f.out}/{similarity.json, report.md, plan-*.json, ${Object.keys(files.charts).join('|')}.{svg,png}}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}
