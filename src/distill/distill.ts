/**
 * `distill(opts)`: knowledge distillation of a (shared-attention) student from its teacher, on CPU, crash-safe.
 *
 * Per optimizer step: `accum` micro-batches of `batch` sequences of `seqLen` tokens; the teacher runs in inference
 * mode (no tape; its logits computed on the fly or read from a disk cache), the student through the autograd;
 * loss {@link distillLoss}; gradients accumulated, clipped by global norm, AdamW step with warmup + cosine LR.
 *
 * Crash safety: every `checkpointEvery` steps (and at the end, and on Ctrl-C / abort) `checkpoint.safetensors` is
 * written atomically with the parameters, AdamW moments, step, shuffle-RNG state and data position. `resume: true`
 * continues from it, and (same options, backend and thread count) ends with bit-identical weights to a run that
 * was never interrupted: data order, teacher samples and all arithmetic are deterministic.
 *
 * Output folder: `student/` (Hugging Face layout, plan in config.json), `plan.json`, `checkpoint.safetensors`,
 * `metrics.jsonl` (one line per step), `loss.svg` / `loss.png`, `summary.json`, `teacher-samples.jsonl` (when
 * sampling from the teacher).
 *
 * @example
 * ```ts
import { distill } from 'echoatt';
 * const res = await distill({
 *   teacher: '../shared/models/stories260K/stories260K.bin',
 *   plan: { format: 'echoatt-plan', version: 1, strategy: 'manual', groups: [{ anchor: 1, shared: [2, 3] }] },
 *   generate: { count: 200, length: 256 },      // train on the teacher's own samples
 *   steps: 300, seqLen: 128, batch: 8, lr: 2e-3,
 *   out: 'runs/stories-student',
 *   onProgress: (p) => p.phase === 'train' && console.log(p.step, p.loss),
 * });
 * console.log(res.studentDir, res.evalAfter);
 * ```
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Backend } from '../backend/backend.js';
import { LlamaModel } from '../models/llama.js';
import { SharedLlamaModel } from '../models/shared-llama.js';
import { loadModel } from '../models/load.js';
import { parsePlan, PlanError, type SharingPlan } from '../models/sharing-plan.js';
import { buildStudent, saveModel } from '../sharing/student.js';
import { loadTokenizer } from '../tokenizer/index.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { Llama2cTokenizer } from '../tokenizer/llama2c.js';
import { OptionError } from '../errors.js';
import { forwardTrain, modelParams, type ModelParams } from '../autograd/model.js';
import { Tape, type Param } from '../autograd/tape.js';
import { writeAtomic, writeAll } from '../io/fsutil.js';
import { lineChart, writeChart } from '../report/plot.js';
import { AdamW, clipGradNorm, lrAt } from './optim.js';
import { Rng32 } from './rng.js';
import { CHECKPOINT_FORMAT, CheckpointStateError, loadCheckpoint, readCheckpointState, saveCheckpoint, type TrainState } from './checkpoint.js';
import { checkVocab, fingerprint, packDocuments, readSamples, sampleFromTeacher, textSequences, writeSamples, type TokenDataset } from './data.js';
import { DEFAULT_LOSS, distillLoss, type LossWeights } from './loss.js';
import { HalfWeight, requireF32 } from '../tensor/weight.js';

/** Which student parameters train. */
export type TrainSelection = 'all' | 'shared' | 'groups' | readonly number[];

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

export interface EvalResult {
  /** Mean next-token cross-entropy (nats). */
  loss: number;
  perplexity: number;
  tokens: number;
  sequences: number;
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
}

const SOFT_KEYS = new Set(['steps', 'checkpointEvery']);

