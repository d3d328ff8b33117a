/**
 * Layer criticality: how much the model's next-token loss rises when layer `l`'s attention is replaced by that of
 * its most similar earlier layer `a` (highest head-averaged cosine), i.e. the loss of the one-group student
 * `{anchor: a, shared: [l]}` minus the teacher's, both as mean cross-entropy (nats/token) over the calibration
 * sequences. A cheap proxy for what sharing `l` costs, used by the `budget` plan strategy.
 *
 * @example
 * ```ts
 * const crit = layerCriticality(teacher, sequences, stats.cosine);
 * crit.layers[3]; // { layer: 3, anchor: 2, similarity: 0.91, loss: 2.31, delta: 0.012 }
 * ```
 */
import type { Backend } from '../backend/backend.js';
import type { LlamaModel } from '../models/llama.js';
import { withPlan } from '../models/surgery.js';
import { makePlan } from '../models/sharing-plan.js';
import type { ForwardModel, MatrixStat } from './similarity.js';

export interface LayerCriticality {
  layer: number;
  /** Most similar earlier layer (null for layer 0, which has none). */
  anchor: number | null;
  /** Head-averaged cosine between `anchor` and `layer`. */
  similarity: number | null;
  /** Mean next-token cross-entropy of the one-group student (nats/token). */
  loss: number | null;
  /** `loss − baseLoss`. */
  delta: number | null;
}

export interface CriticalityResult {
  /** Teacher mean cross-entropy over the same sequences. */
  baseLoss: number;
  sequences: number;
  layers: LayerCriticality[];
}

/** Mean next-token cross-entropy of one sequence `ids` `(T)` given its logits `(T, V)`. */
export function sequenceLoss(backend: Backend, logits: Float32Array, ids: Int32Array, vocab: number): number {
  const rows = ids.length - 1;
  if (rows < 1) return 0;
  const targets = ids.subarray(1);
  const losses = new Float32Array(rows);
  backend.crossEntropy(logits.subarray(0, rows * vocab), targets, losses, rows, vocab);
  let s = 0;
  for (let i = 0; i < rows; i++) s += losses[i];
  return s / rows;
}

/** Mean over sequences of {@link sequenceLoss}, one forward pass per sequence. */
export function meanLoss(model: ForwardModel & { backend: Backend; config: { vocabSize: number } }, sequences: readonly Int32Array[], onSequence?: () => void): number {
  let s = 0;
  for (const ids of sequences) {
    s += sequenceLoss(model.backend, model.forward(ids), ids, model.config.vocabSize);
    onSequence?.();
  }
  return s / sequences.length;
}

/** For each layer, the earlier layer with the highest mean cosine (null for layer 0). */
export function mostSimilarEarlier(cosine: MatrixStat): (number | null)[] {
  const L = cosine.n;
  return Array.from({ length: L }, (_, l) => {
    let best: number | null = null;
    for (let a = 0; a < l; a++) if (best === null || cosine.mean[a * L + l] > cosine.mean[best * L + l]) best = a;
    return best;
  });
}

/**
 * Criticality of `layers` (default: every layer from 1 on). `baseLoss` is the teacher's mean loss on `sequences`
 * if already known (it is computed otherwise). `onSequence` is called after every student forward pass.
 */
export function layerCriticality(
  teacher: LlamaModel,
  sequences: readonly Int32Array[],
  cosine: MatrixStat,
  opts: { layers?: readonly number[]; baseLoss?: number; onSequence?: () => void } = {},
): CriticalityResult {
  const L = teacher.config.numLayers;
  const baseLoss = opts.baseLoss ?? meanLoss(teacher, sequences);
  const anchors = mostSimilarEarlier(cosine);
  const wanted = new Set(opts.layers ?? Array.from({ length: L - 1 }, (_, i) => i + 1));
  const layers: LayerCriticality[] = [];
  for (let l = 0; l < L; l++) {
    const a = anchors[l];
    if (a === null || !wanted.has(l) || sequences.length === 0) {
      layers.push({ layer: l, anchor: a, similarity: a === null ? null : cosine.mean[a * L + l], loss: null, delta: null });
      continue;
    }
    const student = withPlan(teacher, makePlan('criticality', [{ anchor: a, shared: [l] }]));
    const loss = meanLoss(student, sequences, opts.onSequence);
    layers.push({ layer: l, anchor: a, similarity: cosine.mean[a * L + l], loss, delta: loss - baseLoss });
  }
  return { baseLoss, sequences: sequences.length, layers };
}
