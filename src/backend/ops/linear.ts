/** Op-table entries of the matrix-vector products, RMSNorm and RoPE. */
import type { RopeStyle } from '../kernel-types.js';
import type { HalfDType } from '../../tensor/dtype.js';
import { op } from './spec.js';
import { arr, f32In, f32Out, ints, scalar } from './operands.js';
import { DTypeError, ShapeError } from '../../errors.js';
import { bf16ToF32, f16ToF32 } from '../../tensor/dtype.js';

type F32 = Float32Array;

const ROWS_DIM = (s: Readonly<Record<string, number>>): number => s.rows * s.dim;
const DIM = (s: Readonly<Record<string, number>>): number => s.dim;
const NORM_SHAPE = (s: Readonly<Record<string, number>>): string => `(${s.rows}, ${s.dim})`;

export const LINEAR_OPS = {
  /**
   * Matrix-vector product for decode: `y[i] = (accumulate ? y[i] : 0) + Σ_j W[i, j] · x[j]`,
   * `W` is `(n, k)` row-major starting at `wOff` (a Linear weight in `(out, in)` layout), `x` is `(k)`, `y` is `(n)`.
   */
  matvec: op({
    operands: [
      arr('w', 'f32', (s) => s.wOff + s.n * s.k), ...f32In((s) => s.k, 'x'), ...f32Out((s) => s.n, 'y'),
      ...ints('n', 'k'), scalar('wOff', 'int', 0), scalar('accumulate', 'bool', false),
    ],
    shape: (s) => `W (${s.n}, ${s.k}) at offset ${s.wOff}`,
    reference(w: F32, x: F32, y: F32, n: number, k: number, wOff = 0, accumulate = false): void {
      for (let i = 0; i < n; i++) {
        let s = 0;
        const row = wOff + i * k;
        for (let j = 0; j < k; j++) s += w[row + j] * x[j];
        y[i] = accumulate ? y[i] + s : s;
      }
    },
    // W is the whole array with the ref's offset as wOff (its extent is checked from there).
    step: {
      name: 'matvec', opcode: 2, operands: ['r:w', 'r:x', 'r:y', 'n', 'k', 'accumulate'], fixed: { wOff: 0 },
      bind: { w: (d, c) => c.arrays[ref(d.w).array], wOff: (d) => ref(d.w).offset, accumulate: (d) => d.accumulate !== 0 },
    },
  }),
  /**
   * Linear layer over a half-precision weight: `out[r, i] = Σ_j x[r, j] · W[i, j]`, `x` `(rows, k)`, `out` `(rows, n)`,
   * `w` the raw bits of an `(n, k)` row-major f16 (IEEE half) or bf16 matrix, as loaded from a checkpoint. The weight is
   * never widened in memory: fast backends convert in registers (F16C / 16-bit shifts) or while packing GEMM panels.
   * Results equal `gemm` over the widened weight up to float32 summation order.
   */
  matmulHalf: op({
    operands: [
      ...f32In((s) => s.rows * s.k, 'x'), arr('w', 'u16', (s) => s.n * s.k), scalar('dtype', 'string'),
      ...f32Out((s) => s.rows * s.n, 'out'), ...ints('rows', 'n', 'k'),
    ],
    shape: (s) => `x (${s.rows}, ${s.k}) · W (${s.n}, ${s.k})ᵀ`,
    reference(x: F32, w: Uint16Array, dtype: HalfDType, out: F32, rows: number, n: number, k: number): void {
      const row = new Float32Array(k);
      for (let i = 0; i < n; i++) {
        const bits = w.subarray(i * k, (i + 1) * k);
        if (dtype === 'bf16') bf16ToF32(bits, row);
        else f16ToF32(bits, row);
        for (let r = 0; r < rows; r++) {
          let s = 0;
          for (let j = 0; j < k; j++) s += x[r * k + j] * row[j];
          out[r * n + i] = s;
        }
      }
    },
    check(_x, _w, dtype) {
      if (dtype !== 'f16' && dtype !== 'bf16') throw new DTypeError('matmulHalf', `weight dtype must be 'f16' or 'bf16', got '${String(dtype)}'`);
    },
    native: (x, w, dtype, out, rows, n, k) => [x, w, dtype === 'bf16', out, rows, n, k],
    // dtype 1 f16, 2 bf16; W from its start.
    step: {
      name: 'matmulHalf', opcode: 3, operands: ['r:x', 'r:w', 'dtype', 'r:out', 'n', 'k'], fixed: { rows: 1 },
      bind: { w: (d, c) => c.arrays[ref(d.w).array], dtype: (d) => (d.dtype === 2 ? 'bf16' : 'f16') },
    },
  }),
  /**
   * RMSNorm over the last dimension: `out[r, j] = x[r, j] / sqrt(mean_j(x[r]²) + eps) · (w[j] + wOffset)`.
   * `x`, `out` are `(rows, dim)`, `w` is `(dim)`. `out` may alias `x`. `wOffset` (default 0) is for checkpoints that
   * store the scale as `1 + w` (Gemma: pass 1); per-head q/k norms (Qwen3, Gemma 3) are `rows = tokens · heads`,
   * `dim = headDim`. With `wOffset = 0` the result is exactly that of a call without it.
   */
  rmsnorm: op({
    operands: [
      ...f32In(ROWS_DIM, 'x'), ...f32In(DIM, 'w'), ...f32Out(ROWS_DIM, 'out'), ...ints('rows', 'dim'),
      scalar('eps', 'num'), scalar('wOffset', 'finite', 0),
    ],
    shape: NORM_SHAPE,
    reference(x: F32, w: F32, out: F32, rows: number, dim: number, eps: number, wOffset = 0): void {
      const ws = offsetWeights(w, dim, wOffset);
      for (let r = 0; r < rows; r++) {
        const o = r * dim;
        const inv = invRms(x, o, dim, eps);
        for (let j = 0; j < dim; j++) out[o + j] = x[o + j] * inv * ws[j];
      }
    },
    step: { name: 'rmsnorm', opcode: 1, operands: ['r:x', 'r:w', 'r:out', 'rows', 'dim', 'c:eps', 'c:wOffset'] },
  }),
  /**
   * Backward of `rmsnorm` (the same `wOffset`). Writes `dx` `(rows, dim)` (overwritten) and ACCUMULATES into
   * `dw` `(dim)` (the gradient with respect to `w`, which the offset does not change).
   */
  rmsnormBackward: op({
    operands: [
      ...f32In(ROWS_DIM, 'x'), ...f32In(DIM, 'w'), ...f32In(ROWS_DIM, 'dy'), ...f32Out(ROWS_DIM, 'dx'), ...f32Out(DIM, 'dw'),
      ...ints('rows', 'dim'), scalar('eps', 'num'), scalar('wOffset', 'finite', 0),
    ],
    shape: NORM_SHAPE,
    reference: rmsnormBackwardRef,
  }),
  /**
   * Rotary position embedding, in place, on `x` `(nTok, nHeads, headDim)`. Token `t` is rotated by angle
   * `pos[t] · freq_i`, reading `cos[pos[t] · headDim/2 + i]` / `sin[...]` from tables of shape `(maxPos, headDim/2)`.
   * `style: 'interleaved'` rotates adjacent pairs `(x[2i], x[2i+1])` (llama2.c); `'half'` rotates `(x[i], x[i+D/2])`
   * (Hugging Face). `inverse` rotates by the negative angle, which is exactly the backward pass (rotations are
   * orthogonal), so the same kernel serves forward and gradient.
   */
  rope: op({
    operands: [
      ...f32Out((s) => s.nTok * s.nHeads * s.headDim, 'x'), ...ints('nTok', 'nHeads', 'headDim'),
      arr('pos', 'i32', (s) => s.nTok), ...f32In(() => 0, 'cos', 'sin'), scalar('style', 'string'), scalar('inverse', 'bool', false),
    ],
    shape: (s) => `(${s.nTok}, ${s.nHeads}, ${s.headDim})`,
    reference: ropeRef,
    check: checkRope,
    native: (x, nTok, nHeads, headDim, pos, cos, sin, style, inverse) => [x, nTok, nHeads, headDim, pos, cos, sin, style === 'half', inverse],
  }),
};

