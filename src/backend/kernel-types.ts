/**
 * Types that both the `Backend` interface (`backend.ts`) and the op table (`ops/`) use, in a file of their own
 * so that neither imports the other (`backend.ts` re-exports them).
 */

/** How RoPE pairs a head's dimensions: `(x[2i], x[2i+1])` (llama2.c) or `(x[i], x[i+D/2])` (Hugging Face). */
export type RopeStyle = 'interleaved' | 'half';

/**
 * One AdamW step (decoupled weight decay, PyTorch's `AdamW`) over `n` parameters, in place: with `g' = gradScale · g`,
 * `m ← β1 m + (1 − β1) g'`, `v ← β2 v + (1 − β2) g'²`,
 * `w ← w · (1 − lr · weightDecay) − lr · (m / (1 − β1^step)) / (√(v / (1 − β2^step)) + eps)`.
 */
export interface AdamWParams {
  w: Float32Array;
  g: Float32Array;
  m: Float32Array;
  v: Float32Array;
  n: number;
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** The 1-based update count (bias correction). */
  step: number;
  /** Default 1 (gradient clipping folds its factor in here). */
  gradScale?: number;
}
