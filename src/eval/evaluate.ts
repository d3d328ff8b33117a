/**
 * The evaluation harness as a library: score one or more models on zero-shot tasks, perplexity and speed, with the
 * numbers following lm-evaluation-harness, GPTQ and Hugging Face conventions (see `scoring.ts`, `perplexity.ts`,
 * `speed.ts`), and get one report that puts the models side by side (`table.ts` formats it).
 *
 * Models are evaluated one after another; a model given by path is loaded when its turn comes and released after,
 * so only one is in memory at a time. Tasks are read once and shared by all models.
 *
 * @example
 * ```ts
 * import { evaluate } from './eval/evaluate.js';
 * import { markdownTable } from './eval/table.js';
 *
 * const report = await evaluate(['../shared/models/stories260K/stories260K.bin', 'out/student'], {
 *   tasks: ['hellaswag', 'piqa', 'my-task.json'],
 *   limit: 200,                                   // the first 200 items of each task, as lm-eval --limit
 *   ppl: { path: '../shared/data/wikitext2/wiki.test.raw', modes: ['chunks', 'sliding'], stride: 256 },
 *   speed: { contexts: [128, 512] },
 *   onProgress: (e) => console.error(e.model, e.stage, e.done, '/', e.total),
 * });
 * console.log(markdownTable(report));
 * ```
 */
import type { Backend } from '../backend/backend.js';
import { loadModel, modelName } from '../models/load.js';
import type { LlamaModel } from '../models/llama.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { OptionError } from '../errors.js';
import { defaultTaskDir, loadBuiltinTask } from './tasks/index.js';
import type { Task } from './tasks/types.js';
import { loadTaskSpec } from './taskspec.js';
import { runTask, type EncodeSettings, type TaskResult } from './scoring.js';
import {
  loadPplCorpus, tokenPerplexity, wordBytePerplexity, PPL_MODES,
  type PplCorpus, type PplMode, type TokenPerplexity, type WordBytePerplexity,
} from './perplexity.js';
import { measureSpeed, peakRssBytes, type SpeedOptions, type SpeedResult } from './speed.js';

/** A model to evaluate: a path (loaded with `loadModel`), or an already loaded model and its tokenizer. */
export type ModelArg = string | { name?: string; path?: string; model?: LlamaModel; tokenizer?: Tokenizer };

export interface PerplexitySettings {
  /** Text file, WikiText file or folder (see `loadPplCorpus`). */
  path: string;
  /** Token-level conventions to compute. Default `['chunks']`. */
  modes?: PplMode[];
  /** Window length. Default: each model's context length (max_position_embeddings). */
  ctx?: number;
  /** Sliding stride. Default ctx / 2. */
  stride?: number;
  /** Also compute lm-eval-style word/byte perplexity (rolling windows per document). Default true. */
  wordByte?: boolean;
  /** Use only the first N tokens of the stream for token-level perplexity (quick runs). Default: all. */
  maxTokens?: number;
}

export interface ProgressEvent {
  model: string;
  /** `task:<name>`, `ppl:<mode>`, `ppl:word-byte`, `speed`. */
  stage: string;
  done: number;
  total: number;
}

export interface EvaluateOptions extends EncodeSettings {
  /** Built-in task names (`hellaswag`, ...), paths to task spec `.json` files, or loaded tasks. */
  tasks?: (string | Task)[];
  /** Folder of the built-in task files. Default `defaultTaskDir()` (`../shared/data/tasks`). */
  taskDir?: string;
  /** Score only the first N items of each task (lm-eval `--limit`), or N seeded-random ones with `limitSeed`. */
  limit?: number;
  limitSeed?: number;
  ppl?: PerplexitySettings;
  /** Speed/memory measurement; false or absent skips it. */
  speed?: SpeedOptions | false;
  /** Tokenizer path for models given by path (default: found next to each model). */
  tokenizer?: string;
  backend?: Backend;
  onProgress?: (e: ProgressEvent) => void;
}

