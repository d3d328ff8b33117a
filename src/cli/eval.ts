/**
 * `echoatt eval`: models side by side on zero-shot tasks (lm-eval scoring), perplexity (GPTQ chunks, HF sliding
 * window, lm-eval word/byte level) and speed/memory. Writes the table as Markdown to stdout (or JSON with `--json`)
 * and, with `--out DIR`, `results.md`, `results.json` and a bar chart `accuracy.svg` / `accuracy.png`.
 * Progress with ETA goes to stderr.
 */
import path from 'node:path';
import type { Command } from 'commander';
import { evaluate, type ProgressEvent } from '../eval/evaluate.js';
import { markdownTable, reportJson } from '../eval/table.js';
import { BUILTIN_TASK_NAMES } from '../eval/tasks/index.js';
import { PPL_MODES, type PplMode } from '../eval/perplexity.js';
import type { EvalReport } from '../eval/evaluate.js';
import { barChart, writeChart, writeFileAtomic, type Bar } from '../report/plot.js';
import { OptionError } from '../errors.js';
import { DEFAULT_MODEL, SHARED_DIR } from './defaults.js';
import { backendFromOptions, intOption, THREADS_FLAG } from './options.js';
import { ProgressBar } from './progress.js';
import { OutputFolder } from '../io/output.js';

interface EvalFlags {
  model: string[];
  name: string[];
  tokenizer?: string;
  tasks?: string;
  taskDir: string;
  limit?: number;
  limitSeed?: number;
  ppl?: string;
  pplMode: string;
  ctx?: number;
  stride?: number;
  wordPpl: boolean;
  pplMaxTokens?: number;
  speed: boolean;
  speedCtx: string;
  decodeTokens: number;
  speedRepeats: number;
  bos?: boolean;
  out?: string;
  force?: boolean;
  json?: boolean;
  quiet?: boolean;
  backend?: string;
  threads?: number;
}

const collect = (v: string, prev: string[]) => [...prev, v];

function parseTasks(s: string | undefined): string[] {
  if (!s) return [];
  const out: string[] = [];
  for (const t of s.split(',').map((x) => x.trim()).filter(Boolean)) {
    if (t === 'all') out.push(...BUILTIN_TASK_NAMES);
    else out.push(t);
  }
  return [...new Set(out)];
}

function parseModes(s: string): PplMode[] {
  const modes = s.split(',').map((x) => x.trim()).filter(Boolean);
  if (!modes.length) throw new OptionError('--ppl-mode', 'expected chunks, sliding or chunks,sliding');
  for (const m of modes) if (!PPL_MODES.includes(m as PplMode)) throw new OptionError('--ppl-mode', `expected chunks or sliding, got '${m}'`);
  return [...new Set(modes)] as PplMode[];
}

function parseIntList(flag: string, s: string): number[] {
  return s.split(',').map((x) => intOption(flag, 1)(x.trim()));
}

/** Bars: every accuracy metric of every task, grouped by model, with standard-error whiskers. */
export function accuracyBars(report: EvalReport): Bar[] {
  const bars: Bar[] = [];
  for (const t of report.models[0].tasks) {
    for (const metric of ['acc', 'acc_norm'] as const) {
      if (!t.metrics[metric]) continue;
      for (const m of report.models) {
        const v = m.tasks.find((x) => x.task === t.task)?.metrics[metric];
        if (!v) continue;
        bars.push({ label: `${t.task} ${metric}`, value: v.value, group: m.name, ...(v.stderr !== null && Number.isFinite(v.stderr) ? { error: v.stderr } : {}) });
      }
    }
  }
  return bars;
}

function progressPrinter(quiet: boolean): { onProgress: (e: ProgressEvent) => void; close: () => void } {
  let bar: ProgressBar | null = null;
  let key = '';
  return {
    onProgress(e) {
      const k = `${e.model} ${e.stage}`;
      if (k !== key) {
        bar?.finish();
        bar = new ProgressBar(k, e.total, { silent: quiet });
        key = k;
      }
      bar!.total = e.total;
      bar!.update(e.done);
      if (e.done >= e.total) {
        bar!.finish();
        bar = null;
        key = '';
      }
    },
    close() {
      bar?.finish();
    },
  };
}

