/** The argument checks every validated kernel shares (`validate.ts`, `validate-stats.ts`). */
import { DTypeError, ShapeError } from '../errors.js';

type Arr = Float32Array | Int32Array | Float64Array;

export function dims(op: string, d: Record<string, number>): void {
  for (const [k, v] of Object.entries(d)) {
    if (!Number.isInteger(v) || v < 0) throw new ShapeError(op, `${k} must be a non-negative integer, got ${v}`);
  }
}

export function f32(op: string, name: string, a: unknown): Float32Array {
  if (!(a instanceof Float32Array)) throw new DTypeError(op, `${name} must be a Float32Array, got ${describe(a)}`);
  return a;
}

export function f64(op: string, name: string, a: unknown): Float64Array {
  if (!(a instanceof Float64Array)) throw new DTypeError(op, `${name} must be a Float64Array, got ${describe(a)}`);
  return a;
}

export function i32(op: string, name: string, a: unknown): Int32Array {
  if (!(a instanceof Int32Array)) throw new DTypeError(op, `${name} must be an Int32Array, got ${describe(a)}`);
  return a;
}

export function describe(a: unknown): string {
  if (a === null || a === undefined) return String(a);
  if (typeof a === 'object') return (a as object).constructor?.name ?? 'object';
  return typeof a;
}

/** Throws unless `arr` holds at least `end` elements (`end` = one past the last index touched). */
export function need(op: string, name: string, arr: Arr, end: number, shape: string): void {
  if (arr.length < end) {
    throw new ShapeError(op, `${name} has ${arr.length} elements but ${shape} needs ${end}`);
  }
}

/** Throws unless `v` is a finite number (and, with `positive`, above 0). */
export function finite(op: string, name: string, v: number, positive = false): void {
  if (typeof v !== 'number' || !Number.isFinite(v) || (positive && !(v > 0))) {
    throw new ShapeError(op, `${name} must be a finite${positive ? ' positive' : ''} number, got ${v}`);
  }
}