/** Mean next-token cross-entropy of `model` on sequences of `T + 1` tokens, through its inference forward. */
export function evaluateLoss(model: LlamaModel, seqs: readonly Int32Array[], batch = 8): EvalResult {
  const be = model.backend;
  const V = model.config.vocabSize;
  let sum = 0;
  let tokens = 0;
  for (let i = 0; i < seqs.length; i += batch) {
    const group = seqs.slice(i, i + batch);
    const t = group[0].length - 1;
    const ids = new Int32Array(group.length * t);
    const tg = new Int32Array(group.length * t);
    group.forEach((s, b) => {
      ids.set(s.subarray(0, t), b * t);
      tg.set(s.subarray(1), b * t);
    });
    const logits = model.forward(ids, { batch: group.length });
    const losses = new Float32Array(ids.length);
    be.crossEntropy(logits, tg, losses, ids.length, V);
    for (const l of losses) sum += l;
    tokens += ids.length;
  }
  const loss = tokens ? sum / tokens : NaN;
  return { loss, perplexity: Math.exp(loss), tokens, sequences: seqs.length };
}

/** Copy any parameter array of `m` that is the same object as one of `other`'s, so training `m` leaves `other` alone. */
function detachFrom(m: LlamaModel, other: LlamaModel): void {
  const theirs = new Set<Float32Array>();
  const op = other.params;
  for (const a of [op.embed, op.norm, op.lmHead]) if (a instanceof Float32Array) theirs.add(a);
  for (const lp of op.layers) for (const a of Object.values(lp)) if (a instanceof Float32Array) theirs.add(a);
  const p = m.params;
  const copy = (a: Float32Array) => (theirs.has(a) && a.length ? a.slice() : a);
  const tied = p.lmHead === p.embed;
  p.embed = copy(requireF32(p.embed, 'distill student'));
  p.lmHead = tied ? p.embed : copy(requireF32(p.lmHead, 'distill student'));
  p.norm = copy(p.norm);
  for (const lp of p.layers) {
    const rec = lp as unknown as Record<string, Float32Array | undefined>;
    for (const k of Object.keys(rec)) {
      const a = rec[k];
      if (a instanceof Float32Array) rec[k] = copy(a);
    }
  }
}

function readPlan(plan: string | SharingPlan): SharingPlan {
  if (typeof plan !== 'string') return plan;
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(plan, 'utf8'));
  } catch (e) {
    throw new PlanError(plan, `cannot read plan JSON (${(e as Error).message})`);
  }
  return parsePlan(json, plan);
}

