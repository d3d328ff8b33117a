/**
 * The pipeline's options and their resolved settings (defaults filled in; their JSON is the run's fingerprint).
 *
 * Default teacher: gutenberg16 from `../shared`. A model folder may hold `heldout.txt` (text the model never trained
 * on: the held-out perplexity is measured there) and `train-sample.txt` (a sample of its training text: distillation
 * trains there); without them the held-out text is WikiText-2 and distillation trains on the teacher's own samples.
 */
import path from 'node:path';
import { existsSync } from 'node:fs';
import { OptionError } from '../errors.js';
import { SHARED_DIR } from '../paths.js';
import { STRATEGIES, type StrategyName } from '../analysis/strategies.js';
import type { AlignMode } from '../analysis/search.js';
import type { TextEncoding } from '../tokenizer/lines.js';

export const DEFAULT_PIPELINE_MODEL = path.join(SHARED_DIR, 'models/gutenberg16/model.bin');

export interface PipelineOptions {
  /** Output directory. */
  out: string;
  /** Teacher model (default: gutenberg16 from ../shared). */
  model?: string;
  /** Calibration text for the analysis and the search (default: samples of the teacher itself). */
  data?: string;
  /** Fraction of attention FLOPs the plan removes. Default 0.25. */
  budget?: number;
  /** Plan strategy. Default `search` (measured). */
  strategy?: StrategyName;
  /** Head alignment of the searched plan. Default `cosine`. */
  align?: AlignMode;
  analyzeSeqs?: number;
  analyzeSeqLen?: number;
  /** Distillation steps; 0 skips distillation. Default 300 (of 8 × 128 tokens: about 5 minutes on 2 cores for gutenberg16). */
  distillSteps?: number;
  /** Training text for distillation (default: the model folder's train-sample.txt, else teacher samples). */
  distillData?: string;
  /** Teacher samples to generate when distillation has no text. Default 160. */
  distillGenerate?: number;
  distillBatch?: number;
  distillSeqLen?: number;
  distillLr?: number;
  /** Zero-shot tasks. Default: piqa, arc_easy, hellaswag, lambada_openai. */
  tasks?: string[];
  /** Items per task. Default 50. */
  limit?: number;
  /** Held-out perplexity text (default: the model folder's heldout.txt, else WikiText-2 test). */
  ppl?: string;
  /** Held-out windows (each of the model's context, at most 256). Default 64. */
  pplWindows?: number;
  /**
   * How text files are tokenized: `lines` (one paragraph per line, encoded line by line) or `joined`. Default `lines`
   * when the model folder holds heldout.txt / train-sample.txt (that is their layout), else `joined`.
   */
  textEncoding?: TextEncoding;
  /** Threads of the native backend (default: ECHOATT_THREADS, else all cores). */
  threads?: number;
  /** Replace a previous run in `out` (only the files it wrote). */
  force?: boolean;
  /** Continue a previous, unfinished run in `out` with the same settings (finished stages are reused). */
  resume?: boolean;
  seed?: number;
  onStage?: (stage: string, state: 'start' | 'skip' | 'done', detail?: string) => void;
  onProgress?: (stage: string, done: number, total: number) => void;
}

/** A file beside the model (the model file's folder, or the model directory itself). */
function besideModel(model: string, name: string): string | null {
  const dir = model.endsWith('.bin') || model.endsWith('.json') ? path.dirname(model) : model;
  const f = path.join(dir, name);
  return existsSync(f) ? f : null;
}

/** Settings with defaults filled in. */
export function resolvePipelineSettings(o: PipelineOptions) {
  const model = path.resolve(o.model ?? DEFAULT_PIPELINE_MODEL);
  const trainText = o.distillData ? path.resolve(o.distillData) : besideModel(model, 'train-sample.txt');
  const folderTexts = besideModel(model, 'heldout.txt') !== null || besideModel(model, 'train-sample.txt') !== null;
  const s = {
    model,
    data: o.data ? path.resolve(o.data) : null,
    budget: o.budget ?? 0.25,
    strategy: o.strategy ?? ('search' as StrategyName),
    align: o.align ?? ('cosine' as AlignMode),
    analyzeSeqs: o.analyzeSeqs ?? 16,
    analyzeSeqLen: o.analyzeSeqLen ?? 256,
    distillSteps: o.distillSteps ?? 300,
    distillData: trainText,
    distillGenerate: o.distillGenerate ?? 160,
    distillBatch: o.distillBatch ?? 8,
    distillSeqLen: o.distillSeqLen ?? 128,
    distillLr: o.distillLr ?? 1e-3,
    tasks: o.tasks ?? ['piqa', 'arc_easy', 'hellaswag', 'lambada_openai'],
    limit: o.limit ?? 50,
    ppl: path.resolve(o.ppl ?? besideModel(model, 'heldout.txt') ?? path.join(SHARED_DIR, 'data/wikitext2/wiki.test.raw')),
    pplWindows: o.pplWindows ?? 64,
    textEncoding: o.textEncoding ?? ((folderTexts ? 'lines' : 'joined') as TextEncoding),
    seed: o.seed ?? 1,
  };
  if (!(s.budget > 0 && s.budget < 1)) throw new OptionError('--budget', `expected a fraction in (0, 1), got ${s.budget}`);
  if (!STRATEGIES.includes(s.strategy)) throw new OptionError('--strategy', `expected one of ${STRATEGIES.join(', ')}, got '${s.strategy}'`);
  if (s.textEncoding !== 'lines' && s.textEncoding !== 'joined') throw new OptionError('--text-encoding', `expected lines or joined, got '${s.textEncoding}'`);
  if (s.align !== 'none' && s.align !== 'cosine') throw new OptionError('--align', `expected none or cosine, got '${s.align}'`);
  for (const [k, v] of [['--distill-steps', s.distillSteps], ['--limit', s.limit], ['--seqs', s.analyzeSeqs], ['--seq-len', s.analyzeSeqLen], ['--ppl-windows', s.pplWindows]] as const) {
    if (!(Number.isInteger(v) && v >= 0)) throw new OptionError(k, `expected a non-negative integer, got ${v}`);
  }
  if (!(s.distillLr > 0)) throw new OptionError('--distill-lr', `expected a positive number, got ${s.distillLr}`);
  return s;
}

export type PipelineSettings = ReturnType<typeof resolvePipelineSettings>;
