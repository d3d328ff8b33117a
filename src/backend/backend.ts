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
export interface Backend {
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
   * Matrix-vector product for decode: `y[i] = (accumulate ? y[i] : 0) + Σ_j W[i, j] · x[j]`,
   * `W` is `(n, k)` row-major starting at `wOff` (a Linear weight in `(out, in)` layout), `x` is `(k)`, `y` is `(n)`.
   */
  matvec(w: Float32Array, x: Float32Array, y: Float32Array, n: number, k: number, wOff?: number, accumulate?: boolean): void;

  /**
   * Linear layer over a half-precision weight: `out[r, i] = Σ_j x[r, j] · W[i, j]`, `x` `(rows, k)`, `out` `(rows, n)`,
   * `w` the raw bits of an `(n, k)` row-major f16 (IEEE half) or bf16 matrix, as loaded from a checkpoint. The weight is
   * never widened in memory: fast backends convert in registers (F16C / 16-bit shifts) or while packing GEMM panels.
   * Results equal `gemm` over the widened weight up to float32 summation order.
   */
  matmulHalf(x: Float32Array, w: Uint16Array, dtype: HalfDType, out: Float32Array, rows: number, n: number, k: number): void;

  /**
   * RMSNorm over the last dimension: `out[r, j] = x[r, j] / sqrt(mean_j(x[r]²) + eps) · (w[j] + wOffset)`.
   * `x`, `out` are `(rows, dim)`, `w` is `(dim)`. `out` may alias `x`. `wOffset` (default 0) is for checkpoints that
   * store the scale as `1 + w` (Gemma: pass 1); per-head q/k norms (Qwen3, Gemma 3) are `rows = tokens · heads`,
   * `dim = headDim`. With `wOffset = 0` the result is exactly that of a call without it.
   */
  rmsnorm(x: Float32Array, w: Float32Array, out: Float32Array, rows: number, dim: number, eps: number, wOffset?: number): void;

  /**
   * Backward of {@link rmsnorm} (the same `wOffset`). Writes `dx` `(rows, dim)` (overwritten) and ACCUMULATES into
   * `dw` `(dim)` (the gradient with respect to `w`, which the offset does not change).
   */
  rmsnormBackward(
    x: Float32Array, w: Float32Array, dy: Float32Array, dx: Float32Array, dw: Float32Array,
    rows: number, dim: number, eps: number, wOffset?: number,
  ): void;

  /**
   * Rotary position embedding, in place, on `x` `(nTok, nHeads, headDim)`. Token `t` is rotated by angle
   * `pos[t] · freq_i`, reading `cos[pos[t] · headDim/2 + i]` / `sin[...]` from tables of shape `(maxPos, headDim/2)`.
   * `style: 'interleaved'` rotates adjacent pairs `(x[2i], x[2i+1])` (llama2.c); `'half'` rotates `(x[i], x[i+D/2])`
   * (Hugging Face). `inverse` rotates by the negative angle, which is exactly the backward pass (rotations are
   * orthogonal), so the same kernel serves forward and gradient.
   */
  rope(
    x: Float32Array, nTok: number, nHeads: number, headDim: number, pos: Int32Array,
    cos: Float32Array, sin: Float32Array, style: RopeStyle, inverse?: boolean,
  ): void;

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
   * Row softmax of `x` `(rows, cols)` into `out` (may alias `x`). With `causalOffset = c`, row `r` keeps columns
   * `0 ..= r + c` and the rest become exactly 0 (a row with no kept column is all 0).
   */
  softmax(x: Float32Array, out: Float32Array, rows: number, cols: number, causalOffset?: number): void;

  /** Backward of softmax: `dx[r, j] = p[r, j] · (dp[r, j] − Σ_k p[r, k] · dp[r, k])`. `dx` may alias `dp`. */
  softmaxBackward(p: Float32Array, dp: Float32Array, dx: Float32Array, rows: number, cols: number): void;

  /** Log-softmax of each row of `x` `(rows, cols)` into `out` (may alias `x`). */
  logSoftmax(x: Float32Array, out: Float32Array, rows: number, cols: number): void;

  /**
   * Cross-entropy of `logits` `(rows, cols)` against `targets` `(rows)`. Writes each row's loss
   * `−log softmax(logits[r])[targets[r]]` into `losses` `(rows)` (0 where `targets[r] === ignoreIndex`).
   * If `dlogits` is given, writes `gradScale · (softmax(logits[r]) − onehot(targets[r]))` into it (0 rows for ignored
   * targets); `dlogits` may alias `logits`. Throws on a target outside `[0, cols)` other than `ignoreIndex`.
   */
  crossEntropy(
    logits: Float32Array, targets: Int32Array, losses: Float32Array, rows: number, cols: number,
    dlogits?: Float32Array, gradScale?: number, ignoreIndex?: number,
  ): void;

  /** `out[i] = silu(gate[i]) · up[i]`, `silu(g) = g / (1 + e^−g)`. `out` may alias `gate` or `up`. */
  siluMul(gate: Float32Array, up: Float32Array, out: Float32Array, n: number): void;

  /** Backward of {@link siluMul}: overwrites `dgate` and `dup` (each `(n)`). */
  siluMulBackward(gate: Float32Array, up: Float32Array, dout: Float32Array, dgate: Float32Array, dup: Float32Array, n: number): void;

