/**
 * The one training loop every fine-tuning method reuses (distillation, PostShare, ...): a method supplies the
 * parameters, a loss function and a dataset; the loop owns batching (seeded epoch shuffles), gradient accumulation,
 * clipping, AdamW with a schedule, metrics, atomic checkpoints, bit-identical resume and clean interruption.
 *
 * Resume: with `resume` set to a checkpoint's state, the loop checks the run's fingerprint against it (keys in
 * `softKeys` may change), loads parameters and moments, and continues the same data order; with the same options,
 * backend and thread count the final weights equal those of an uninterrupted run, bit for bit.
 *
 * @example
 * ```ts
 * const res = await train({
 *   backend: model.backend, params: sp.list, trainable, optimizer: new AdamW(trainable), data, steps: 100,
 *   batch: 8, seqLen: 128, schedule: (s) => lrAt(s, 100, 1e-3, 1e-4, 5), seed: 1,
 *   loss: (b, tape) => { const { logits } = forwardTrain(model, sp, b.ids, { batch: b.batch, tape });
 *                        return { loss: apply(tape, OPS.crossEntropy, { logits, targets: b.targets, rows: b.ids.length, cols: V }) }; },
 *   checkpoint: { file: 'out/ckpt.safetensors', every: 50, fingerprint: { lr: 1e-3 } },
 * });
 * ```
 */
import type { Backend } from '../backend/backend.js';
import { Tape, type Param, type Var } from '../autograd/tape.js';
import { CheckpointStateError } from '../errors.js';
import { clipScale, gradNorm as gradNormOf, type AdamW } from './optim.js';
import { CHECKPOINT_FORMAT, loadCheckpoint, saveCheckpoint, type TrainState } from './checkpoint.js';
import type { TokenDataset } from './data.js';
import { EpochBatches, type Batch } from './batches.js';

export type { Batch };

export interface LossOutput {
  /** Scalar loss Var recorded on the tape. */
  loss: Var;
  /** Named parts to log (averaged over micro-batches). */
  parts?: Record<string, number>;
}

export interface StepReport {
  step: number;
  steps: number;
  startStep: number;
  loss: number;
  parts: Record<string, number>;
  lr: number;
  gradNorm: number;
  tokens: number;
  tokensPerSec: number;
  ms: number;
  checkpointed: boolean;
}

export interface TrainOptions {
  backend: Backend;
  /** Every parameter the checkpoint holds (trainable or not). */
  params: readonly Param[];
  trainable: readonly Param[];
  optimizer: AdamW;
  data: TokenDataset;
  steps: number;
  batch: number;
  seqLen: number;
  /** Micro-batches per optimizer step (default 1). */
  accum?: number;
  /** Learning rate of (1-based) step. */
  schedule: (step: number) => number;
  /** Global gradient-norm clip (default 1; 0 = off). */
  clip?: number;
  seed: number;
  loss: (batch: Batch, tape: Tape) => LossOutput;
  checkpoint?: {
    file: string;
    every: number;
    /** Options that must not change across a resume. */
    fingerprint: Record<string, unknown>;
    /** Fingerprint keys that may change across a resume (e.g. the step count). */
    softKeys?: ReadonlySet<string>;
  };
  /** Continue from this checkpoint state (read with `readCheckpointState`). */
  resume?: TrainState | null;
  /** Kept in the checkpoint state and handed back on resume. */
  evalBefore?: unknown;
  /** Stop (with a checkpoint) at the next step boundary. */
  signal?: AbortSignal;
  /** Also stop at the next step boundary on SIGINT. */
  handleSigint?: boolean;
  /** After each step, before its checkpoint (e.g. append a metrics line). */
  onLog?: (r: StepReport) => void;
  /** After each step and its checkpoint. May be async. */
  onStep?: (r: StepReport) => void | Promise<void>;
}

export interface TrainResult {
  state: TrainState;
  interrupted: boolean;
  resumedFrom?: number;
  lastLoss?: number;
  /** Training tokens per second of this session. */
  tokensPerSec: number;
}