export function registerEval(program: Command): void {
  program
    .command('eval')
    .description('evaluate models side by side: zero-shot tasks (lm-eval scoring), perplexity, speed and memory')
    .option('-m, --model <path>', 'model (llama2.c .bin or Hugging Face directory; a saved student too); repeat for more, the first is the baseline', collect, [])
    .option('--name <name>', 'display name of the model at the same position (repeatable)', collect, [])
    .option('--tokenizer <path>', 'tokenizer for every model (default: found next to each model)')
    .option('--tasks <list>', `comma-separated: ${BUILTIN_TASK_NAMES.join(', ')}, all, or task spec .json files`)
    .option('--task-dir <dir>', 'folder of the built-in task files', path.join(SHARED_DIR, 'data/tasks'))
    .option('--limit <n>', 'score only the first N items of each task (as lm-eval --limit)', intOption('--limit', 1))
    .option('--limit-seed <s>', 'with --limit: draw the N items at random with this seed instead of taking the first N', intOption('--limit-seed', 0))
    .option('--ppl <path>', 'perplexity text: WikiText file (wiki.test.raw), any text file, or a folder of text files')
    .option('--ppl-mode <modes>', 'chunks (GPTQ), sliding (HF guide), or chunks,sliding', 'chunks')
    .option('--ctx <n>', 'perplexity window length (default: the model context length)', intOption('--ctx', 2))
    .option('--stride <s>', 'sliding-window stride (default: ctx / 2)', intOption('--stride', 1))
    .option('--no-word-ppl', 'skip lm-eval-style word/byte perplexity (rolling windows per document)')
    .option('--ppl-max-tokens <n>', 'token-level perplexity on the first N tokens only', intOption('--ppl-max-tokens', 2))
    .option('--no-speed', 'skip the speed and memory measurement')
    .option('--speed-ctx <list>', 'context lengths for prefill/decode speed', '128,512')
    .option('--decode-tokens <n>', 'decode steps per speed point', intOption('--decode-tokens', 1), 32)
    .option('--speed-repeats <n>', 'timed runs per speed point (fastest kept)', intOption('--speed-repeats', 1), 1)
    .option('--bos', 'always prepend BOS to task contexts and the perplexity text')
    .option('--no-bos', 'never prepend BOS (the default of lm-eval for HF models before late 2025)')
    .option('-o, --out <dir>', 'write results.md, results.json and accuracy.svg/png here')
    .option('--force', 'replace an earlier eval output in --out (only the files it wrote)')
    .option('--json', 'print the JSON report on stdout instead of Markdown')
    .option('-q, --quiet', 'no progress on stderr')
    .option('--backend <name>', 'native | reference')
    .option(...THREADS_FLAG)
    .action(async (f: EvalFlags) => {
      const backend = backendFromOptions(f);
      const models = f.model.length ? f.model : [DEFAULT_MODEL];
      if (f.name.length > models.length) throw new OptionError('--name', `${f.name.length} names for ${models.length} models`);
      const tasks = parseTasks(f.tasks);
      const modes = parseModes(f.pplMode);
      const speedCtx = parseIntList('--speed-ctx', f.speedCtx);
      const out = f.out === undefined ? undefined
        : OutputFolder.open(f.out, { command: 'eval', force: f.force, inputs: [...models, f.tokenizer, f.ppl, ...tasks.filter((t) => t.endsWith('.json'))] });
      const progress = progressPrinter(Boolean(f.quiet));
      const t0 = performance.now();
      let report: EvalReport;
      try {
        report = await evaluate(
          models.map((p, i) => ({ path: p, name: f.name[i] })),
          {
            tasks,
            taskDir: f.taskDir,
            limit: f.limit,
            limitSeed: f.limitSeed,
            ppl: f.ppl ? { path: f.ppl, modes, ctx: f.ctx, stride: f.stride, wordByte: f.wordPpl, maxTokens: f.pplMaxTokens } : undefined,
            speed: f.speed ? { contexts: speedCtx, decodeTokens: f.decodeTokens, repeats: f.speedRepeats } : false,
            bos: f.bos,
            tokenizer: f.tokenizer,
            backend,
            onProgress: progress.onProgress,
          },
        );
      } finally {
        progress.close();
      }
      const md = markdownTable(report);
      const json = `${JSON.stringify(reportJson(report), null, 2)}\n`;
      if (out) {
        writeFileAtomic(out.file('results.md'), md);
        writeFileAtomic(out.file('results.json'), json);
        const bars = accuracyBars(report);
        if (bars.length) {
          const chart = await barChart(bars, {
            title: 'Zero-shot accuracy',
            subtitle: `${report.models.map((m) => m.name).join(' vs ')}${report.settings.limit ? ` · ${report.settings.limitSelection === 'first' ? 'first' : 'seeded'} ${report.settings.limit} items per task` : ''} · whiskers: ± stderr`,
            yTitle: 'accuracy',
          });
          writeChart(chart, out.file('accuracy'));
        }
        out.close();
      }
      process.stdout.write(f.json ? json : md);
      if (!f.quiet) process.stderr.write(`eval finished in ${((performance.now() - t0) / 1000).toFixed(1)} s${f.out ? `; wrote ${f.out}/results.{md,json}` : ''}\n`);
    });
}
