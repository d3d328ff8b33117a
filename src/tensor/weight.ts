/**
 * Weight matrices as stored: f32, or half precision (f16 / bf16 bits) kept as loaded, with no f32 copy.
 * Inference kernels take either; training and weight surgery need f32 and say so through {@link requireF32}.
 */
import { DTypeError } from '../errors.js';
import { bf16ToF32, f16ToF32, type HalfDType } from './dtype.js';

export class HalfWeight {
  readonly dtype: HalfDType;
  readonly bits: Uint16Array;
  constructor(dtype: HalfDType, bits: Uint16Array) {
    this.dtype = dtype;
    this.bits = bits;
  }
  /** Number of elements (as `Float32Array.length`). */
  get length(): number {
    return this.bits.length;
  }
  get byteLength(): number {
    return this.bits.byteLength;
  }
  /** A widened f32 copy. */
  toF32(): Float32Array {
    return this.dtype === 'bf16' ? bf16ToF32(this.bits) : f16ToF32(this.bits);
  }
}

export type Weight = Float32Array | HalfWeight;

/** The f32 array of a weight, or a clear error for half-precision weights where f32 is required. */
export function requireF32(w: Weight, what: string): Float32Array {
  if (w instanceof Float32Array) return w;
  throw new DTypeError(what, `needs f32 weights, but this model keeps its ${w.dtype} weights as loaded; load it with f32 weights (loadModel(path, { weights: 'f32' }))`);
}

/** Rows `[start, end)` of a `(rows, cols)` weight, as f32 (a view for f32 weights, a widened copy for half ones). */
export function weightRowsF32(w: Weight, cols: number, start: number, end: number): Float32Array {
  if (w instanceof Float32Array) return w.subarray(start * cols, end * cols);
  const bits = w.bits.subarray(start * cols, end * cols);
  return w.dtype === 'bf16' ? bf16ToF32(bits) : f16ToF32(bits);
}
