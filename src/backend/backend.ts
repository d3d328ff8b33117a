/**
 * The kernel contract every compute backend implements.
 *
 * Conventions shared by every method:
 * - All float data is `Float32Array`, row-major, dense unless a leading dimension (`ld*`) or a stride says otherwise.
 *   Offsets (`*Off`) and strides are in elements, not bytes.
 * - The caller owns every array. A backend never keeps a reference to an argument after the call returns, never
 *   allocates arrays that it hands back, and writes only the output arrays named in the method's doc.
 * - Unless a method says an output may alias an input, outputs must not overlap inputs.
 * - Methods are synchronous. Native backends may run them on several threads internally.
 * - Backends do NOT validate sizes. Callers go through {@link checkedBackend} (see `validate.ts`), which throws a
 *   {@link ShapeError} naming the op and the shapes before any out-of-bounds access could happen. `getBackend()`
 *   always returns a checked backend, so a bad shape never crashes the process.
 * - NaN and Inf propagate as IEEE arithmetic says (a NaN in a softmax row makes that row NaN); kernels never
 *   silently replace them.
 *
 * Layout of attention tensors is token-major, the layout a projection `x · Wᵀ` produces without a transpose:
 * queries `(B, Tq, H, D)`, keys/values `(B, S, Hkv, D)`, with `H % Hkv === 0` (grouped-query attention:
 * query head `h` reads key/value head `floor(h / (H / Hkv))`). Probability matrices are head-major `(B, H, Tq, S)`.
 */
import type { StepProgram, StepRunner } from './program-types.js';
import type { HalfDType } from '../tensor/dtype.js';
import type { AdamWParams, RopeStyle } from './kernel-types.js';
import type { TableMethods } from './ops/index.js';

/**
 * Besides the methods written out below, a backend has one method per op-table entry (`ops/`: matvec, matmulHalf,
 * rmsnorm, rope, softmax, crossEntropy, the elementwise kernels, embedding, packProbs, klDivergence, sumSquares, …),
 * typed by the entry's reference and documented on the entry; see `ops/index.ts`.
 */
export interface Backend extends TableMethods {
  /** Short name, e.g. `'reference'` or `'native'`. */
  readonly name: string;
  /** Number of threads the backend computes with (1 for single-threaded backends). */
  readonly threads: number;
  /** Change the thread count (clamped to at least 1). Single-threaded backends ignore it. */
  setThreads(n: number): void;

  /**
   * General matrix multiply, optionally batched: for each `i < batch`,
   * `C_i = alpha · op(A_i) · op(B_i) + beta · C_i`, where `op(X) = X` or `Xᵀ`.
   * `op(A_i)` is `(m, k)`, `op(B_i)` is `(k, n)`, `C_i` is `(m, n)`.
   * When `beta === 0`, `C` is overwritten without being read (NaN in old C does not propagate).
   * Covers every layout a Linear layer and its gradient use: `y = x·Wᵀ` (transB), `dx = dy·W`, `dW = dyᵀ·x` (transA).
   */
  gemm(p: GemmParams): void;

  /**
   * Scaled-dot-product attention with a causal mask and grouped-query heads (see the layout note above).
   * Query row `t` (absolute position `p = qPos0 + t`) attends to key rows `0 ..= p` (clipped to `s`); with a sliding
   * `window` W > 0, to rows `max(0, p − W + 1) ..= p` only (a row left with no key has output 0).
   * Writes `out` `(B, Tq, H, D)`; if `probs` is given, also writes the post-softmax probabilities `(B, H, Tq, S)`
   * (masked entries exactly 0). Fast backends must not materialise probabilities when `probs` is absent, and skip
   * the keys outside a window rather than mask them. The backward works from `probs`, so it needs no window.
   */
  attention(p: AttentionParams): void;

  /**
   * Attention output from given probabilities (the shared-layer path: `out = P_anchor · V_own`).
   * `probs` `(B, H, Tq, S)`, `v` `(B, S, Hkv, D)` (batch stride `kvBatchStride`), writes `out` `(B, Tq, H, D)`.
   */
  probsTimesV(p: ProbsTimesVParams): void;

  /**
   * Backward of {@link attention} given its saved `probs`. Overwrites `dq` `(B,Tq,H,D)`, `dk` and `dv` `(B,S,Hkv,D)`.
   * If `dProbsExtra` `(B,H,Tq,S)` is given it is added to `∂L/∂P` before the softmax backward: this is how gradients
   * from shared layers that reused these probabilities reach the anchor's queries and keys.
   */
  attentionBackward(p: AttentionBackwardParams): void;

  /**
   * Backward of {@link probsTimesV}: overwrites `dProbs` `(B,H,Tq,S)` with `dout · vᵀ` at every entry (masked
   * entries included; the softmax backward zeroes them through `p = 0`) and `dv` `(B,S,Hkv,D)`.
   */
  probsTimesVBackward(p: ProbsTimesVBackwardParams): void;