function ref(v: unknown): { array: number; offset: number } {
  return v as { array: number; offset: number };
}

function checkRope(_x: F32, nTok: number, _nHeads: number, headDim: number, pos: Int32Array, cos: F32, sin: F32, style: RopeStyle): void {
  const op = 'rope';
  if (headDim % 2 !== 0) throw new ShapeError(op, `headDim ${headDim} must be even`);
  if (style !== 'interleaved' && style !== 'half') throw new ShapeError(op, `unknown RoPE style '${String(style)}'`);
  const half = headDim / 2;
  const maxPos = Math.floor(Math.min(cos.length, sin.length) / Math.max(half, 1));
  for (let t = 0; t < nTok; t++) {
    if (!(pos[t] >= 0 && pos[t] < maxPos)) {
      throw new ShapeError(op, `position ${pos[t]} of token ${t} is outside the RoPE table (0..${maxPos - 1})`);
    }
  }
}

function rmsnormBackwardRef(
  x: F32, wRaw: F32, dy: F32, dx: F32, dw: F32, rows: number, dim: number, eps: number, wOffset = 0,
): void {
  // y_j = x_j·r·w_j with r = (mean(x²)+eps)^-1/2;  dx_j = r·w_j·dy_j − x_j·r³/dim · Σ_k dy_k·w_k·x_k
  // (w_j standing for w_j + wOffset; ∂y/∂w does not depend on the offset)
  const w = offsetWeights(wRaw, dim, wOffset);
  for (let row = 0; row < rows; row++) {
    const o = row * dim;
    const r = invRms(x, o, dim, eps);
    let dot = 0;
    for (let j = 0; j < dim; j++) dot += dy[o + j] * w[j] * x[o + j];
    const c = (r * r * r * dot) / dim;
    for (let j = 0; j < dim; j++) {
      dw[j] += dy[o + j] * x[o + j] * r;
      dx[o + j] = r * w[j] * dy[o + j] - x[o + j] * c;
    }
  }
}

