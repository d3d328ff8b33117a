/** Short constructors for the operands of op-table entries (`ops/*.ts`). */
import type { ArrayKind, ArrayOperand, Len, Scalars, ScalarOperand } from './spec.js';

type Size = (s: Scalars, len: Len) => number;

/** An array operand of `kind` touching `size(s)` elements. */
export function arr(name: string, kind: ArrayKind, size: Size, more: { optional?: boolean; written?: boolean } = {}): ArrayOperand {
  return { name, kind, size, ...more };
}

/** Float32 inputs, each of `size` elements. */
export function f32In(size: Size, ...names: string[]): ArrayOperand[] {
  return names.map((name) => arr(name, 'f32', size));
}

/** Float32 outputs, each of `size` elements. */
export function f32Out(size: Size, ...names: string[]): ArrayOperand[] {
  return names.map((name) => arr(name, 'f32', size, { written: true }));
}

/** Non-negative integer operands (sizes). */
export function ints(...names: string[]): ScalarOperand[] {
  return names.map((name) => ({ name, kind: 'int' }));
}

export function scalar(name: string, kind: ScalarOperand['kind'], dflt?: number | boolean): ScalarOperand {
  return dflt === undefined ? { name, kind } : { name, kind, default: dflt };
}

/** Size rules used by many entries. */
export const N: Size = (s) => s.n;
export const ROWS_COLS: Size = (s) => s.rows * s.cols;
export const ROWS: Size = (s) => s.rows;
/** `(n)` */
export const VEC_SHAPE = (s: Scalars): string => `(${s.n})`;
