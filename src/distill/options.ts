/**
 * The options and results of `distill()` (`distill.ts`), and their validation: every bad value is an `OptionError`
 * naming the option.
 */
import type { Backend } from '../backend/backend.js';
import type { LlamaModel } from '../models/llama.js';
import type { SharingPlan } from '../models/sharing-plan.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import type { TrainSelection } from '../train/select.js';
import type { TextEncoding } from '../tokenizer/lines.js';
import type { EvalResult } from '../train/evaluate.js';
import { OptionError } from '../errors.js';
import { DEFAULT_LOSS, type LossWeights } from './loss.js';

export type { TrainSelection, EvalResult };


export interface GenerateDataOptions {
  /** Number of teacher samples. */
  count: number;
  /** Maximum new tokens per sample (default 256). */
  length?: number;
  /** Default 1. */
  temperature?: number;
  /** Default 1 (off). */
  topP?: number;
  /** Default: the run's seed. Sample `i` uses seed `seed + i`. */
  seed?: number;
}

export interface DistillOptions {
  /** Teacher: a path (llama2.c `.bin` or Hugging Face folder) or a loaded model. */
  teacher: string | LlamaModel;
  /** Student: a saved student (path) or model. Give this or `plan`. */
  student?: string | LlamaModel;
  /** Build the student from the teacher with this plan (object or plan.json path). */
  plan?: string | SharingPlan;
  /** Tokenizer path or object (default: the teacher's). */
  tokenizer?: string | Tokenizer;
  /** Text data: files (`.txt`, `.jsonl`, `.parquet`, or jsonl of `{"ids": [...]}`) or folders of `.txt`. */
  data?: string | readonly string[];
  /** jsonl field / parquet column with the text (default `text`). */
  dataField?: string;
  /** `lines`: text data is one paragraph per line, encoded line by line (default `joined`). */
  textEncoding?: TextEncoding;
  /** Take text data at evenly spaced paragraphs over each whole source instead of packing it from the start. */
  spreadData?: boolean;
  /** Also train on samples from the teacher (drawn first, saved to `teacher-samples.jsonl`). */
  generate?: GenerateDataOptions;
  /** Stop reading text data after this many tokens (default: what `steps` consumes in one epoch). */
  maxDataTokens?: number;
  /** Optimizer steps. */
  steps: number;
  /** Output folder. */
  out: string;
  /** Tokens per sequence (default 128). */
  seqLen?: number;
  /** Sequences per micro-batch (default 8). */
  batch?: number;
  /** Micro-batches per optimizer step (gradient accumulation, default 1). */
  accum?: number;
  /** Peak learning rate (default 1e-3). */
  lr?: number;
  /** Final learning rate of the cosine (default lr / 10). */
  minLr?: number;
  /** Linear warmup steps (default: 5% of `steps`). */
  warmup?: number;
  /** AdamW decoupled weight decay on matrices (default 0.01). */
  weightDecay?: number;
  /** AdamW betas (default 0.9, 0.95). */
  beta1?: number;
  beta2?: number;
  /** Global gradient-norm clip (default 1; 0 = off). */
  clip?: number;
  /** Loss weights (defaults {@link DEFAULT_LOSS}: α 0.5, β 0.5, T 2, γ 0). */
  loss?: Partial<LossWeights>;
  /** Layers whose output hidden states enter the MSE term (default when γ > 0: the shared layers, or all layers). */
  hiddenLayers?: readonly number[];
  /** Which parameters train (default 'all'; 'shared' = only the shared layers; 'groups' = anchors and shared layers; or layer indices). */
  train?: TrainSelection;
  /** Keep the token embedding and LM head fixed. */
  freezeEmbeddings?: boolean;
  /** Checkpoint every K steps (default 100; a checkpoint is also written at the end and on interruption). */
  checkpointEvery?: number;
  /** Continue from `out/checkpoint.safetensors`. */
  resume?: boolean;
  /** Seed of the shuffle (and of teacher sampling unless given there). Default 1. */
  seed?: number;
  /** Cache teacher logits here (f32 files per sequence) for repeated epochs. */
  teacherCache?: string;
  /** Held-out text evaluated before and after (loss / perplexity of teacher and student). */
  eval?: string | readonly string[];
  /** Held-out teacher samples (seeded apart from the training samples) evaluated before and after. */
  evalGenerate?: number;
  /** Cap on held-out sequences per eval set (default 64). */
  evalMaxSeqs?: number;
  /** Backend for models loaded from paths. */
  backend?: Backend;
  /** Write loss.svg / loss.png at the end (default true). */
  plot?: boolean;
  /** Save a checkpoint and stop at the next step boundary on SIGINT (the CLI sets this). */
  handleSigint?: boolean;
  /** Stop (with a checkpoint) at the next step boundary when aborted. */
  signal?: AbortSignal;
  onProgress?: (p: DistillProgress) => void;
  /** Called after every optimizer step (after its checkpoint, if any). May be async. */
  onStep?: (info: StepInfo) => void | Promise<void>;
}

