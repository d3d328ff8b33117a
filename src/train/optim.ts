/**
 * Optimisation: AdamW with decoupled weight decay (Loshchilov & Hutter; PyTorch's `AdamW` update) and global
 * gradient-norm clipping (the schedule is in `schedule.ts`). State is plain Float32Arrays so checkpoints
 * can store it exactly.
 */
import type { Param } from '../autograd/tape.js';

export interface AdamWOptions {
  /** Default 0.9. */
  beta1?: number;
  /** Default 0.95. */
  beta2?: number;
  /** Default 1e-8. */
  eps?: number;
  /** Decoupled weight decay, applied to matrices (2-D params: projections, embeddings) only, not to norms or biases. Default 0.01. */
  weightDecay?: number;
}

export class AdamW {
  readonly params: readonly Param[];
  readonly m: Float32Array[];
  readonly v: Float32Array[];
  /** Number of updates taken (bias correction uses it). */
  t = 0;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;

  constructor(params: readonly Param[], opts: AdamWOptions = {}) {
    this.params = params;
    this.m = params.map((p) => new Float32Array(p.data.length));
    this.v = params.map((p) => new Float32Array(p.data.length));
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.95;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0.01;
  }

  /** One update with learning rate `lr`: `p ← p − lr·(m̂/(√v̂+ε) + λ·p)`. Params without a gradient are skipped. */
  step(lr: number): void {
    this.t++;
    const { beta1: b1, beta2: b2, eps } = this;
    const c1 = 1 - b1 ** this.t;
    const c2 = 1 - b2 ** this.t;
    this.params.forEach((p, i) => {
      const g = p.grad;
      if (!g) return;
      const m = this.m[i];
      const v = this.v[i];
      const w = p.data;
      const decay = p.shape.length >= 2 ? 1 - lr * this.weightDecay : 1;
      for (let j = 0; j < w.length; j++) {
        const gj = g[j];
        m[j] = b1 * m[j] + (1 - b1) * gj;
        v[j] = b2 * v[j] + (1 - b2) * gj * gj;
        w[j] = w[j] * decay - (lr * (m[j] / c1)) / (Math.sqrt(v[j] / c2) + eps);
      }
    });
  }

  zeroGrad(): void {
    for (const p of this.params) p.grad?.fill(0);
  }
}

/** Scale all gradients so their global L2 norm is at most `maxNorm` (≤ 0: no clipping). Returns the norm before clipping. */
export function clipGradNorm(params: readonly Param[], maxNorm: number): number {
  let sq = 0;
  for (const p of params) {
    const g = p.grad;
    if (!g) continue;
    for (let j = 0; j < g.length; j++) sq += g[j] * g[j];
  }
  const norm = Math.sqrt(sq);
  if (maxNorm > 0 && norm > maxNorm) {
    const k = maxNorm / (norm + 1e-6);
    for (const p of params) {
      const g = p.grad;
      if (g) for (let j = 0; j < g.length; j++) g[j] *= k;
    }
  }
  return norm;
}
