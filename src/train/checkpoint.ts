/**
 * Training checkpoints: one `.safetensors` file holding every student parameter (`param.<name>`), the AdamW moments
 * of the trainable ones (`adam_m.<name>`, `adam_v.<name>`) and the run state as JSON in the header metadata
 * (step, optimizer step count, RNG state, data position, fingerprints). Written atomically (temp file, fsync,
 * rename), so a crash at any moment leaves either the previous checkpoint or the new one, never a torn file.
 */
import fs from 'node:fs';
import { openSafetensors, writeSafetensors, toF32, type TensorData } from '../io/safetensors.js';
import { CheckpointStateError } from '../errors.js';
import type { Param } from '../autograd/tape.js';
import type { AdamW } from './optim.js';

export const CHECKPOINT_FORMAT = 'echoatt-train-checkpoint';
/** Written by echoatt before the training loop was shared by every method; read as the same layout. */
const OLD_FORMAT = 'echoatt-distill-checkpoint';

export interface TrainState {
  format: typeof CHECKPOINT_FORMAT | typeof OLD_FORMAT;
  version: 1;
  /** Optimizer steps completed. */
  step: number;
  /** AdamW update count (equals `step`). */
  adamT: number;
  /** Data position: epoch number (0-based), index into the epoch's order of the next sequence. */
  epoch: number;
  cursor: number;
  /** Shuffle RNG state now, and at the start of the epoch (its order is regenerated from it). */
  rng: number;
  epochRng: number;
  /** Tokens trained on so far. */
  tokens: number;
  /** Training time so far (ms), excluding set-up. */
  trainMs: number;
  /** Options that must not change across a resume, and the data fingerprint. */
  fingerprint: Record<string, unknown>;
  /** What the method keeps across a resume besides the loop's state (distillation: its evaluation before training). */
  evalBefore?: unknown;
}

export function saveCheckpoint(file: string, params: readonly Param[], opt: AdamW, state: TrainState): void {
  const tensors: [string, TensorData][] = [];
  for (const p of params) tensors.push([`param.${p.name}`, { dtype: 'f32', shape: [...p.shape], data: p.data }]);
  opt.params.forEach((p, i) => {
    tensors.push([`adam_m.${p.name}`, { dtype: 'f32', shape: [...p.shape], data: opt.m[i] }]);
    tensors.push([`adam_v.${p.name}`, { dtype: 'f32', shape: [...p.shape], data: opt.v[i] }]);
  });
  writeSafetensors(file, tensors, { state: JSON.stringify(state) });
}

/** Read a checkpoint's state without loading tensors (null if the file does not exist). */
export function readCheckpointState(file: string): TrainState | null {
  if (!fs.existsSync(file)) return null;
  const st = openSafetensors(file);
  try {
    return parseState(file, st.metadata.state);
  } finally {
    st.close();
  }
}

function parseState(file: string, raw: string | undefined): TrainState {
  if (raw === undefined) throw new CheckpointStateError(file, 'no training state in the header metadata (not an echoatt training checkpoint)');
  let s: TrainState;
  try {
    s = JSON.parse(raw) as TrainState;
  } catch {
    throw new CheckpointStateError(file, 'training state is not valid JSON');
  }
  if ((s.format !== CHECKPOINT_FORMAT && s.format !== OLD_FORMAT) || s.version !== 1) throw new CheckpointStateError(file, `not an ${CHECKPOINT_FORMAT} v1 file`);
  for (const k of ['step', 'adamT', 'epoch', 'cursor', 'rng', 'epochRng', 'tokens', 'trainMs'] as const) {
    if (typeof s[k] !== 'number' || !Number.isFinite(s[k])) throw new CheckpointStateError(file, `state field '${k}' is missing or not a number`);
  }
  return s;
}

/** Load a checkpoint into `params` (all) and `opt` (moments of its trainable params), returning the state. */
export function loadCheckpoint(file: string, params: readonly Param[], opt: AdamW): TrainState {
  const st = openSafetensors(file);
  try {
    const state = parseState(file, st.metadata.state);
    const read = (name: string, into: Float32Array) => {
      if (!st.tensors.has(name)) throw new CheckpointStateError(file, `missing tensor '${name}' (was the run started with other freeze options or another student?)`);
      const a = toF32(st.read(name));
      if (a.length !== into.length) throw new CheckpointStateError(file, `'${name}' has ${a.length} elements, the model needs ${into.length}`);
      into.set(a);
    };
    for (const p of params) read(`param.${p.name}`, p.data);
    opt.params.forEach((p, i) => {
      read(`adam_m.${p.name}`, opt.m[i]);
      read(`adam_v.${p.name}`, opt.v[i]);
    });
    opt.t = state.adamT;
    return state;
  } finally {
    st.close();
  }
}
