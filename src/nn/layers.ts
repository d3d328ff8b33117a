/**
 * Building blocks shared by every model architecture: thin, allocation-explicit wrappers over backend kernels.
 * Activations are `(N, features)` row-major with `N = B · T` tokens.
 */
import type { Backend } from '../backend/backend.js';
import type { Weight } from '../tensor/weight.js';

/**
 * `y = x · Wᵀ (+ bias)` for a Linear weight stored `(outDim, inDim)` as in PyTorch / Hugging Face.
 * One token takes the memory-bound matrix-vector kernel; more take GEMM; half-precision weights take `matmulHalf`.
 */
export function linear(
  be: Backend, x: Float32Array, w: Weight, bias: Float32Array | undefined, rows: number, inDim: number, outDim: number,
  out: Float32Array = new Float32Array(rows * outDim),
): Float32Array {
  if (!(w instanceof Float32Array)) be.matmulHalf(x, w.bits, w.dtype, out, rows, outDim, inDim);
  else if (rows === 1) be.matvec(w, x, out, outDim, inDim);
  else be.gemm({ m: rows, n: outDim, k: inDim, a: x, b: w, c: out, transB: true });
  if (bias) for (let r = 0; r < rows; r++) be.add(out.subarray(r * outDim, (r + 1) * outDim), bias, out.subarray(r * outDim, (r + 1) * outDim), outDim);
  return out;
}

export interface MlpParams {
  wGate: Weight; // (F, dim)
  wUp: Weight; // (F, dim)
  wDown: Weight; // (dim, F)
}

/** SwiGLU MLP: `down(silu(gate(x)) · up(x))`, `x` `(rows, dim)` → `(rows, dim)`. */
export function swigluMlp(be: Backend, x: Float32Array, p: MlpParams, rows: number, dim: number, hidden: number): Float32Array {
  const gate = linear(be, x, p.wGate, undefined, rows, dim, hidden); // (N, F)
  const up = linear(be, x, p.wUp, undefined, rows, dim, hidden); // (N, F)
  be.siluMul(gate, up, gate, rows * hidden);
  return linear(be, gate, p.wDown, undefined, rows, hidden, dim); // (N, dim)
}

/**
 * One block of a {@link linearRuns} product: `y[:, yOff : yOff+n] += x[:, xOff : xOff+k] · Wᵀ` over the `(n, k)`
 * view of `w` starting at `wOff` with row stride `ldw` (plus `bias[bOff : bOff+n]`). Views, never copies: this is how
 * a head-shared layer reads row blocks (q/k/v) or column blocks (o_proj) of the layer that stores them.
 */
export interface LinearRunOf<W> {
  w: W;
  wOff: number;
  ldw: number;
  xOff: number;
  k: number;
  yOff: number;
  n: number;
  bias?: W;
  bOff?: number;
}

/** A {@link LinearRunOf} over f32 arrays, as `linearRuns` computes it. */
export type LinearRun = LinearRunOf<Float32Array>;

/** `y (rows, outDim) = Σ_runs` of each run's block product; `x` is `(rows, xCols)`. */
export function linearRuns(be: Backend, x: Float32Array, runs: readonly LinearRun[], rows: number, xCols: number, outDim: number): Float32Array {
  const y = new Float32Array(rows * outDim);
  for (const r of runs) {
    if (rows === 1 && r.xOff === 0 && r.k === xCols && r.ldw === r.k) {
      be.matvec(r.w, x, y.subarray(r.yOff, r.yOff + r.n), r.n, r.k, r.wOff, true);
    } else {
      be.gemm({
        m: rows, n: r.n, k: r.k, a: x, aOff: r.xOff, lda: xCols, b: r.w, bOff: r.wOff, ldb: r.ldw, transB: true,
        c: y, cOff: r.yOff, ldc: outDim, beta: 1,
      });
    }
    if (r.bias) {
      const bs = r.bias.subarray(r.bOff ?? 0, (r.bOff ?? 0) + r.n);
      for (let row = 0; row < rows; row++) {
        const o = y.subarray(row * outDim + r.yOff, row * outDim + r.yOff + r.n);
        be.add(o, bs, o, r.n);
      }
    }
  }
  return y;
}