export interface PerplexityReport {
  source: string;
  kind: PplCorpus['kind'];
  /** One entry per requested mode. */
  token: TokenPerplexity[];
  wordByte: WordBytePerplexity | null;
}

export interface ModelReport {
  name: string;
  path: string | null;
  parameters: number;
  contextLength: number;
  /** Layers that reuse another layer's attention (empty for an ordinary model). */
  sharedLayers: number[];
  tasks: TaskResult[];
  perplexity: PerplexityReport | null;
  speed: SpeedResult | null;
  peakRssBytes: number;
  seconds: number;
}

export interface EvalReport {
  createdAt: string;
  settings: {
    tasks: string[];
    limit: number | null;
    /** How `limit` picks items: the first N (lm-eval), or N drawn with `limitSeed`. */
    limitSelection: 'all' | 'first' | 'seeded';
    limitSeed: number | null;
    /** `tokenizer`: BOS as the tokenizer's convention; true/false: forced. */
    bos: 'tokenizer' | boolean;
    ppl: (Omit<PerplexitySettings, 'ctx' | 'stride'> & { ctx: number | 'model'; stride: number | 'ctx/2' }) | null;
    speed: SpeedOptions | null;
    backend: string | null;
    threads: number | null;
  };
  models: ModelReport[];
}

/** Load tasks by name / spec path (async because parquet data is read asynchronously). */
export async function resolveTasks(tasks: readonly (string | Task)[], taskDir = defaultTaskDir()): Promise<Task[]> {
  const out: Task[] = [];
  for (const t of tasks) {
    if (typeof t !== 'string') out.push(t);
    else if (t.endsWith('.json')) out.push(await loadTaskSpec(t));
    else out.push(loadBuiltinTask(t, taskDir));
  }
  const names = new Set<string>();
  for (const t of out) {
    if (names.has(t.name)) throw new OptionError('--tasks', `task '${t.name}' given twice`);
    names.add(t.name);
  }
  return out;
}

function displayName(arg: ModelArg, i: number): string {
  if (typeof arg === 'string') return modelName(arg) || `model${i}`;
  return arg.name ?? (arg.path ? modelName(arg.path) : `model${i}`);
}

/** Evaluate `models` side by side (see the module doc and {@link EvaluateOptions}). */
export async function evaluate(models: readonly ModelArg[], opts: EvaluateOptions = {}): Promise<EvalReport> {
  if (!models.length) throw new OptionError('--model', 'no model to evaluate');
  if (opts.limit !== undefined && !(Number.isInteger(opts.limit) && opts.limit >= 1)) throw new OptionError('--limit', `must be a positive integer, got ${opts.limit}`);
  const tasks = await resolveTasks(opts.tasks ?? [], opts.taskDir);
  const modes = opts.ppl ? (opts.ppl.modes ?? ['chunks']) : [];
  for (const m of modes) if (!PPL_MODES.includes(m)) throw new OptionError('--ppl-mode', `expected chunks or sliding, got '${m}'`);
  const corpus = opts.ppl ? loadPplCorpus(opts.ppl.path) : null;
  if (!tasks.length && !corpus && !opts.speed) throw new OptionError('eval', 'nothing to do: give tasks, a perplexity text, or speed');

  // Unique display names.
  const names = models.map(displayName);
  names.forEach((n, i) => {
    if (names.indexOf(n) !== i) names[i] = `${n}#${i + 1}`;
  });

  const reports: ModelReport[] = [];
  let lastModel: LlamaModel | null = null;
  for (let mi = 0; mi < models.length; mi++) {
    const t0 = performance.now();
    const { model, tok, mpath } = resolveModelArg(models[mi], names[mi], mi, opts);
    lastModel = model;
    const progress = (stage: string) => (done: number, total: number) => opts.onProgress?.({ model: names[mi], stage, done, total });
    const r = evaluateModel(model, tok, { tasks, corpus, modes, opts, progress });
    reports.push({ name: names[mi], path: mpath, ...r, seconds: (performance.now() - t0) / 1000 });
  }
  const backendName = lastModel?.backend.name ?? null;
  const threads = lastModel?.backend.threads ?? null;

  return {
    createdAt: new Date().toISOString(),
    settings: {
      tasks: tasks.map((t) => t.name),
      limit: opts.limit ?? null,
      limitSelection: opts.limit === undefined ? 'all' : opts.limitSeed === undefined ? 'first' : 'seeded',
      limitSeed: opts.limit !== undefined && opts.limitSeed !== undefined ? opts.limitSeed : null,
      bos: opts.bos ?? 'tokenizer',
      ppl: opts.ppl
        ? { ...opts.ppl, modes, ctx: opts.ppl.ctx ?? 'model', stride: opts.ppl.stride ?? 'ctx/2', wordByte: opts.ppl.wordByte ?? true }
        : null,
      speed: opts.speed ? opts.speed : null,
      backend: backendName,
      threads,
    },
    models: reports,
  };
}

