/**
 * Measuring candidate students: the calibration loss (mean next-token cross-entropy, nats/token) of the teacher
 * under a sharing plan, with forward passes only. The plan search evaluates many plans that extend one base plan by
 * one more shared layer; all of them compute layers `0 .. l−1` exactly as the base does, so the evaluator caches the
 * base's input to every layer and the probabilities of every layer that computes its own attention, and runs a
 * candidate from its first differing layer `l` only. Cost is counted in forward-pass equivalents (layers run / L).
 *
 * @example
 * ```ts
 * const ev = new PlanEvaluator(teacher, calibration.sequences);
 * ev.rebase(null);                           // the teacher: base loss
 * const d = ev.loss(makePlan('m', [{ anchor: 2, shared: [3] }])) - ev.baseLoss;
 * ```
 */
import type { LlamaModel } from '../models/llama.js';
import { withPlan } from '../models/surgery.js';
import type { LayerAttention } from '../models/attention-kinds.js';
import type { SharingPlan } from '../models/sharing-plan.js';
import { OptionError } from '../errors.js';

interface Chunk {
  ids: Int32Array; // (B, T−1) inputs
  targets: Int32Array; // (B, T−1) next tokens
  batch: number;
}

interface BaseCache {
  attention: readonly LayerAttention[];
  /** Per chunk, per layer: the layer's input `(B·(T−1), dim)`. */
  x: Float32Array[][];
  /** Per chunk: probabilities of every layer that computes its own attention. */
  probs: Map<number, Float32Array>[];
}

/** Bytes the cache of a base plan needs for `n` sequences of `t` inputs (layer inputs plus every layer's probabilities). */
export function cacheBytes(model: LlamaModel, n: number, t: number): number {
  const c = model.config;
  return 4 * n * c.numLayers * t * (c.hiddenSize + c.numHeads * t);
}

export class PlanEvaluator {
  private readonly chunks: Chunk[];
  private base: BaseCache | null = null;
  /** Loss of the current base plan (set by {@link rebase}). */
  baseLoss = NaN;
  /** Forward-pass equivalents run so far (a pass from layer l counts (L − l) / L). */
  passes = 0;
  /** Plans measured so far (base plans included). */
  evaluations = 0;
  /** Whether candidates reuse the base's first layers (false when the cache would exceed `maxCacheBytes`). */
  readonly caching: boolean;

  constructor(private readonly teacher: LlamaModel, sequences: readonly Int32Array[], opts: { batch?: number; maxCacheBytes?: number } = {}) {
    if (sequences.length === 0) throw new OptionError('--seqs', 'the plan search needs at least one calibration sequence');
    const T = sequences[0].length - 1;
    if (T < 1 || sequences.some((s) => s.length !== T + 1)) throw new OptionError('data', 'calibration sequences must all have the same length (at least 2 tokens)');
    const batch = Math.max(1, opts.batch ?? 8);
    this.chunks = [];
    for (let i = 0; i < sequences.length; i += batch) {
      const group = sequences.slice(i, i + batch);
      const ids = new Int32Array(group.length * T);
      const targets = new Int32Array(group.length * T);
      group.forEach((s, b) => {
        ids.set(s.subarray(0, T), b * T);
        targets.set(s.subarray(1), b * T);
      });
      this.chunks.push({ ids, targets, batch: group.length });
    }
    this.caching = cacheBytes(teacher, sequences.length, T) <= (opts.maxCacheBytes ?? 2 * 1024 ** 3);
  }

  private student(plan: SharingPlan | null): LlamaModel {
    return plan ? withPlan(this.teacher, plan) : this.teacher;
  }

  /** Measure `plan` in full and make it the base that later candidates start from. Returns its loss. */
  rebase(plan: SharingPlan | null): number {
    const m = this.student(plan);
    const own = new Set(m.attention.flatMap((k, l) => (k.kind === 'echo' ? [] : [l])));
    const cache: BaseCache = { attention: m.attention, x: [], probs: [] };
    let sum = 0;
    let count = 0;
    for (const c of this.chunks) {
      const xs: Float32Array[] = [];
      const probs = new Map<number, Float32Array>();
      const logits = m.forward(c.ids, {
        batch: c.batch,
        ...(this.caching ? { onLayerInput: (l: number, x: Float32Array) => (xs[l] = x), onAttentionProbs: (l: number, p: Float32Array) => probs.set(l, p), probsLayers: own } : {}),
      });
      cache.x.push(xs);
      cache.probs.push(probs);
      sum += this.lossSum(logits, c.targets);
      count += c.targets.length;
    }
    this.base = this.caching ? cache : null;
    this.passes += 1;
    this.evaluations++;
    this.baseLoss = sum / count;
    return this.baseLoss;
  }

  /** Calibration loss of `plan`, running only the layers from the first one where it differs from the base. */
  loss(plan: SharingPlan | null): number {
    const m = this.student(plan);
    const L = m.config.numLayers;
    const from = this.base ? firstDifference(this.base.attention, m.attention) : 0;
    if (this.base && from === L) return this.baseLoss;
    let sum = 0;
    let count = 0;
    this.chunks.forEach((c, i) => {
      const start = this.base && from > 0 ? { layer: from, x: this.base.x[i][from].slice(), probs: this.base.probs[i] } : undefined;
      const logits = m.forward(c.ids, { batch: c.batch, from: start });
      sum += this.lossSum(logits, c.targets);
      count += c.targets.length;
    });
    this.passes += (L - (this.base ? from : 0)) / L;
    this.evaluations++;
    return sum / count;
  }

  private lossSum(logits: Float32Array, targets: Int32Array): number {
    const losses = new Float32Array(targets.length);
    this.teacher.backend.crossEntropy(logits, targets, losses, targets.length, this.teacher.config.vocabSize);
    let s = 0;
    for (const l of losses) s += l;
    return s;
  }
}

/** The first layer whose attention kind (or anchor, or head map) differs. */
function firstDifference(a: readonly LayerAttention[], b: readonly LayerAttention[]): number {
  for (let l = 0; l < a.length; l++) {
    const x = a[l];
    const y = b[l];
    if (x.kind !== y.kind) return l;
    if (x.kind === 'echo' && y.kind === 'echo') {
      if (x.anchor !== y.anchor || String(x.heads ?? '') !== String(y.heads ?? '')) return l;
    }
  }
  return a.length;
}
