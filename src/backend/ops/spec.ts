/**
 * The shape of one entry of the op table (`ops/*.ts`, gathered in `ops/index.ts`): everything the backend layer
 * needs to know about a kernel whose arguments are plain arrays and numbers. From the entries follow the checked
 * wrapper's validation (`ops/check-call.ts`), the native backend's methods (`native.ts`), the reference backend's
 * methods (`reference.ts`) and, for kernels that are also step-program instructions, the instruction's operands
 * (`program.ts`) and its checking and interpretation (`program-run.ts`).
 *
 * An entry IS the method: the `Backend` interface (`backend.ts`) takes each table method's type from its entry's
 * `reference` and its documented contract from the doc comment on the entry's key. {@link op} types an entry's checks
 * and native argument mapping against its reference's parameters, so they cannot disagree with the signature.
 */

/** What a table method is: a function of plain arguments. */
export type Fn = (...args: never[]) => unknown;

/** The integer operands of a call, by name (defaults filled in), that size rules and shape descriptions read. */
export type Scalars = Readonly<Record<string, number>>;
/** The length of a named array operand (for sizes that follow an array, like the rows of an embedding). */
export type Len = (name: string) => number;

export type ArrayKind = 'f32' | 'i32' | 'u16' | 'f64';

/** An array operand: its element type, how many elements the call touches, whether it may be absent or is written. */
export interface ArrayOperand {
  readonly name: string;
  readonly kind: ArrayKind;
  readonly size: (s: Scalars, len: Len) => number;
  /** May be `undefined` (the addon then gets `null`). */
  readonly optional?: boolean;
  /** The kernel writes it (documentation; outputs are listed so the table reads like the contract). */
  readonly written?: boolean;
}

/**
 * A scalar operand. `int`: a non-negative integer (a size or offset; also what size rules read); `sint`: any integer;
 * `finite` / `positive`: a finite (positive) number; `num`: any number, unchecked; `bool`, `string`: passed through
 * (an op's own `check` validates string values).
 */
export interface ScalarOperand {
  readonly name: string;
  readonly kind: 'int' | 'sint' | 'finite' | 'positive' | 'num' | 'bool' | 'string';
  /** Value used when the caller passes `undefined`; without one, an absent optional scalar reaches the addon as `null`. */
  readonly default?: number | boolean;
}

export type Operand = ArrayOperand | ScalarOperand;

export function isArrayOperand(o: Operand): o is ArrayOperand {
  return 'size' in o;
}

/** A memory operand of a step program: `arrays[array]` from element `offset`; `array === -1` is "none". */
export interface Ref {
  array: number;
  offset: number;
}

/** A decoded step instruction's operands by name (refs as {@link Ref}, constants resolved). */
export type StepOperands = Readonly<Record<string, Ref | number>>;

/** What a step instruction's binding may read besides its operands: the program's arrays and sized views of refs. */
export interface StepContext {
  readonly arrays: readonly (Float32Array | Uint16Array | Int32Array)[];
  view(r: Ref, n: number): Float32Array;
}

/** A kernel that is also a step-program instruction (one token at one position: no operand depends on `pos`). */
export interface StepSpec<N extends string = string> {
  /** Instruction name (may differ from the method's: `geluMul` runs `geluTanhMul`). */
  readonly name: N;
  /** Its opcode, the number native/program.cc decodes it by. */
  readonly opcode: number;
  /** Operands after the opcode: `r:NAME` a ref (2 words), `c:NAME` an index into `consts`, else a plain integer. */
  readonly operands: readonly string[];
  /** Method operands the instruction does not carry, as constants (e.g. `rows: 1`). */
  readonly fixed?: Scalars;
  /**
   * Method operands computed from the instruction instead of taken by name (a ref operand otherwise becomes a view
   * of its size rule's length, a number operand the number).
   */
  readonly bind?: Readonly<Record<string, (d: StepOperands, ctx: StepContext) => unknown>>;
}

/**
 * One op, the method `F` (its type is the reference's): operands in the method's parameter order, checks beyond the
 * operand rules, the implementations; `N` is the name of its step instruction, if it is one.
 */
export interface OpEntry<F extends Fn, N extends string = never> {
  readonly operands: readonly Operand[];
  /** The shape as error messages show it, e.g. `(rows, dim)`. */
  readonly shape: (s: Scalars, len: Len) => string;
  /** Checks beyond types, sizes and scalar kinds (ids in range, enum values), run after those, with defaults filled in. */
  readonly check?: (...args: Parameters<F>) => void;
  /** The reference implementation (plain TypeScript, float64 accumulation); its type is the `Backend` method's. */
  readonly reference: F;
  /** The addon's arguments when they are not the method's, in order with `undefined` as `null` (the default). */
  readonly native?: (...args: Parameters<F>) => unknown[];
  /** Present when the kernel is a step-program instruction. */
  readonly step?: StepSpec<N>;
}

/**
 * An entry, typed from its `reference`; the doc comment on its key is the `Backend` method's. Write `reference`
 * ahead of a `check` or `native` whose parameters are left to be inferred: TypeScript reads the method's type from
 * the first function it meets (a wrong order shows as `never` parameters at the method's callers).
 */
export function op<F extends Fn, const N extends string = never>(e: OpEntry<F, N>): OpEntry<F, N> {
  return e;
}

/** An entry with its method's types erased, for the generic machinery. */
export interface AnyOpEntry {
  readonly operands: readonly Operand[];
  readonly shape: (s: Scalars, len: Len) => string;
  readonly check?: (...args: never[]) => void;
  readonly reference: (...args: never[]) => unknown;
  readonly native?: (...args: never[]) => unknown[];
  readonly step?: StepSpec;
}

/**
 * A filler for a hot path: puts every scalar default into a call's argument array IN PLACE (the rest array of the
 * wrapper that received them, so nobody else holds it) and returns it.
 */
export function defaultsFiller(e: AnyOpEntry): (args: unknown[]) => unknown[] {
  const defs = e.operands.flatMap((o, i) => (!isArrayOperand(o) && o.default !== undefined ? [[i, o.default] as const] : []));
  if (defs.length === 0) return (args) => args;
  return (args) => {
    for (const [i, d] of defs) if (args[i] === undefined || args[i] === null) args[i] = d;
    return args;
  };
}

/** The method's arguments with every scalar default filled in. */
export function withDefaults(e: AnyOpEntry, args: readonly unknown[]): unknown[] {
  const out = e.operands.map((o, i) => (args[i] === undefined && !isArrayOperand(o) && o.default !== undefined ? o.default : args[i]));
  return args.length > out.length ? out.concat(args.slice(out.length)) : out;
}
