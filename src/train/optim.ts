/**
 * Optimisation: AdamW with decoupled weight decay (Loshchilov & Hutter; PyTorch's `AdamW` update) and global
 * gradient-norm clipping (the schedule is in `schedule.ts`). State is plain Float32Arrays so checkpoints
 * can store it exactly. The per-element work is backend kernels (`adamw`, `sumSquares`): at a 32k vocabulary and
 * hundreds of millions of parameters a JavaScript loop over them cost more than a second per step.
 */
import type { Backend } from '../backend/backend.js';
import { getBackend } from '../backend/index.js';
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
  /** Kernels for the update (default: `getBackend()`); pass the model's backend. */
  backend?: Backend;
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
  readonly backend: Backend;

  constructor(params: readonly Param[], opts: AdamWOptions = {}) {
    this.params = params;
    this.m = params.map((p) => new Float32Array(p.data.length));
    this.v = params.map((p) => new Float32Array(p.data.length));
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.95;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0.01;
    this.backend = opts.backend ?? getBackend();
  }

  /**
   * One update with learning rate `lr`: `p ← p − lr·(m̂/(√v̂+ε) + λ·p)` with the moments of `gradScale · grad`
   * (gradient clipping passes its factor here instead of rescaling every gradient first). Params without a gradient
   * are skipped.
   */
  step(lr: number, gradScale = 1): void {
    this.t++;
    this.params.forEach((p, i) => {
      const g = p.grad;
      if (!g) return;
      this.backend.adamw({
        w: p.data, g, m: this.m[i], v: this.v[i], n: p.data.length, lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps,
        weightDecay: p.shape.length >= 2 ? this.weightDecay : 0, step: this.t, gradScale,
      });
    });
  }

  zeroGrad(): void {
    for (const p of this.params) p.grad?.fill(0);
  }
}

/** Global L2 norm of the gradients (params without one are skipped). */
export function gradNorm(params: readonly Param[], be: Backend = getBackend()): number {
  let sq = 0;
  for (const p of params) if (p.grad) sq += be.sumSquares(p.grad, p.grad.length);
  return Math.sqrt(sq);
}

/** The factor that brings a global gradient norm `norm` down to at most `maxNorm` (1 when within it, or `maxNorm ≤ 0`). */
export function clipScale(norm: number, maxNorm: number): number {
  return maxNorm > 0 && norm > maxNorm ? maxNorm / (norm + 1e-6) : 1;
}

/**
 * Scale all gradients so their global L2 norm is at most `maxNorm` (≤ 0: no clipping). Returns the norm before clipping.
 * (The training loop does not rescale: it passes {@link clipScale} to {@link AdamW.step}.)
 */
export function clipGradNorm(params: readonly Param[], maxNorm: number, be: Backend = getBackend()): number {
  const norm = gradNorm(params, be);
  const k = clipScale(norm, maxNorm);
  if (k !== 1) {
    for (const p of params) {
      const g = p.grad;
      if (g) for (let j = 0; j < g.length; j++) g[j] *= k;
    }
  }
  return norm;
}
