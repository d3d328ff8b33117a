/**
 * Generic validation of a table op's call (what {@link checkedBackend} runs for every table method): scalar kinds,
 * array types, array sizes by each operand's size rule, then the entry's own `check`. Messages are those of the
 * hand-written checks they replace (`ShapeError`: "`name` has N elements but `shape` needs M").
 */
import { DTypeError, ShapeError } from '../../errors.js';
import { describe, finite } from '../check.js';
import { defaultsFiller, isArrayOperand, type AnyOpEntry, type ArrayKind, type ScalarOperand, type Scalars } from './spec.js';

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

/**
 * A checker for one entry: fills the call's defaults into `args` (in place: the wrapper's own rest array) and returns
 * it, or throws. Everything that does not depend on the call is worked out once, here, so a checked call costs
 * little more than the kernel's own call.
 */
export function callChecker(op: string, e: AnyOpEntry): (args: unknown[]) => unknown[] {
  const arrays = e.operands.flatMap((o, i) => (isArrayOperand(o) ? [{ o, i }] : []));
  const scalars = e.operands.flatMap((o, i) => (isArrayOperand(o) ? [] : [{ o, i }]));
  const index = new Map(e.operands.map((o, i) => [o.name, i]));
  const fill = defaultsFiller(e);
  const check = e.check as ((...a: unknown[]) => void) | undefined;
  // One scalar record and one length reader per entry, reused by every call (a check never re-enters itself).
  const s: Record<string, number> = Object.fromEntries(scalars.map(({ o }) => [o.name, 0]));
  let current: readonly unknown[] = [];
  const len = (name: string): number => (current[index.get(name)!] as ArrayLike<number>).length;
  return (args) => {
    fill(args);
    current = args;
    checkScalars(op, scalars, args, s);
    for (const { o, i } of arrays) if (!(o.optional && args[i] == null)) checkArrayType(op, o.name, o.kind, args[i]);
    for (const { o, i } of arrays) {
      const a = args[i] as ArrayLike<number> | undefined | null;
      if (a != null && a.length < o.size(s, len)) {
        throw new ShapeError(op, `${o.name} has ${a.length} elements but ${e.shape(s, len)} needs ${o.size(s, len)}`);
      }
    }
    check?.(...args);
    return args;
  };
}

function checkScalars(op: string, scalars: readonly { o: ScalarOperand; i: number }[], args: readonly unknown[], s: Record<string, number>): Scalars {
  for (const { o, i } of scalars) {
    const v = args[i] as number;
    if (o.kind === 'int') {
      if (!Number.isInteger(v) || v < 0) throw new ShapeError(op, `${o.name} must be a non-negative integer, got ${v}`);
      s[o.name] = v;
    } else if (o.kind === 'finite' || o.kind === 'positive') finite(op, o.name, v, o.kind === 'positive');
    else if (o.kind === 'sint' && v !== undefined && !Number.isInteger(v)) throw new ShapeError(op, `${o.name} must be an integer, got ${v}`);
  }
  return s;
}
