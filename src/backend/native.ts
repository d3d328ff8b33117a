/**
 * The native backend: a thin class over the C++ addon `build/echoatt.node` (sources in `native/`, built by
 * `scripts/build-native.mjs` at install time). The op table's methods (`ops/`) are made from their entries; the
 * others are written out here. Defaults the {@link Backend} contract specifies are filled in and every argument is
 * passed positionally; sizes are not validated (wrap it in `checkedBackend`).
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { gemmLayout, type AttentionBackwardParams, type AttentionParams, type Backend, type GemmParams } from './backend.js';
import type { AdamWParams, ProbsTimesVBackwardParams, ProbsTimesVParams } from './backend.js';
import { tableMethods, type AnyOpEntry, type TableMethods, type TableOp } from './ops/index.js';
import { defaultsFiller } from './ops/spec.js';
import { ShapeError } from '../errors.js';
import { checkThreads } from './threads.js';
import type { ProgramArray, StepProgram, StepRunner } from './program.js';

type F32 = Float32Array;
type I32 = Int32Array;

/** The native kernel set in use, widest first (see native/dispatch.cc). */
export type NativeSimd = 'avx512' | 'avx2' | 'portable';

/** The addon's exports (native/addon.cc). Optional arrays are passed as `null`. */
interface Addon {
  info(): { simd: NativeSimd; built: NativeSimd[]; threads: number; programWords: number[] };
  setThreads(n: number): void;
  gemm(
    a: F32, b: F32, c: F32, m: number, n: number, k: number, transA: boolean, transB: boolean,
    aOff: number, bOff: number, cOff: number, lda: number, ldb: number, ldc: number, alpha: number, beta: number,
    batch: number, strideA: number, strideB: number, strideC: number,
  ): void;
  attention(
    q: F32, k: F32, v: F32, out: F32, probs: F32 | null, batch: number, tq: number, s: number, nHeads: number,
    nKvHeads: number, headDim: number, qPos0: number, scale: number, kvBatchStride: number, window: number,
  ): void;
  probsTimesV(
    probs: F32, v: F32, out: F32, batch: number, tq: number, s: number, nHeads: number, nKvHeads: number,
    headDim: number, kvBatchStride: number,
  ): void;
  attentionBackward(
    q: F32, k: F32, v: F32, probs: F32, dout: F32, dq: F32, dk: F32, dv: F32, dProbsExtra: F32 | null,
    batch: number, tq: number, s: number, nHeads: number, nKvHeads: number, headDim: number, scale: number,
  ): void;
  probsTimesVBackward(
    probs: F32, v: F32, dout: F32, dProbs: F32, dv: F32, batch: number, tq: number, s: number, nHeads: number,
    nKvHeads: number, headDim: number,
  ): void;
  compareProbs(maps: readonly F32[], b: F32, heads: number, k: number, stats: Float64Array, gram: Float64Array | null): void;
  adamw(
    w: F32, g: F32, m: F32, v: F32, n: number, lr: number, beta1: number, beta2: number, eps: number, decay: number,
    c1: number, c2: number, gradScale: number,
  ): void;
  compileProgram(code: I32, consts: Float64Array, arrays: readonly ProgramArray[], maxPos: number, vocab: number): object;
  runProgram(handle: object, token: number, pos: number): void;
  programProfile(handle: object, on: boolean): Float64Array;
  /** One export per op-table entry (`ops/`), called with the entry's native arguments. */
  [op: string]: unknown;
}

/** The addon reports bad token ids / targets as errors with code E_SHAPE; surface them as typed ShapeErrors. */
function rethrowShape(op: string, err: unknown): never {
  if (err instanceof Error && (err as Error & { code?: string }).code === 'E_SHAPE') throw new ShapeError(op, err.message);
  throw err;
}

/**
 * A table op's method: defaults filled in, the entry's native argument order (by default the method's), `undefined`
 * as `null`, and the addon's E_SHAPE errors as ShapeErrors.
 */
function nativeMethod(addon: Addon, op: TableOp, e: AnyOpEntry): (...args: unknown[]) => unknown {
  const fn = addon[op];
  if (typeof fn !== 'function') throw new Error(`the addon has no export '${op}' (rebuild it: npm run build:native)`);
  const toNative = e.native as ((...a: unknown[]) => unknown[]) | undefined;
  const fill = defaultsFiller(e);
  const n = e.operands.length;
  const nulls: unknown[] = new Array<unknown>(n).fill(null);
  const call = fn as (...x: unknown[]) => unknown;
  return (...raw) => {
    // Absent trailing operands reach the addon as null, never missing (concat keeps the array packed: fast to spread).
    const args = raw.length < n ? raw.concat(nulls.slice(raw.length)) : raw;
    const a = toNative ? toNative(...fill(args)) : fill(args);
    for (let i = 0; i < a.length; i++) if (a[i] === undefined) a[i] = null; // the addon reads an absent operand as null
    try {
      return call(...a);
    } catch (err) {
      return rethrowShape(op, err);
    }
  };
}

/** The op table's methods, installed by the constructor. */
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export interface NativeBackend extends TableMethods {}

// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export class NativeBackend implements Backend {
  readonly name = 'native';
  readonly #addon: Addon;

  constructor(addon: Addon) {
    this.#addon = addon;
    Object.assign(this, tableMethods((op, e) => nativeMethod(addon, op, e)));
  }

  get threads(): number {
    return this.#addon.info().threads;
  }

  /**
   * Which kernel set is running: `'avx512'` (AVX-512 F+VL+BW), `'avx2'` (AVX2+FMA+F16C, or
   * `ECHOATT_NATIVE_SIMD=avx2`), or `'portable'` (neither, or `ECHOATT_NATIVE_SIMD=portable`).
   */
  get simd(): NativeSimd {
    return this.#addon.info().simd;
  }

  /** The kernel sets this build of the addon contains, widest first (`'portable'` always; the x86 ones on x86). */
  get builtSimd(): NativeSimd[] {
    return this.#addon.info().built;
  }

  /** Operand words per step-program opcode as the addon decodes them (tests hold them against `program.ts`). */
  get programWords(): number[] {
    return this.#addon.info().programWords;
  }

  setThreads(n: number): void {
    this.#addon.setThreads(checkThreads(n, 'setThreads'));
  }

  gemm(p: GemmParams): void {
    const g = gemmLayout(p);
    this.#addon.gemm(
      p.a, p.b, p.c, g.m, g.n, g.k, g.transA, g.transB, g.aOff, g.bOff, g.cOff, g.lda, g.ldb, g.ldc,
      g.alpha, g.beta, g.batch, g.strideA, g.strideB, g.strideC,
    );
  }

  attention(p: AttentionParams): void {
    this.#addon.attention(
      p.q, p.k, p.v, p.out, p.probs ?? null, p.batch, p.tq, p.s, p.nHeads, p.nKvHeads, p.headDim, p.qPos0, p.scale,
      p.kvBatchStride ?? p.s * p.nKvHeads * p.headDim, p.window ?? 0,
    );
  }

  probsTimesV(p: ProbsTimesVParams): void {
    this.#addon.probsTimesV(
      p.probs, p.v, p.out, p.batch, p.tq, p.s, p.nHeads, p.nKvHeads, p.headDim,
      p.kvBatchStride ?? p.s * p.nKvHeads * p.headDim,
    );
  }

  attentionBackward(p: AttentionBackwardParams): void {
    this.#addon.attentionBackward(
      p.q, p.k, p.v, p.probs, p.dout, p.dq, p.dk, p.dv, p.dProbsExtra ?? null, p.batch, p.tq, p.s, p.nHeads,
      p.nKvHeads, p.headDim, p.scale,
    );
  }

  probsTimesVBackward(p: ProbsTimesVBackwardParams): void {
    this.#addon.probsTimesVBackward(p.probs, p.v, p.dout, p.dProbs, p.dv, p.batch, p.tq, p.s, p.nHeads, p.nKvHeads, p.headDim);
  }

  compareProbs(maps: readonly F32[], b: F32, heads: number, k: number, stats: Float64Array, gram?: Float64Array): void {
    this.#addon.compareProbs(maps, b, heads, k, stats, gram ?? null);
  }

  adamw(p: AdamWParams): void {
    // Bias corrections and the decay factor in float64, as the reference computes them.
    this.#addon.adamw(
      p.w, p.g, p.m, p.v, p.n, p.lr, p.beta1, p.beta2, p.eps, 1 - p.lr * p.weightDecay, 1 - p.beta1 ** p.step,
      1 - p.beta2 ** p.step, p.gradScale ?? 1,
    );
  }

  stepProgram(p: StepProgram): StepRunner {
    const addon = this.#addon;
    const handle = addon.compileProgram(p.code, p.consts, p.arrays, p.maxPos, p.vocab);
    // The closure keeps `p.arrays` alive as long as the handle that points into them.
    const arrays = p.arrays;
    const run = (token: number, pos: number) => {
      try {
        addon.runProgram(handle, token, pos);
      } catch (err) {
        rethrowShape('stepProgram', err);
      }
      void arrays;
    };
    return Object.assign(run, { profile: (on: boolean) => addon.programProfile(handle, on) });
  }

}

/** The package root: the nearest directory above this module holding package.json (works from src/ and dist/). */
function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

let loaded: NativeBackend | undefined;
let loadError: string | undefined;
let attempted = false;

/** The native backend (unchecked), or undefined if the addon is missing or fails to load; see {@link nativeLoadError}. */
export function loadNativeBackend(): NativeBackend | undefined {
  if (attempted) return loaded;
  attempted = true;
  let file = '';
  try {
    file = path.join(packageRoot(), 'build', 'echoatt.node');
    if (!fs.existsSync(file)) {
      loadError = `${file} not found (run \`npm run build:native\`)`;
      return undefined;
    }
    const addon = createRequire(import.meta.url)(file) as Addon;
    addon.info(); // fail here, not on first use, if the binary is broken
    loaded = new NativeBackend(addon);
  } catch (err) {
    loadError = `failed to load ${file || 'the native addon'}: ${err instanceof Error ? err.message : String(err)}`;
  }
  return loaded;
}

/** Why {@link loadNativeBackend} returned undefined (undefined if it loaded or was not tried yet). */
export function nativeLoadError(): string | undefined {
  return loadError;
}
