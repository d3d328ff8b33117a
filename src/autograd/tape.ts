/**
 * The core of echoatt's reverse-mode autograd: values ({@link Var}), trainable parameters ({@link Param}), the
 * {@link Tape} that records what the forward pass did, and {@link defineOp}, the only way to make an op.
 *
 * Design:
 * - Data stays in plain `Float32Array`s (the layout the backend kernels use); a `Var` only adds a lazily allocated
 *   gradient buffer and a `requiresGrad` flag. A {@link Param} wraps an array the model owns, so an optimizer step
 *   updates the model in place and `saveModel` writes the trained weights.
 * - An op is a `{ forward, backward }` pair built with {@link defineOp}; its type requires both, so an op without a
 *   gradient does not compile. `forward` returns its output(s) and what `backward` needs; `backward` reads the
 *   outputs' gradients and ACCUMULATES into the inputs' gradients (a value used twice gets both contributions).
 * - {@link apply} runs an op and, when a tape is recording and some input requires a gradient, pushes its backward
 *   on the tape. Ops whose inputs need no gradient (a frozen prefix of the network, the teacher) are not recorded
 *   and keep nothing alive. `tape.backward(loss)` seeds `∂loss/∂loss = 1` and runs the recorded backwards in
 *   reverse order, freeing each intermediate gradient as soon as every consumer has used it.
 *
 * @example
 * ```ts
 * const tape = new Tape(be);
 * const y = apply(tape, OPS.linear, { x, w, rows: 4, inDim: 8, outDim: 3 });
 * const loss = apply(tape, OPS.mse, { x: y, target });
 * tape.backward(loss);   // w.grad now holds ∂loss/∂w
 * ```
 */
import type { Backend } from '../backend/backend.js';
import { AutogradError } from '../errors.js';

/** A value in the graph: data plus (when it requires one) a gradient buffer of the same length. */
export class Var {
  readonly data: Float32Array;
  /** `∂loss/∂data`, allocated (zeroed) on first accumulation; `null` until then. */
  grad: Float32Array | null = null;
  requiresGrad: boolean;
  constructor(data: Float32Array, requiresGrad = false) {
    this.data = data;
    this.requiresGrad = requiresGrad;
  }
  /** The gradient buffer, allocated zeroed on first use. */
  gradBuffer(): Float32Array {
    return (this.grad ??= new Float32Array(this.data.length));
  }
}

/** A trainable tensor: wraps an array the model owns (updated in place). `requiresGrad = false` freezes it. */
export class Param extends Var {
  readonly name: string;
  readonly shape: readonly number[];
  constructor(name: string, data: Float32Array, shape: readonly number[], requiresGrad = true) {
    super(data, requiresGrad);
    this.name = name;
    this.shape = shape;
  }
}

/** A constant input (never gets a gradient). */
export function constant(data: Float32Array): Var {
  return new Var(data, false);
}

/**
 * The definition of one differentiable op. `A` is its argument record (Vars and plain attributes), `O` its output
 * (a Var or a record of Vars), `S` what the forward saves for the backward.
 */
export interface OpDef<A, O, S> {
  readonly name: string;
  /**
   * Compute the output(s). `needGrad` says the backward will run (so the forward must save what it needs); when it
   * is false the op may skip extra work (e.g. attention without probabilities).
   */
  forward(be: Backend, args: A, needGrad: boolean): { out: O; saved: S };
  /** Accumulate into the inputs' `grad` from the outputs' `grad` (read through `saved`). Only inputs with `requiresGrad`. */
  backward(be: Backend, saved: S): void;
}

/** Any op, for tables: both members are required, so an entry without a backward does not type-check. */
export interface AnyOp {
  readonly name: string;
  forward(be: Backend, args: never, needGrad: boolean): { out: unknown; saved: unknown };
  backward(be: Backend, saved: never): void;
}

/** Make an op; the type demands a backward next to every forward. */
export function defineOp<A, O, S>(def: OpDef<A, O, S>): OpDef<A, O, S> {
  return Object.freeze(def);
}

/**
 * Make the common kind of op: one output Var, whose data `forward` returns, and a backward that runs only when that
 * output got a gradient (`dy`). Saved state is the arguments and the output.
 */