function ropeRef(
  x: F32, nTok: number, nHeads: number, headDim: number, pos: Int32Array, cos: F32, sin: F32, style: RopeStyle, inverse = false,
): void {
  const half = headDim / 2;
  const sign = inverse ? -1 : 1;
  for (let t = 0; t < nTok; t++) {
    const tb = pos[t] * half;
    for (let h = 0; h < nHeads; h++) {
      const o = (t * nHeads + h) * headDim;
      for (let i = 0; i < half; i++) {
        const c = cos[tb + i];
        const s = sign * sin[tb + i];
        const i0 = style === 'interleaved' ? o + 2 * i : o + i;
        const i1 = style === 'interleaved' ? o + 2 * i + 1 : o + i + half;
        const a = x[i0];
        const b = x[i1];
        x[i0] = a * c - b * s;
        x[i1] = a * s + b * c;
      }
    }
  }
}

/** `w` itself when `offset` is 0 (so results are those of a call without an offset, bit for bit), else `w + offset`. */
function offsetWeights(w: F32, dim: number, offset: number): ArrayLike<number> {
  if (offset === 0) return w;
  const out = new Float64Array(dim);
  for (let j = 0; j < dim; j++) out[j] = w[j] + offset;
  return out;
}

/** `1 / √(mean(x[o : o+dim]²) + eps)`: the scale of one RMSNorm row (forward and backward alike). */
function invRms(x: F32, o: number, dim: number, eps: number): number {
  let ss = 0;
  for (let j = 0; j < dim; j++) ss += x[o + j] * x[o + j];
  return 1 / Math.sqrt(ss / dim + eps);
}
