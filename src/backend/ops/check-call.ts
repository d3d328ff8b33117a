/**
 * Generic validation of a table op's call (what {@link checkedBackend} runs for every table method): scalar kinds,
 * array types, array sizes by each operand's size rule, then the entry's own `check`. Messages are those of the
 * hand-written checks they replace (`ShapeError`: "`name` has N elements but `shape` needs M").
 */
import { DTypeError, ShapeError } from '../../errors.js';
import { describe, dims, finite } from '../check.js';
import { isArrayOperand, withDefaults, type AnyOpEntry, type ArrayKind, type ArrayOperand, type Scalars } from './spec.js';

const ARRAY_TYPES: Record<ArrayKind, [new (n: number) => ArrayLike<number>, string]> = {
  f32: [Float32Array, 'a Float32Array'],
  i32: [Int32Array, 'an Int32Array'],
  u16: [Uint16Array, 'a Uint16Array'],
  f64: [Float64Array, 'a Float64Array'],
};

/** Throws unless `a` is an array of `kind`. */
export function checkArrayType(op: string, name: string, kind: ArrayKind, a: unknown): void {
  const [ctor, label] = ARRAY_TYPES[kind];
  if (!(a instanceof ctor)) throw new DTypeError(op, `${name} must be ${label}, got ${describe(a)}`);
}

/** A checker for one entry: returns the call's arguments with defaults filled in, or throws. */
export function callChecker(op: string, e: AnyOpEntry): (args: readonly unknown[]) => unknown[] {
  const arrays = e.operands.flatMap((o, i) => (isArrayOperand(o) ? [{ o, i }] : []));
  const index = new Map(e.operands.map((o, i) => [o.name, i]));
  return (raw) => {
    const args = withDefaults(e, raw);
    const s = checkScalars(op, e, args);
    for (const { o, i } of arrays) if (!(o.optional && args[i] === undefined)) checkArrayType(op, o.name, o.kind, args[i]);
    const len = (name: string): number => (args[index.get(name)!] as ArrayLike<number>).length;
    let shape: string | undefined;
    for (const { o, i } of arrays) {
      const a = args[i] as ArrayLike<number> | undefined;
      if (a !== undefined) checkSize(op, o, a, s, len, () => (shape ??= e.shape(s, len)));
    }
    (e.check as ((...a: unknown[]) => void) | undefined)?.(...args);
    return args;
  };
}

function checkScalars(op: string, e: AnyOpEntry, args: readonly unknown[]): Scalars {
  const s: Record<string, number> = {};
  e.operands.forEach((o, i) => {
    const v = args[i] as number;
    if (isArrayOperand(o)) return;
    if (o.kind === 'int') s[o.name] = v;
    else if (o.kind === 'finite' || o.kind === 'positive') finite(op, o.name, v, o.kind === 'positive');
    else if (o.kind === 'sint' && v !== undefined && !Number.isInteger(v)) throw new ShapeError(op, `${o.name} must be an integer, got ${v}`);
  });
  dims(op, s);
  return s;
}

function checkSize(op: string, o: ArrayOperand, a: ArrayLike<number>, s: Scalars, len: (name: string) => number, shape: () => string): void {
  const end = o.size(s, len);
  if (a.length < end) throw new ShapeError(op, `${o.name} has ${a.length} elements but ${shape()} needs ${end}`);
}