export function defineVarOp<A>(def: {
  readonly name: string;
  forward(be: Backend, args: A, needGrad: boolean): Float32Array;
  backward(be: Backend, saved: A & { y: Var }, dy: Float32Array): void;
}): OpDef<A, Var, A & { y: Var }> {
  return defineOp({
    name: def.name,
    forward(be, args, needGrad) {
      const y = new Var(def.forward(be, args, needGrad));
      return { out: y, saved: { ...args, y } };
    },
    backward(be, s) {
      if (s.y.grad) def.backward(be, s, s.y.grad);
    },
  });
}

interface Entry {
  name: string;
  run: () => void;
  outs: Var[];
}

/** Records the backward of every op applied while it is active. One tape per forward/backward pass. */
export class Tape {
  readonly backend: Backend;
  private entries: Entry[] = [];
  private done = false;
  constructor(backend: Backend) {
    this.backend = backend;
  }
  /** Number of recorded ops (for tests and diagnostics). */
  get length(): number {
    return this.entries.length;
  }
  record(name: string, run: () => void, outs: Var[]): void {
    if (this.done) throw new AutogradError(`op '${name}' recorded on a tape that already ran backward`);
    this.entries.push({ name, run, outs });
  }
  /**
   * Backpropagate from a scalar `loss` (length-1 Var), seeding its gradient with `seed` (default 1). Parameter
   * gradients ACCUMULATE (call it once per micro-batch, then step and zero them). The tape can run only once.
   */
  backward(loss: Var, seed = 1): void {
    if (this.done) throw new AutogradError('backward already ran on this tape; record a new forward pass');
    if (loss.data.length !== 1) throw new AutogradError(`backward needs a scalar loss, got ${loss.data.length} elements`);
    this.done = true;
    if (!loss.requiresGrad) return; // nothing trainable reached the loss
    loss.gradBuffer()[0] += seed;
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const e = this.entries[i];
      if (e.outs.some((o) => o.grad !== null)) e.run();
      // Every consumer of these outputs ran before (tape order); their gradients are no longer needed.
      for (const o of e.outs) if (!(o instanceof Param)) o.grad = null;
      this.entries[i] = undefined as unknown as Entry; // let saved activations be collected early
    }
    this.entries = [];
  }
}

function collectVars(v: unknown, out: Var[]): void {
  if (v instanceof Var) out.push(v);
  else if (Array.isArray(v)) for (const x of v) collectVars(x, out);
}

/**
 * Run `op` on `args`. With a recording tape and at least one input that requires a gradient, the outputs require
 * gradients too and the op's backward is recorded; otherwise it runs in inference mode. `tape` may be null.
 */
export function apply<A extends object, O extends Var | { readonly [k: string]: Var }, S>(
  tape: Tape | null, op: OpDef<A, O, S>, args: A, be: Backend = tape?.backend as Backend,
): O {
  if (!be) throw new AutogradError(`apply(${op.name}): no backend (pass a tape or a backend)`);
  const inputs: Var[] = [];
  for (const v of Object.values(args)) collectVars(v, inputs);
  const needGrad = tape !== null && inputs.some((v) => v.requiresGrad);
  const { out, saved } = op.forward(be, args, needGrad);
  const outs: Var[] = out instanceof Var ? [out] : Object.values(out);
  for (const o of outs) o.requiresGrad = needGrad;
  if (needGrad && tape) tape.record(op.name, () => op.backward(be, saved), outs);
  return out;
}

/**
 * Add `g` into `v.grad`. When `v` has no gradient yet and `owned` is true, `g` itself becomes the gradient (no copy):
 * pass `owned` only for a fresh buffer nobody else holds.
 */
export function accumulate(be: Backend, v: Var, g: Float32Array, owned = false): void {
  if (!v.requiresGrad) return;
  if (v.grad === null) v.grad = owned ? g : g.slice();
  else be.axpy(1, g, v.grad, g.length);
}

/** A buffer into which a kernel that OVERWRITES its output can write `v`'s gradient contribution. */
export function gradTarget(v: Var): { buf: Float32Array; fresh: boolean } {
  if (v.grad === null) {
    v.grad = new Float32Array(v.data.length);
    return { buf: v.grad, fresh: true };
  }
  return { buf: new Float32Array(v.data.length), fresh: false };
}

/** Finish a {@link gradTarget}: adds the temporary buffer into `v.grad` when it was not written in place. */
export function commitGrad(be: Backend, v: Var, t: { buf: Float32Array; fresh: boolean }): void {
  if (!t.fresh) be.axpy(1, t.buf, v.grad as Float32Array, t.buf.length);
}