  /**
   * Attention-map statistics, step 2: packed maps `maps[i]` `(heads, k)` each against one packed map `b`. For map `i`
   * and head `h`, `stats[(2i)·heads + h] = Σ_j a·b` and `stats[(2i + 1)·heads + h] = Σ_j −m ln m` with
   * `m = (a + b)/2` (entries with `m ≤ 0` add 0), and, when `gram` `(maps.length, heads, heads)` is given,
   * `gram[(i·heads + x)·heads + y] = Σ_j a_i[x, j] · b[y, j]`. `stats` (`2 · heads` per map) and `gram` are
   * `Float64Array`s; fast backends read `b` once for all maps and sum f32 chunks into f64 in a fixed order (the result
   * does not depend on the thread count).
   */
  compareProbs(maps: readonly Float32Array[], b: Float32Array, heads: number, k: number, stats: Float64Array, gram?: Float64Array): void;

  /** One AdamW update of `n` parameters in place (see {@link AdamWParams}). */
  adamw(p: AdamWParams): void;

  /**
   * Prepare a {@link StepProgram} (one decode step of a whole model as kernel calls over fixed buffers, see
   * `program.ts`) and return a function that runs it for one token at one position. The native backend runs a step
   * in one call; the reference interprets it through its own methods. Results equal the same calls made one by one.
   */
  stepProgram(p: StepProgram): StepRunner;
}

export type { AdamWParams, HalfDType, RopeStyle };

export interface GemmParams {
  m: number;
  n: number;
  k: number;
  transA?: boolean;
  transB?: boolean;
  a: Float32Array;
  b: Float32Array;
  c: Float32Array;
  aOff?: number;
  bOff?: number;
  cOff?: number;
  /** Leading dimension (row stride) of A as stored: default `transA ? m : k`. */
  lda?: number;
  /** Leading dimension of B as stored: default `transB ? k : n`. */
  ldb?: number;
  /** Leading dimension of C: default `n`. */
  ldc?: number;
  /** Default 1. */
  alpha?: number;
  /** Default 0 (C is overwritten). */
  beta?: number;
  /** Number of independent products, default 1. */
  batch?: number;
  /** Element distance between consecutive A_i (default: dense). 0 broadcasts one A to every batch. */
  strideA?: number;
  strideB?: number;
  strideC?: number;
}

/** The shape every attention kernel is told: query rows `(B, Tq, H, D)` against `S` key/value positions of `Hkv` heads. */
export interface AttentionShape {
  batch: number;
  tq: number;
  /** Number of key/value positions visible (≤ the cache capacity). */
  s: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
}

export interface AttentionParams extends AttentionShape {
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  out: Float32Array;
  /** Absolute position of query row 0. Prefill: 0; decode step at position p: p (then `s = p + 1`). */
  qPos0: number;
  /** Score scale, usually `1 / sqrt(headDim)`. */
  scale: number;
  /** Elements between batch entries of `k`/`v` (a KV cache of capacity Smax: `Smax · Hkv · D`). Default `s · Hkv · D`. */
  kvBatchStride?: number;
  /** Optional output `(B, H, Tq, S)`. */
  probs?: Float32Array;
  /** Sliding window: query position `p` sees keys `max(0, p − window + 1) ..= p`. 0 or absent: no window. */
  window?: number;
}

export interface ProbsTimesVParams extends AttentionShape {
  probs: Float32Array;
  v: Float32Array;
  out: Float32Array;
  kvBatchStride?: number;
}

export interface AttentionBackwardParams extends AttentionShape {
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  probs: Float32Array;
  dout: Float32Array;
  dq: Float32Array;
  dk: Float32Array;
  dv: Float32Array;
  scale: number;
  dProbsExtra?: Float32Array;
}

export interface ProbsTimesVBackwardParams extends AttentionShape {
  probs: Float32Array;
  v: Float32Array;
  dout: Float32Array;
  dProbs: Float32Array;
  dv: Float32Array;
}

/** A {@link GemmParams} with every default filled in (what each backend and the validator work from). */
export interface GemmLayout {
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  lda: number;
  ldb: number;
  ldc: number;
  alpha: number;
  beta: number;
  batch: number;
  strideA: number;
  strideB: number;
  strideC: number;
  aOff: number;
  bOff: number;
  cOff: number;
}

/** Resolve the defaults of a GEMM call: dense leading dimensions and batch strides, alpha 1, beta 0, offsets 0. */
export function gemmLayout(p: GemmParams): GemmLayout {
  const { m, n, k } = p;
  const transA = p.transA ?? false;
  const transB = p.transB ?? false;
  const lda = p.lda ?? (transA ? m : k);
  const ldb = p.ldb ?? (transB ? k : n);
  const ldc = p.ldc ?? n;
  return {
    m, n, k, transA, transB, lda, ldb, ldc, alpha: p.alpha ?? 1, beta: p.beta ?? 0, batch: p.batch ?? 1,
    strideA: p.strideA ?? (transA ? k * lda : m * lda), strideB: p.strideB ?? (transB ? n * ldb : k * ldb), strideC: p.strideC ?? m * ldc,
    aOff: p.aOff ?? 0, bOff: p.bOff ?? 0, cOff: p.cOff ?? 0,
  };
}