  /**
   * `out[i] = gelu_tanh(gate[i]) · up[i]` with `gelu_tanh(g) = 0.5·g·(1 + tanh(√(2/π)·(g + 0.044715·g³)))` (PyTorch's
   * `gelu(approximate='tanh')`, Gemma's FFN). `out` may alias `gate` or `up`.
   */
  geluTanhMul(gate: Float32Array, up: Float32Array, out: Float32Array, n: number): void;

  /** Backward of {@link geluTanhMul}: overwrites `dgate` and `dup` (each `(n)`). */
  geluTanhMulBackward(gate: Float32Array, up: Float32Array, dout: Float32Array, dgate: Float32Array, dup: Float32Array, n: number): void;

  /**
   * `out[i] = alpha · x[i]`; `out` may alias `x`. `alpha` is rounded to float32 first (every backend multiplies in
   * float32, as Hugging Face's Gemma scales its embeddings by a float32 `√hidden`).
   */
  scale(x: Float32Array, alpha: number, out: Float32Array, n: number): void;

  /** `out[i] = a[i] + b[i]`; `out` may alias `a` or `b`. */
  add(a: Float32Array, b: Float32Array, out: Float32Array, n: number): void;

  /** `out[i] = a[i] · b[i]`; `out` may alias `a` or `b`. */
  mul(a: Float32Array, b: Float32Array, out: Float32Array, n: number): void;

  /** `y[i] += alpha · x[i]`. */
  axpy(alpha: number, x: Float32Array, y: Float32Array, n: number): void;

  /** Row gather: `out[t, :] = table[ids[t], :]`, `table` `(vocab, dim)`, `out` `(ids.length, dim)`. Throws on an id out of range. */
  embedding(table: Float32Array, ids: Int32Array, out: Float32Array, vocab: number, dim: number): void;

  /** Backward of {@link embedding}: ACCUMULATES `dTable[ids[t], :] += dOut[t, :]` (repeated ids add up). */
  embeddingBackward(dOut: Float32Array, ids: Int32Array, dTable: Float32Array, vocab: number, dim: number): void;

  /**
   * Attention-map statistics, step 1 (`echoatt analyze`): pack `heads` causal maps `probs` `(heads, t, t)` (row `r`
   * keeps columns `0 ..= r`) to their lower triangles, row after row, into `packed` `(heads, K)`, `K = t(t+1)/2`, and
   * write per head `stats[h] = Σ p²` and `stats[heads + h] = Σ −p ln p` (`0 ln 0 = 0`), summed in float64 as
   * {@link compareProbs} sums (the entropy is exactly `compareProbs(packed, packed)`'s, so identical maps compare
   * to a Jensen–Shannon divergence of exactly 0). `stats` is a `Float64Array` of `2 · heads`.
   */
  packProbs(probs: Float32Array, packed: Float32Array, heads: number, t: number, stats: Float64Array): void;

  /**
   * Attention-map statistics, step 2: packed maps `maps[i]` `(heads, k)` each against one packed map `b`. For map `i`
   * and head `h`, `stats[(2i)·heads + h] = Σ_j a·b` and `stats[(2i + 1)·heads + h] = Σ_j −m ln m` with
   * `m = (a + b)/2` (entries with `m ≤ 0` add 0), and, when `gram` `(maps.length, heads, heads)` is given,
   * `gram[(i·heads + x)·heads + y] = Σ_j a_i[x, j] · b[y, j]`. `stats` (`2 · heads` per map) and `gram` are
   * `Float64Array`s; fast backends read `b` once for all maps and sum f32 chunks into f64 in a fixed order (the result
   * does not depend on the thread count).
   */
  compareProbs(maps: readonly Float32Array[], b: Float32Array, heads: number, k: number, stats: Float64Array, gram?: Float64Array): void;

  /**
   * Distillation KL per row of `(rows, cols)` logits at temperature `temperature` (> 0): with
   * `p = softmax(teacher[r] / T)`, `q = softmax(student[r] / T)`, writes `losses[r] = Σ_j p_j (log p_j − log q_j)`
   * (terms with `p_j = 0` add 0). If `dstudent` is given, writes `gradScale · (q − p)` into it (`dstudent` may
   * alias `student`); the gradient of `losses[r]` with respect to `student[r]` is that with `gradScale = 1 / T`.
   */
  klDivergence(
    student: Float32Array, teacher: Float32Array, losses: Float32Array, rows: number, cols: number, temperature: number,
    dstudent?: Float32Array, gradScale?: number,
  ): void;

  /** One AdamW update of `n` parameters in place (see {@link AdamWParams}). */
  adamw(p: AdamWParams): void;

  /** `Σ x[i]²` over the first `n` elements, accumulated in float64 (for gradient-norm clipping). */
  sumSquares(x: Float32Array, n: number): number;

  /**
   * Prepare a {@link StepProgram} (one decode step of a whole model as kernel calls over fixed buffers, see
   * `program.ts`) and return a function that runs it for one token at one position. The native backend runs a step
   * in one call; the reference interprets it through its own methods. Results equal the same calls made one by one.
   */
  stepProgram(p: StepProgram): StepRunner;
}

export type RopeStyle = 'interleaved' | 'half';
export type { HalfDType };


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
