/**
 * The native backend: a thin class over the C++ addon `build/echoatt.node` (sources in `native/`, built by
 * `scripts/build-native.mjs` at install time). This file fills in the defaults the {@link Backend} contract
 * specifies and passes every argument positionally; it does not validate sizes (wrap it in `checkedBackend`).
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { gemmLayout, type AttentionBackwardParams, type AttentionParams, type Backend, type GemmParams } from './backend.js';
import type { AdamWParams, HalfDType, ProbsTimesVBackwardParams, ProbsTimesVParams, RopeStyle } from './backend.js';
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
  matvec(w: F32, x: F32, y: F32, n: number, k: number, wOff: number, accumulate: boolean): void;
  matmulHalf(x: F32, w: Uint16Array, bf16: boolean, out: F32, rows: number, n: number, k: number): void;
  rmsnorm(x: F32, w: F32, out: F32, rows: number, dim: number, eps: number, wOffset: number): void;
  rmsnormBackward(x: F32, w: F32, dy: F32, dx: F32, dw: F32, rows: number, dim: number, eps: number, wOffset: number): void;
  rope(x: F32, nTok: number, nHeads: number, headDim: number, pos: I32, cos: F32, sin: F32, half: boolean, inverse: boolean): void;
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
  softmax(x: F32, out: F32, rows: number, cols: number, causalOffset: number | null): void;
  softmaxBackward(p: F32, dp: F32, dx: F32, rows: number, cols: number): void;
  logSoftmax(x: F32, out: F32, rows: number, cols: number): void;
  crossEntropy(
    logits: F32, targets: I32, losses: F32, rows: number, cols: number, dlogits: F32 | null, gradScale: number,
    ignoreIndex: number,
  ): void;
  siluMul(gate: F32, up: F32, out: F32, n: number): void;
  siluMulBackward(gate: F32, up: F32, dout: F32, dgate: F32, dup: F32, n: number): void;
  geluTanhMul(gate: F32, up: F32, out: F32, n: number): void;
  geluTanhMulBackward(gate: F32, up: F32, dout: F32, dgate: F32, dup: F32, n: number): void;
  scale(x: F32, alpha: number, out: F32, n: number): void;
  add(a: F32, b: F32, out: F32, n: number): void;
  mul(a: F32, b: F32, out: F32, n: number): void;
  axpy(alpha: number, x: F32, y: F32, n: number): void;
  packProbs(probs: F32, packed: F32, heads: number, t: number, stats: Float64Array): void;
  compareProbs(maps: readonly F32[], b: F32, heads: number, k: number, stats: Float64Array, gram: Float64Array | null): void;
  klDivergence(
    student: F32, teacher: F32, losses: F32, rows: number, cols: number, temperature: number, dstudent: F32 | null,
    gradScale: number,
  ): void;
  adamw(
    w: F32, g: F32, m: F32, v: F32, n: number, lr: number, beta1: number, beta2: number, eps: number, decay: number,
    c1: number, c2: number, gradScale: number,
  ): void;
  sumSquares(x: F32, n: number): number;
  embedding(table: F32, ids: I32, out: F32, vocab: number, dim: number): void;
  embeddingBackward(dOut: F32, ids: I32, dTable: F32, vocab: number, dim: number): void;
  compileProgram(code: I32, consts: Float64Array, arrays: readonly ProgramArray[], maxPos: number, vocab: number): object;
  runProgram(handle: object, token: number, pos: number): void;
  programProfile(handle: object, on: boolean): Float64Array;
}

/** The addon reports bad token ids / targets as errors with code E_SHAPE; surface them as typed ShapeErrors. */
function rethrowShape(op: string, err: unknown): never {
  if (err instanceof Error && (err as Error & { code?: string }).code === 'E_SHAPE') throw new ShapeError(op, err.message);
  throw err;
}

export class NativeBackend implements Backend {
  readonly name = 'native';
  readonly #addon: Addon;