/** Decide which params train; returns the trainable list (others get requiresGrad = false). */
export function selectTrainable(model: LlamaModel, params: ModelParams, train: TrainSelection, freezeEmbeddings: boolean): Param[] {
  const anchorOf = model instanceof SharedLlamaModel ? model.anchorOf : new Int32Array(model.config.numLayers).fill(-1);
  let layers: Set<number> | null;
  if (train === 'all') layers = null;
  else if (train === 'shared' || train === 'groups') {
    layers = new Set<number>();
    anchorOf.forEach((a, l) => {
      if (a >= 0) {
        layers!.add(l);
        if (train === 'groups') layers!.add(a);
      }
    });
    if (layers.size === 0) throw new OptionError('--train', `'${train}' selects nothing: the student shares no layers`);
  } else {
    for (const l of train) if (!(Number.isInteger(l) && l >= 0 && l < model.config.numLayers)) throw new OptionError('--train', `layer ${l} does not exist`);
    layers = new Set(train);
  }
  for (const p of params.list) p.requiresGrad = layers === null;
  if (layers) params.layers.forEach((lp, l) => {
    if (!layers!.has(l)) return;
    for (const p of Object.values(lp)) if (p) (p as Param).requiresGrad = true;
  });
  if (freezeEmbeddings) {
    params.embed.requiresGrad = false;
    params.lmHead.requiresGrad = false;
  }
  const list = params.list.filter((p) => p.requiresGrad);
  if (list.length === 0) throw new OptionError('--train', 'no parameter is left to train');
  return list;
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export async function distill(opts: DistillOptions): Promise<DistillResult> {
  const posInt = (v: number | undefined, name: string, def: number, min = 1): number => {
    const x = v ?? def;
    if (!(Number.isInteger(x) && x >= min)) throw new OptionError(name, `expected an integer >= ${min}, got ${x}`);
    return x;
  };
  const steps = posInt(opts.steps, 'steps', 0);
  const seqLen = posInt(opts.seqLen, 'seq-len', 128, 2);
  const batch = posInt(opts.batch, 'batch', 8);
  const accum = posInt(opts.accum, 'accum', 1);
  const ckptEvery = posInt(opts.checkpointEvery, 'checkpoint-every', 100);
  const seed = posInt(opts.seed, 'seed', 1, 0);
  const lr = opts.lr ?? 1e-3;
  const minLr = opts.minLr ?? lr / 10;
  const warmup = posInt(opts.warmup, 'warmup', Math.floor(steps * 0.05), 0);
  const clip = opts.clip ?? 1;
  const w: LossWeights = { ...DEFAULT_LOSS, ...opts.loss };
  if (!(lr > 0) || !(minLr >= 0)) throw new OptionError('lr', `learning rates must be positive (lr ${lr}, min-lr ${minLr})`);
  if (!(w.temperature > 0)) throw new OptionError('temperature', `must be > 0, got ${w.temperature}`);
  if ([w.alpha, w.beta, w.gamma].some((x) => !(x >= 0)) || w.alpha + w.beta + w.gamma === 0) {
    throw new OptionError('loss', `alpha, beta, gamma must be >= 0 and not all 0 (got ${w.alpha}, ${w.beta}, ${w.gamma})`);
  }
  const out = path.resolve(opts.out);
  fs.mkdirSync(out, { recursive: true });
  const ckptFile = path.join(out, 'checkpoint.safetensors');
  const metricsFile = path.join(out, 'metrics.jsonl');
  const samplesFile = path.join(out, 'teacher-samples.jsonl');
  const evalSamplesFile = path.join(out, 'eval-samples.jsonl');
  const prior = opts.resume ? readCheckpointState(ckptFile) : null;
  if (opts.resume && !prior) throw new CheckpointStateError(ckptFile, 'no checkpoint to resume from');

  // Models.
  let teacher: LlamaModel;
  let tokenizer: Tokenizer | undefined = typeof opts.tokenizer === 'object' ? opts.tokenizer : undefined;
  let tokenizerPath = typeof opts.tokenizer === 'string' ? opts.tokenizer : undefined;
  let stopIds: number[] | undefined;
  if (typeof opts.teacher === 'string') {
    const t = loadModel(opts.teacher, { backend: opts.backend, tokenizer: tokenizerPath });
    teacher = t.model;
    tokenizer ??= t.tokenizer;
    tokenizerPath ??= t.checkpoint.tokenizerPath;
    stopIds = t.stopIds;
  } else teacher = opts.teacher;
  if (teacher instanceof SharedLlamaModel) throw new OptionError('teacher', 'the teacher is a shared-attention student; pass the original model');
  let student: LlamaModel;
  if (opts.student !== undefined && opts.plan !== undefined) throw new OptionError('student', 'give a student or a plan, not both');
  if (typeof opts.student === 'string') {
    const s = loadModel(opts.student, { backend: teacher.backend, tokenizer: tokenizerPath });
    student = s.model;
  } else if (opts.student) student = opts.student;
  else if (opts.plan !== undefined) student = buildStudent(teacher, readPlan(opts.plan));
  else throw new OptionError('student', 'give a student (--student) or a plan (--plan)');
  detachFrom(student, teacher);
  if (!tokenizer) {
    if (!tokenizerPath) throw new OptionError('tokenizer', 'no tokenizer: pass one (the teacher was given as a model)');
    tokenizer = loadTokenizer(tokenizerPath, { vocabSize: teacher.config.vocabSize });
  }
  if (!stopIds) {
    stopIds = [...tokenizer.eosIds];
    if (tokenizer instanceof Llama2cTokenizer && tokenizer.bosId !== null) stopIds.push(tokenizer.bosId);
  }
  const V = teacher.config.vocabSize;
  if (student.config.vocabSize !== V) throw new OptionError('student', `vocabulary ${student.config.vocabSize} differs from the teacher's ${V}`);
  if (seqLen > Math.min(teacher.config.maxPositions, student.config.maxPositions)) {
    throw new OptionError('seq-len', `${seqLen} exceeds the models' context of ${Math.min(teacher.config.maxPositions, student.config.maxPositions)}`);
  }
  const be = student.backend;
  const shared = student instanceof SharedLlamaModel ? student.sharedLayers() : [];
  const hiddenLayers = w.gamma > 0 ? [...(opts.hiddenLayers ?? (shared.length ? shared : [...Array(student.config.numLayers).keys()]))] : [];
  if (w.gamma > 0) {
    if (student.config.hiddenSize !== teacher.config.hiddenSize || student.config.numLayers !== teacher.config.numLayers) {
      throw new OptionError('gamma', 'hidden-state MSE needs a student with the teacher\'s hidden size and layer count');
    }
    for (const l of hiddenLayers) if (!(Number.isInteger(l) && l >= 0 && l < student.config.numLayers)) throw new OptionError('hidden-layers', `layer ${l} does not exist`);
  }

  // Data.
  const emit = opts.onProgress ?? (() => {});
  const maxDataTokens = opts.maxDataTokens ?? (prior?.fingerprint.maxDataTokens as number | undefined) ?? steps * accum * batch * (seqLen + 1);
  const paths = opts.data === undefined ? [] : typeof opts.data === 'string' ? [opts.data] : [...opts.data];
  if (paths.length === 0 && !opts.generate) throw new OptionError('data', 'no training data: give --data and/or --generate');
  const parts: TokenDataset[] = [];
  if (paths.length) parts.push(await loadData(tokenizer, paths, { seqLen, field: opts.dataField, maxTokens: maxDataTokens }));
  const gen = opts.generate;
  if (gen) {
    const genSeed = gen.seed ?? seed;
    let docs: number[][];
    if (prior && fs.existsSync(samplesFile)) docs = readSamples(samplesFile);
    else {
      docs = sampleFromTeacher(teacher, tokenizer, {
        count: posInt(gen.count, 'generate', 0), length: gen.length, temperature: gen.temperature, topP: gen.topP, seed: genSeed, stopIds,
        onSample: (done, total) => emit({ phase: 'generate', done, total }),
      });
      writeSamples(samplesFile, docs, tokenizer);
    }
    const sequences = packDocuments(docs, seqLen);
    parts.push({ sequences, description: `${docs.length} teacher samples`, fingerprint: fingerprint(sequences) });
  }
  const data: TokenDataset = {
    sequences: parts.flatMap((p) => p.sequences),
    description: parts.map((p) => p.description).join(' + '),
    fingerprint: parts.map((p) => p.fingerprint).join('+'),
  };
  checkVocab(data, V, 'data');
  if (data.sequences.length < batch) {
    throw new OptionError('data', `only ${data.sequences.length} sequences of ${seqLen + 1} tokens (need at least one batch of ${batch}); use more data, a shorter --seq-len or a smaller --batch`);
  }

  // Parameters and optimizer.
  const sp = modelParams(student);
  const tp = modelParams(teacher);
  for (const p of tp.list) p.requiresGrad = false;
  const trainable = selectTrainable(student, sp, opts.train ?? 'all', opts.freezeEmbeddings ?? false);
  const opt = new AdamW(trainable, { beta1: opts.beta1, beta2: opts.beta2, weightDecay: opts.weightDecay });
  // Zeroed gradient buffers from the start, so a resumed run does exactly the arithmetic of an uninterrupted one.
  for (const p of trainable) p.grad = new Float32Array(p.data.length);
  const fp: Record<string, unknown> = {
    steps, seqLen, batch, accum, seed, lr, minLr, warmup, clip, weightDecay: opt.weightDecay, beta1: opt.beta1, beta2: opt.beta2,
    loss: w, hiddenLayers, train: opts.train ?? 'all', freezeEmbeddings: opts.freezeEmbeddings ?? false,
    data: data.description, dataFingerprint: data.fingerprint, maxDataTokens, checkpointEvery: ckptEvery,
    trainable: trainable.map((p) => p.name),
  };

  // Evaluation sets (held out).
  const evalSets: { name: string; seqs: Int32Array[] }[] = [];
  const evalMax = posInt(opts.evalMaxSeqs, 'eval-max-seqs', 64);
  const evalPaths = opts.eval === undefined ? [] : typeof opts.eval === 'string' ? [opts.eval] : [...opts.eval];
  for (const p of evalPaths) {
    const ds = await loadData(tokenizer, [p], { seqLen, field: opts.dataField, maxTokens: evalMax * (seqLen + 1) });
    if (ds.sequences.length) evalSets.push({ name: path.basename(p), seqs: ds.sequences.slice(0, evalMax) });
  }
  if (opts.evalGenerate) {
    let docs: number[][];
    if (prior && fs.existsSync(evalSamplesFile)) docs = readSamples(evalSamplesFile);
    else {
      docs = sampleFromTeacher(teacher, tokenizer, {
        count: opts.evalGenerate, length: gen?.length, temperature: gen?.temperature, topP: gen?.topP,
        seed: (gen?.seed ?? seed) + 1_000_003, stopIds,
      });
      writeSamples(evalSamplesFile, docs, tokenizer);
    }
    evalSets.push({ name: 'teacher samples (held out)', seqs: packDocuments(docs, seqLen).slice(0, evalMax) });
  }
  const runEval = (): EvalSet[] => evalSets.map((s) => {
    emit({ phase: 'eval', what: s.name });
    return { name: s.name, teacher: evaluateLoss(teacher, s.seqs), student: evaluateLoss(student, s.seqs) };
  });

  // State: fresh or resumed.
  const rng = new Rng32(seed);
  let state: TrainState;
  let evalBefore: EvalSet[] | undefined;
  if (prior) {
    const diffs = Object.keys({ ...fp, ...prior.fingerprint }).filter((k) => !SOFT_KEYS.has(k) && !sameJson(fp[k], prior.fingerprint[k]));
    if (diffs.length) {
      throw new CheckpointStateError(ckptFile, `cannot resume: options differ from the checkpointed run in ${diffs.map((k) => `${k} (was ${JSON.stringify(prior.fingerprint[k])}, now ${JSON.stringify(fp[k])})`).join('; ')}`);
    }
    state = loadCheckpoint(ckptFile, sp.list, opt);
    evalBefore = state.evalBefore as EvalSet[] | undefined;
    truncateMetrics(metricsFile, state.step);
  } else {
    evalBefore = evalSets.length ? runEval() : undefined;
    rng.state = seed >>> 0;
    const epochRng = rng.state;
    state = {
      format: CHECKPOINT_FORMAT, version: 1, step: 0, adamT: 0, epoch: 0, cursor: 0, rng: 0, epochRng,
      tokens: 0, trainMs: 0, fingerprint: fp, evalBefore,
    };
    fs.rmSync(metricsFile, { force: true });
  }
  state.fingerprint = fp;
  // The current epoch's order is regenerated from the RNG state at its start.
  rng.state = state.epochRng;
  let order = rng.permutation(data.sequences.length);
  if (prior && rng.state !== state.rng) throw new CheckpointStateError(ckptFile, 'RNG state does not match the data order (corrupt checkpoint?)');
  state.rng = rng.state;
  const nextSeq = (): number => {
    if (state.cursor >= order.length) {
      state.epoch++;
      state.cursor = 0;
      state.epochRng = rng.state;
      order = rng.permutation(data.sequences.length);
      state.rng = rng.state;
    }
    return order[state.cursor++];
  };

  // Teacher logits, on the fly or from the cache.
  // Cache entries are keyed by the data (fingerprint: tokens and sequence length) and the teacher (config and weights sample).
  const cacheDir = opts.teacherCache ? path.resolve(opts.teacherCache, `${teacherKey(teacher)}-${data.fingerprint.replace(/[^0-9a-z]/gi, '_')}`) : null;
  if (cacheDir) fs.mkdirSync(cacheDir, { recursive: true });
  const teacherOut = (idxs: number[], ids: Int32Array): { logits: Float32Array; hidden: Map<number, Float32Array> } => {
    const per = seqLen * V;
    if (cacheDir && hiddenLayers.length === 0) {
      const files = idxs.map((i) => path.join(cacheDir, `${i}.f32`));
      if (files.every((f) => fs.existsSync(f))) {
        const logits = new Float32Array(idxs.length * per);
        files.forEach((f, b) => {
          const buf = fs.readFileSync(f);
          if (buf.byteLength !== per * 4) throw new CheckpointStateError(f, 'teacher cache entry has the wrong size');
          logits.set(new Float32Array(buf.buffer, buf.byteOffset, per), b * per);
        });
        return { logits, hidden: new Map() };
      }
    }
    const r = forwardTrain(teacher, tp, ids, { batch: idxs.length, tape: null, hiddenLayers });
    const hidden = new Map<number, Float32Array>();
    for (const [l, v] of r.hidden) hidden.set(l, v.data);
    if (cacheDir && hiddenLayers.length === 0) {
      idxs.forEach((i, b) => {
        const f = path.join(cacheDir, `${i}.f32`);
        if (!fs.existsSync(f)) {
          const bytes = new Uint8Array(r.logits.data.buffer, r.logits.data.byteOffset + b * per * 4, per * 4);
          writeAtomic(f, (fd) => writeAll(fd, bytes));
        }
      });
    }
    return { logits: r.logits.data, hidden };
  };

  // Interruption.
  let stop = false;
  const onSigint = () => {
    stop = true;
  };
  if (opts.handleSigint) process.on('SIGINT', onSigint);
  const resumedFrom = prior ? state.step : undefined;
  const startStep = state.step;
  const tokensPerStep = accum * batch * seqLen;
  let lastLoss: number | undefined;
  const sessionStart = performance.now();
  let sessionTokens = 0;
  let recent: number[] = [];
  let interrupted = false;
  try {
    while (state.step < steps) {
      if (stop || opts.signal?.aborted) {
        interrupted = true;
        break;
      }
      const t0 = performance.now();
      const step = state.step + 1;
      let lossSum = 0;
      let ceSum = 0;
      let klSum = 0;
      let mseSum = 0;
      for (let micro = 0; micro < accum; micro++) {
        const idxs = Array.from({ length: batch }, nextSeq);
        const ids = new Int32Array(batch * seqLen);
        const targets = new Int32Array(batch * seqLen);
        idxs.forEach((i, b) => {
          const s = data.sequences[i];
          ids.set(s.subarray(0, seqLen), b * seqLen);
          targets.set(s.subarray(1, seqLen + 1), b * seqLen);
        });
        const needTeacher = w.beta !== 0 || w.gamma !== 0;
        const t = needTeacher ? teacherOut(idxs, ids) : { logits: new Float32Array(0), hidden: new Map<number, Float32Array>() };
        const tape = new Tape(be);
        const s = forwardTrain(student, sp, ids, { batch, tape, hiddenLayers });
        const parts = distillLoss(be, tape, w, s, t, targets, batch * seqLen, V);
        tape.backward(parts.loss, 1 / accum);
        lossSum += parts.loss.data[0];
        ceSum += parts.ce;
        klSum += parts.kl;
        mseSum += parts.mse;
      }
      const gradNorm = clipGradNorm(trainable, clip);
      const lrNow = lrAt(step, steps, lr, minLr, warmup);
      opt.step(lrNow);
      opt.zeroGrad();
      state.step = step;
      state.adamT = opt.t;
      state.rng = rng.state;
      state.tokens += tokensPerStep;
      const dt = performance.now() - t0;
      state.trainMs += dt;
      sessionTokens += tokensPerStep;
      recent.push(dt);
      if (recent.length > 20) recent = recent.slice(-20);
      const tokensPerSec = (tokensPerStep * recent.length * 1000) / recent.reduce((a, b) => a + b, 0);
      const m = { step, loss: lossSum / accum, ce: ceSum / accum, kl: klSum / accum, mse: mseSum / accum, lr: lrNow, gradNorm, tokens: state.tokens, tokensPerSec, ms: dt };
      lastLoss = m.loss;
      fs.appendFileSync(metricsFile, `${JSON.stringify(m)}\n`);
      emit({ phase: 'train', step, steps, startStep, loss: m.loss, ce: m.ce, kl: m.kl, mse: m.mse, lr: lrNow, tokensPerSec });
      const checkpointed = step % ckptEvery === 0 || step === steps;
      if (checkpointed) saveCheckpoint(ckptFile, sp.list, opt, state);
      await opts.onStep?.({ step, loss: m.loss, ce: m.ce, kl: m.kl, mse: m.mse, lr: lrNow, gradNorm, tokens: state.tokens, checkpointed });
      await new Promise((r) => setImmediate(r)); // let signal handlers run
      if ((stop || opts.signal?.aborted) && state.step < steps) {
        if (!checkpointed) saveCheckpoint(ckptFile, sp.list, opt, state);
        interrupted = true;
        break;
      }
    }
    if (interrupted && state.step === startStep && state.step > 0) saveCheckpoint(ckptFile, sp.list, opt, state);
  } finally {
    if (opts.handleSigint) process.off('SIGINT', onSigint);
  }
  const sessionSec = (performance.now() - sessionStart) / 1000;
  const result: DistillResult = {
    outDir: out, studentDir: path.join(out, 'student'), checkpoint: ckptFile, metricsFile, step: state.step, steps, interrupted,
    resumedFrom, lastLoss, tokensPerSec: sessionSec > 0 ? sessionTokens / sessionSec : 0,
    trainableParams: trainable.reduce((a, p) => a + p.data.length, 0), evalBefore,
  };
  if (interrupted) return result;

  // Finished: save the student, evaluate, plot, summarise.
  saveModel(result.studentDir, student, tokenizerPath);
  if (student instanceof SharedLlamaModel) {
    const planText = `${JSON.stringify(student.plan, null, 2)}\n`;
    writeAtomic(path.join(out, 'plan.json'), (fd) => writeAll(fd, Buffer.from(planText)));
  }
  if (evalSets.length) result.evalAfter = runEval();
  if (opts.plot ?? true) result.plotFiles = await plotLoss(metricsFile, path.join(out, 'loss'), w);
  const summary = {
    teacher: typeof opts.teacher === 'string' ? opts.teacher : '(model)',
    student: typeof opts.student === 'string' ? opts.student : opts.plan !== undefined ? 'built from plan' : '(model)',
    plan: student instanceof SharedLlamaModel ? student.plan : null,
    options: fp, data: { description: data.description, sequences: data.sequences.length },
    steps: state.step, tokens: state.tokens, trainMs: state.trainMs, lastLoss, trainableParams: result.trainableParams,
    evalBefore, evalAfter: result.evalAfter, gapClosed: gapClosed(evalBefore, result.evalAfter),
  };
  const text = `${JSON.stringify(summary, null, 2)}\n`;
  writeAtomic(path.join(out, 'summary.json'), (fd) => writeAll(fd, Buffer.from(text)));
  return result;
}

/** Fraction of the student–teacher loss gap closed by training, per eval set: `(before − after) / (before − teacher)`. */
export function gapClosed(before?: EvalSet[], after?: EvalSet[]): Record<string, number> | undefined {
  if (!before || !after) return undefined;
  const out: Record<string, number> = {};
  for (const a of after) {
    const b = before.find((x) => x.name === a.name);
    if (!b) continue;
    const gap = b.student.loss - b.teacher.loss;
    out[a.name] = gap !== 0 ? (b.student.loss - a.student.loss) / gap : NaN;
  }
  return out;
}

async function loadData(tokenizer: Tokenizer, paths: readonly string[], o: { seqLen: number; field?: string; maxTokens: number }): Promise<TokenDataset> {
  // jsonl files of token ids (e.g. teacher-samples.jsonl from an earlier run) are used as they are.
  const idFiles = paths.filter(isIdsJsonl);
  const textFiles = paths.filter((p) => !isIdsJsonl(p));
  const parts: TokenDataset[] = [];
  if (textFiles.length) parts.push(await textSequences(tokenizer, textFiles, o));
  for (const f of idFiles) {
    const seqs = packDocuments(readSamples(f), o.seqLen, o.maxTokens);
    parts.push({ sequences: seqs, description: `ids:${f}`, fingerprint: fingerprint(seqs) });
  }
  return { sequences: parts.flatMap((p) => p.sequences), description: parts.map((p) => p.description).join(' + '), fingerprint: parts.map((p) => p.fingerprint).join('+') };
}

function isIdsJsonl(p: string): boolean {
  if (!/\.jsonl$/i.test(p) || !fs.existsSync(p)) return false;
  const fd = fs.openSync(p, 'r');
  try {
    const buf = Buffer.alloc(256);
    const n = fs.readSync(fd, buf, 0, 256, 0);
    return /^\s*\{\s*"ids"\s*:/.test(buf.subarray(0, n).toString('utf8'));
  } finally {
    fs.closeSync(fd);
  }
}

/** A short hash identifying a teacher: its config and a strided sample of every parameter. */
function teacherKey(m: LlamaModel): string {
  let h = 0x811c9dc5;
  const mix = (x: number) => {
    h ^= x;
    h = Math.imul(h, 0x01000193) >>> 0;
  };
  for (const ch of JSON.stringify(m.config)) mix(ch.charCodeAt(0));
  const bits = new Int32Array(1);
  const f = new Float32Array(bits.buffer);
  const arrays = [m.params.embed, m.params.norm, m.params.lmHead, ...m.params.layers.flatMap((lp) => Object.values(lp))]
    .map((a) => (a instanceof HalfWeight ? a.bits : a))
    .filter((a): a is Float32Array | Uint16Array => a instanceof Float32Array || a instanceof Uint16Array);
  for (const a of arrays) {
    const stride = Math.max(1, Math.floor(a.length / 256));
    for (let i = 0; i < a.length; i += stride) {
      f[0] = a[i];
      mix(bits[0]);
    }
  }
  return h.toString(16).padStart(8, '0');
}

/** Keep only metric lines of steps up to `step` (a killed run may have logged steps past its last checkpoint). */
function truncateMetrics(file: string, step: number): void {
  if (!fs.existsSync(file)) return;
  const keep = fs.readFileSync(file, 'utf8').split('\n').filter((l) => {
    if (!l.trim()) return false;
    try {
      return (JSON.parse(l) as { step: number }).step <= step;
    } catch {
      return false; // a torn last line
    }
  });
  const text = keep.length ? `${keep.join('\n')}\n` : '';
  writeAtomic(file, (fd) => writeAll(fd, Buffer.from(text)));
}

async function plotLoss(metricsFile: string, base: string, w: LossWeights): Promise<{ svg: string; png: string } | undefined> {
  if (!fs.existsSync(metricsFile)) return undefined;
  const rows = fs.readFileSync(metricsFile, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as Record<string, number>);
  if (rows.length === 0) return undefined;
  const x = rows.map((r) => r.step);
  const series = [{ name: 'total loss', x, y: rows.map((r) => r.loss) }, { name: 'CE (labels)', x, y: rows.map((r) => r.ce) }];
  if (w.beta !== 0) series.push({ name: `KL (T=${w.temperature})`, x, y: rows.map((r) => r.kl) });
  if (w.gamma !== 0) series.push({ name: 'hidden MSE', x, y: rows.map((r) => r.mse) });
  const chart = await lineChart(series, { title: 'Distillation loss', xTitle: 'step', yTitle: 'loss', subtitle: `α=${w.alpha} β=${w.beta} T=${w.temperature} γ=${w.gamma}` });
  return writeChart(chart, base);
}
