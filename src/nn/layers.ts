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