  constructor(addon: Addon) {
    this.#addon = addon;
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

  matvec(w: F32, x: F32, y: F32, n: number, k: number, wOff = 0, accumulate = false): void {
    this.#addon.matvec(w, x, y, n, k, wOff, accumulate);
  }

  matmulHalf(x: F32, w: Uint16Array, dtype: HalfDType, out: F32, rows: number, n: number, k: number): void {
    this.#addon.matmulHalf(x, w, dtype === 'bf16', out, rows, n, k);
  }

  rmsnorm(x: F32, w: F32, out: F32, rows: number, dim: number, eps: number, wOffset = 0): void {
    this.#addon.rmsnorm(x, w, out, rows, dim, eps, wOffset);
  }

  rmsnormBackward(x: F32, w: F32, dy: F32, dx: F32, dw: F32, rows: number, dim: number, eps: number, wOffset = 0): void {
    this.#addon.rmsnormBackward(x, w, dy, dx, dw, rows, dim, eps, wOffset);
  }

  rope(x: F32, nTok: number, nHeads: number, headDim: number, pos: I32, cos: F32, sin: F32, style: RopeStyle, inverse = false): void {
    this.#addon.rope(x, nTok, nHeads, headDim, pos, cos, sin, style === 'half', inverse);
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

  softmax(x: F32, out: F32, rows: number, cols: number, causalOffset?: number): void {
    this.#addon.softmax(x, out, rows, cols, causalOffset ?? null);
  }

  softmaxBackward(p: F32, dp: F32, dx: F32, rows: number, cols: number): void {
    this.#addon.softmaxBackward(p, dp, dx, rows, cols);
  }

  logSoftmax(x: F32, out: F32, rows: number, cols: number): void {
    this.#addon.logSoftmax(x, out, rows, cols);
  }

  crossEntropy(logits: F32, targets: I32, losses: F32, rows: number, cols: number, dlogits?: F32, gradScale = 1, ignoreIndex = -100): void {
    try {
      this.#addon.crossEntropy(logits, targets, losses, rows, cols, dlogits ?? null, gradScale, ignoreIndex);
    } catch (err) {
      rethrowShape('crossEntropy', err);
    }
  }

  siluMul(gate: F32, up: F32, out: F32, n: number): void {
    this.#addon.siluMul(gate, up, out, n);
  }

  siluMulBackward(gate: F32, up: F32, dout: F32, dgate: F32, dup: F32, n: number): void {
    this.#addon.siluMulBackward(gate, up, dout, dgate, dup, n);
  }

  geluTanhMul(gate: F32, up: F32, out: F32, n: number): void {
    this.#addon.geluTanhMul(gate, up, out, n);
  }

  geluTanhMulBackward(gate: F32, up: F32, dout: F32, dgate: F32, dup: F32, n: number): void {
    this.#addon.geluTanhMulBackward(gate, up, dout, dgate, dup, n);
  }

  scale(x: F32, alpha: number, out: F32, n: number): void {
    this.#addon.scale(x, alpha, out, n);
  }

  add(a: F32, b: F32, out: F32, n: number): void {
    this.#addon.add(a, b, out, n);
  }

  mul(a: F32, b: F32, out: F32, n: number): void {
    this.#addon.mul(a, b, out, n);
  }

  axpy(alpha: number, x: F32, y: F32, n: number): void {
    this.#addon.axpy(alpha, x, y, n);
  }

  packProbs(probs: F32, packed: F32, heads: number, t: number, stats: Float64Array): void {
    this.#addon.packProbs(probs, packed, heads, t, stats);
  }

  compareProbs(maps: readonly F32[], b: F32, heads: number, k: number, stats: Float64Array, gram?: Float64Array): void {
    this.#addon.compareProbs(maps, b, heads, k, stats, gram ?? null);
  }

  klDivergence(student: F32, teacher: F32, losses: F32, rows: number, cols: number, temperature: number, dstudent?: F32, gradScale = 1): void {
    this.#addon.klDivergence(student, teacher, losses, rows, cols, temperature, dstudent ?? null, gradScale);
  }

  adamw(p: AdamWParams): void {
    // Bias corrections and the decay factor in float64, as the reference computes them.
    this.#addon.adamw(
      p.w, p.g, p.m, p.v, p.n, p.lr, p.beta1, p.beta2, p.eps, 1 - p.lr * p.weightDecay, 1 - p.beta1 ** p.step,
      1 - p.beta2 ** p.step, p.gradScale ?? 1,
    );
  }

  sumSquares(x: F32, n: number): number {
    return this.#addon.sumSquares(x, n);
  }

  embedding(table: F32, ids: I32, out: F32, vocab: number, dim: number): void {
    try {
      this.#addon.embedding(table, ids, out, vocab, dim);
    } catch (err) {
      rethrowShape('embedding', err);
    }
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

  embeddingBackward(dOut: F32, ids: I32, dTable: F32, vocab: number, dim: number): void {
    try {
      this.#addon.embeddingBackward(dOut, ids, dTable, vocab, dim);
    } catch (err) {
      rethrowShape('embeddingBackward', err);
    }
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