export type DistillProgress =
  | { phase: 'generate'; done: number; total: number }
  | { phase: 'eval'; what: string }
  | { phase: 'train'; step: number; steps: number; startStep: number; loss: number; ce: number; kl: number; mse: number; lr: number; tokensPerSec: number };

export interface StepInfo {
  step: number;
  loss: number;
  ce: number;
  kl: number;
  mse: number;
  lr: number;
  gradNorm: number;
  tokens: number;
  checkpointed: boolean;
}

export interface EvalSet {
  name: string;
  teacher: EvalResult;
  student: EvalResult;
}

export interface DistillResult {
  outDir: string;
  studentDir: string;
  checkpoint: string;
  metricsFile: string;
  plotFiles?: { svg: string; png: string };
  /** Steps completed (equals `steps` unless interrupted). */
  step: number;
  steps: number;
  interrupted: boolean;
  resumedFrom?: number;
  lastLoss?: number;
  /** Training tokens per second of this session. */
  tokensPerSec: number;
  trainableParams: number;
  evalBefore?: EvalSet[];
  evalAfter?: EvalSet[];
  /** The trained student (also saved under `studentDir` when the run finished); not enumerable, so JSON stays small. */
  student: LlamaModel;
}

/** Fingerprint keys that may change across a resume: a run can be extended, or checkpoint more or less often. */
export const SOFT_KEYS: ReadonlySet<string> = new Set(['steps', 'checkpointEvery']);

/** The numeric options after defaults and validation. */
export interface ResolvedDistill {
  steps: number;
  seqLen: number;
  batch: number;
  accum: number;
  ckptEvery: number;
  seed: number;
  lr: number;
  minLr: number;
  warmup: number;
  clip: number;
  loss: LossWeights;
}

/** An integer option `>= min` (default `def`), or an OptionError naming it. */
export function posInt(v: number | undefined, name: string, def: number, min = 1): number {
  const x = v ?? def;
  if (!(Number.isInteger(x) && x >= min)) throw new OptionError(name, `expected an integer >= ${min}, got ${x}`);
  return x;
}

export function resolveDistillOptions(opts: DistillOptions): ResolvedDistill {
  const steps = posInt(opts.steps, 'steps', 0);
  const lr = opts.lr ?? 1e-3;
  const minLr = opts.minLr ?? lr / 10;
  const w: LossWeights = { ...DEFAULT_LOSS, ...opts.loss };
  if (!(lr > 0) || !(minLr >= 0)) throw new OptionError('lr', `learning rates must be positive (lr ${lr}, min-lr ${minLr})`);
  if (!(w.temperature > 0)) throw new OptionError('temperature', `must be > 0, got ${w.temperature}`);
  if ([w.alpha, w.beta, w.gamma].some((x) => !(x >= 0)) || w.alpha + w.beta + w.gamma === 0) {
    throw new OptionError('loss', `alpha, beta, gamma must be >= 0 and not all 0 (got ${w.alpha}, ${w.beta}, ${w.gamma})`);
  }
  return {
    steps, lr, minLr, loss: w, clip: opts.clip ?? 1,
    seqLen: posInt(opts.seqLen, 'seq-len', 128, 2),
    batch: posInt(opts.batch, 'batch', 8),
    accum: posInt(opts.accum, 'accum', 1),
    ckptEvery: posInt(opts.checkpointEvery, 'checkpoint-every', 100),
    seed: posInt(opts.seed, 'seed', 1, 0),
    warmup: posInt(opts.warmup, 'warmup', Math.floor(steps * 0.05), 0),
  };
}