/** Run (or continue) training to `steps`. */
export async function train(o: TrainOptions): Promise<TrainResult> {
  const accum = o.accum ?? 1;
  const ck = o.checkpoint;
  const state = o.resume ? resumeState(o) : freshState(o);
  const batches = new EpochBatches(o.data, o.seed, state, o.resume != null, ck?.file ?? 'training');
  // Zeroed gradient buffers from the start, so a resumed run does exactly the arithmetic of an uninterrupted one.
  for (const p of o.trainable) p.grad = new Float32Array(p.data.length);
  let stop = false;
  const onSigint = () => (stop = true);
  if (o.handleSigint) process.on('SIGINT', onSigint);
  const startStep = state.step;
  const tokensPerStep = accum * o.batch * o.seqLen;
  const t0 = performance.now();
  let recent: number[] = [];
  let lastLoss: number | undefined;
  let interrupted = false;
  const stopping = () => stop || o.signal?.aborted === true;
  try {
    while (state.step < o.steps) {
      if (stopping()) {
        interrupted = true;
        break;
      }
      const t1 = performance.now();
      const step = state.step + 1;
      const { loss, parts } = runStep(o, batches, accum);
      const gradNorm = gradNormOf(o.trainable, o.backend);
      const lr = o.schedule(step);
      o.optimizer.step(lr, clipScale(gradNorm, o.clip ?? 1)); // clipping folded into the update
      o.optimizer.zeroGrad();
      const ms = performance.now() - t1;
      Object.assign(state, { step, adamT: o.optimizer.t, tokens: state.tokens + tokensPerStep, trainMs: state.trainMs + ms });
      batches.saveTo(state);
      recent = [...recent.slice(-19), ms];
      const tokensPerSec = (tokensPerStep * recent.length * 1000) / recent.reduce((a, b) => a + b, 0);
      const checkpointed = ck !== undefined && (step % ck.every === 0 || step === o.steps);
      const report: StepReport = { step, steps: o.steps, startStep, loss, parts, lr, gradNorm, tokens: state.tokens, tokensPerSec, ms, checkpointed };
      lastLoss = loss;
      o.onLog?.(report);
      if (checkpointed) saveCheckpoint(ck.file, o.params, o.optimizer, state);
      await o.onStep?.(report);
      await new Promise((r) => setImmediate(r)); // let signal handlers run
      if (stopping() && state.step < o.steps) {
        if (ck && !checkpointed) saveCheckpoint(ck.file, o.params, o.optimizer, state);
        interrupted = true;
        break;
      }
    }
    if (ck && interrupted && state.step === startStep && state.step > 0) saveCheckpoint(ck.file, o.params, o.optimizer, state);
  } finally {
    if (o.handleSigint) process.off('SIGINT', onSigint);
  }
  const sec = (performance.now() - t0) / 1000;
  const sessionTokens = (state.step - startStep) * tokensPerStep;
  return { state, interrupted, resumedFrom: o.resume ? startStep : undefined, lastLoss, tokensPerSec: sec > 0 ? sessionTokens / sec : 0 };
}

/** One optimizer step's forward/backward passes (gradients accumulated over `accum` micro-batches). */
function runStep(o: TrainOptions, batches: EpochBatches, accum: number): { loss: number; parts: Record<string, number> } {
  let loss = 0;
  const parts: Record<string, number> = {};
  for (let micro = 0; micro < accum; micro++) {
    const b = batches.next(o.batch, o.seqLen);
    const tape = new Tape(o.backend);
    const r = o.loss(b, tape);
    tape.backward(r.loss, 1 / accum);
    loss += r.loss.data[0];
    for (const [k, v] of Object.entries(r.parts ?? {})) parts[k] = (parts[k] ?? 0) + v;
  }
  for (const k of Object.keys(parts)) parts[k] /= accum;
  return { loss: loss / accum, parts };
}

function freshState(o: TrainOptions): TrainState {
  return {
    format: CHECKPOINT_FORMAT, version: 1, step: 0, adamT: 0, epoch: 0, cursor: 0, rng: 0, epochRng: o.seed >>> 0,
    tokens: 0, trainMs: 0, fingerprint: o.checkpoint?.fingerprint ?? {}, evalBefore: o.evalBefore,
  };
}

function resumeState(o: TrainOptions): TrainState {
  const ck = o.checkpoint;
  const prior = o.resume!;
  if (!ck) throw new CheckpointStateError('training', 'resuming needs a checkpoint file');
  const fp = ck.fingerprint;
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  const diffs = Object.keys({ ...fp, ...prior.fingerprint }).filter((k) => !ck.softKeys?.has(k) && !same(fp[k], prior.fingerprint[k]));
  if (diffs.length) {
    const what = diffs.map((k) => `${k} (was ${JSON.stringify(prior.fingerprint[k])}, now ${JSON.stringify(fp[k])})`).join('; ');
    throw new CheckpointStateError(ck.file, `cannot resume: the checkpoint was written by a run with other options or data: ${what}`);
  }
  const state = loadCheckpoint(ck.file, o.params, o.optimizer);
  state.fingerprint = fp;
  return state;
}