/** A model argument as a loaded model, its tokenizer and its path (loading it when given by path). */
function resolveModelArg(arg: ModelArg, name: string, i: number, opts: EvaluateOptions): { model: LlamaModel; tok: Tokenizer; mpath: string | null } {
  if (typeof arg === 'string' || !arg.model) {
    const mpath = typeof arg === 'string' ? arg : (arg.path ?? null);
    if (!mpath) throw new OptionError('--model', `model ${i} has neither a path nor a loaded model`);
    const loaded = loadModel(mpath, { tokenizer: opts.tokenizer, backend: opts.backend });
    return { model: loaded.model, tok: typeof arg !== 'string' && arg.tokenizer ? arg.tokenizer : loaded.tokenizer, mpath };
  }
  if (!arg.tokenizer) throw new OptionError('--model', `model '${name}' is given without its tokenizer`);
  return { model: arg.model, tok: arg.tokenizer, mpath: arg.path ?? null };
}

interface EvalPlan {
  tasks: Task[];
  corpus: PplCorpus | null;
  modes: PplMode[];
  opts: EvaluateOptions;
  progress: (stage: string) => (done: number, total: number) => void;
}

/** Tasks, perplexity and speed of one model. */
function evaluateModel(model: LlamaModel, tok: Tokenizer, e: EvalPlan): Omit<ModelReport, 'name' | 'path' | 'seconds'> {
  const { opts, progress } = e;
  const taskResults = e.tasks.map((task) => runTask(model, tok, task, { limit: opts.limit, limitSeed: opts.limitSeed, bos: opts.bos, onItem: progress(`task:${task.name}`) }));
  let ppl: PerplexityReport | null = null;
  if (e.corpus && opts.ppl) {
    const ctx = opts.ppl.ctx ?? model.config.maxPositions;
    let ids = tok.encode(e.corpus.joined, { bos: opts.bos });
    if (opts.ppl.maxTokens !== undefined) ids = ids.slice(0, opts.ppl.maxTokens);
    const token = e.modes.map((mode) => tokenPerplexity(model, ids, { mode, ctx, stride: opts.ppl!.stride, onWindow: progress(`ppl:${mode}`) }));
    const wordByte = (opts.ppl.wordByte ?? true) ? wordBytePerplexity(model, tok, e.corpus, ctx, progress('ppl:word-byte')) : null;
    ppl = { source: e.corpus.source, kind: e.corpus.kind, token, wordByte };
  }
  let speed: SpeedResult | null = null;
  if (opts.speed) {
    progress('speed')(0, 1);
    speed = measureSpeed(model, opts.speed);
    progress('speed')(1, 1);
  }
  return {
    parameters: model.parameterCount(), contextLength: model.config.maxPositions, sharedLayers: model.sharedLayers(),
    tasks: taskResults, perplexity: ppl, speed, peakRssBytes: peakRssBytes(),
  };
}
