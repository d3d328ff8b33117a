/**
 * Size and type validation in front of any backend. Native kernels trust their arguments (a bounds check per
 * element would cost real time), so every call is checked here first and a bad call becomes a {@link ShapeError}
 * naming the op and the shapes instead of a segfault.
 */
import type { AttentionBackwardParams, AttentionParams, AttentionShape, Backend, GemmParams } from './backend.js';
import type { ProbsTimesVBackwardParams, ProbsTimesVParams } from './backend.js';
import { gemmLayout } from './backend.js';
import { ShapeError } from '../errors.js';
import { checkThreads } from './threads.js';
import { checkProgram, checkStep } from './program-run.js';
import { dims, f32, need } from './check.js';
import { statsOps } from './validate-stats.js';
import { tableMethods } from './ops/index.js';
import { callChecker } from './ops/check-call.js';

function heads(op: string, nHeads: number, nKvHeads: number): void {
  if (nKvHeads === 0 || nHeads % nKvHeads !== 0) {
    throw new ShapeError(op, `nHeads ${nHeads} must be a positive multiple of nKvHeads ${nKvHeads}`);
  }
}

function checkGemm(p: GemmParams): void {
  const op = 'gemm';
  const { m, n, k, transA, transB, lda, ldb, ldc, batch, strideA: sA, strideB: sB, strideC: sC, aOff, bOff, cOff } = gemmLayout(p);
  dims(op, { m, n, k, lda, ldb, ldc, batch, strideA: sA, strideB: sB, strideC: sC, aOff, bOff, cOff });
  f32(op, 'a', p.a);
  f32(op, 'b', p.b);
  f32(op, 'c', p.c);
  const [aRows, aCols] = transA ? [k, m] : [m, k];
  const [bRows, bCols] = transB ? [n, k] : [k, n];
  if (lda < Math.max(1, aCols)) throw new ShapeError(op, `lda ${lda} < ${aCols} columns of A as stored`);
  if (ldb < Math.max(1, bCols)) throw new ShapeError(op, `ldb ${ldb} < ${bCols} columns of B as stored`);
  if (ldc < Math.max(1, n)) throw new ShapeError(op, `ldc ${ldc} < n ${n}`);
  if (batch === 0 || m === 0 || n === 0) return;
  const shape = `m=${m} n=${n} k=${k} transA=${transA} transB=${transB} batch=${batch}`;
  if (k > 0) {
    need(op, 'a', p.a, aOff + (batch - 1) * sA + (aRows - 1) * lda + aCols, shape);
    need(op, 'b', p.b, bOff + (batch - 1) * sB + (bRows - 1) * ldb + bCols, shape);
  }
  need(op, 'c', p.c, cOff + (batch - 1) * sC + (m - 1) * ldc + n, shape);
  // Outputs may be stacked (each C_i after the previous) or side by side within the same rows (C_i = columns
  // [i·strideC, i·strideC + n) of rows of ldc, as per-head blocks of a (T, H·D) activation); anything else overlaps.
  const stacked = sC >= (m - 1) * ldc + n;
  const sideBySide = sC >= n && (batch - 1) * sC + n <= ldc;
  if (batch > 1 && !stacked && !sideBySide) throw new ShapeError(op, `strideC ${sC} makes batch outputs overlap`);
}

function checkAttentionShape(op: string, p: AttentionShape): string {
  const { batch, tq, s, nHeads, nKvHeads, headDim } = p;
  dims(op, { batch, tq, s, nHeads, nKvHeads, headDim });
  heads(op, nHeads, nKvHeads);
  return `B=${batch} Tq=${tq} S=${s} H=${nHeads} Hkv=${nKvHeads} D=${headDim}`;
}

/** A checked attention shape's description and its dense element counts: queries, keys/values, probabilities. */
function attentionSizes(op: string, p: AttentionShape): { shape: string; qn: number; kvn: number; pn: number } {
  const shape = checkAttentionShape(op, p);
  const { batch, tq, s, nHeads, nKvHeads, headDim } = p;
  return { shape, qn: batch * tq * nHeads * headDim, kvn: batch * s * nKvHeads * headDim, pn: batch * nHeads * tq * s };
}

/**
 * Wrap a backend so every call is validated: table ops (`ops/`) by their operand rules, the others by hand below. The wrapper adds a few integer comparisons per call, nothing per element
 * except for token ids and targets (checked once, so a native kernel never indexes out of range).
 */
export function checkedBackend(inner: Backend): Backend {
  return {
    get name() {
      return inner.name;
    },
    get threads() {
      return inner.threads;
    },
    setThreads(n: number) {
      inner.setThreads(checkThreads(n, 'setThreads'));
    },
    ...tableMethods((op, e) => {
      const check = callChecker(op, e);
      return (...args: unknown[]) => (inner[op] as (...a: unknown[]) => unknown).apply(inner, check(args));
    }),
    gemm(p) {
      checkGemm(p);
      inner.gemm(p);
    },
    ...attentionOps(inner),
    ...statsOps(inner),
    stepProgram(p) {
      checkProgram(p); // once: every access of every step, at every position the program may run at
      const run = inner.stepProgram(p);
      return Object.assign((token: number, pos: number) => {
        checkStep(p, token, pos);
        run(token, pos);
      }, { profile: (on: boolean) => run.profile(on) });
    },
  };
}

/** Checked attention kernels. */
function attentionOps(inner: Backend): Pick<Backend, 'attention' | 'probsTimesV' | 'attentionBackward' | 'probsTimesVBackward'> {
  return {
    attention(p: AttentionParams) {
      const op = 'attention';
      const shape = checkAttentionShape(op, p);
      const { batch, tq, s, nHeads, nKvHeads, headDim } = p;
      const kvStride = p.kvBatchStride ?? s * nKvHeads * headDim;
      dims(op, { qPos0: p.qPos0, kvBatchStride: kvStride, window: p.window ?? 0 });
      if (kvStride < s * nKvHeads * headDim) throw new ShapeError(op, `kvBatchStride ${kvStride} < S·Hkv·D (${shape})`);
      const qn = batch * tq * nHeads * headDim;
      need(op, 'q', f32(op, 'q', p.q), qn, shape);
      need(op, 'out', f32(op, 'out', p.out), qn, shape);
      const kvEnd = batch === 0 ? 0 : (batch - 1) * kvStride + s * nKvHeads * headDim;
      need(op, 'k', f32(op, 'k', p.k), kvEnd, shape);
      need(op, 'v', f32(op, 'v', p.v), kvEnd, shape);
      if (p.probs !== undefined) need(op, 'probs', f32(op, 'probs', p.probs), batch * nHeads * tq * s, shape);
      if (!Number.isFinite(p.scale)) throw new ShapeError(op, `scale must be finite, got ${p.scale}`);
      inner.attention(p);
    },
    probsTimesV(p: ProbsTimesVParams) {
      const op = 'probsTimesV';
      const shape = checkAttentionShape(op, p);
      const { batch, tq, s, nHeads, nKvHeads, headDim } = p;
      const kvStride = p.kvBatchStride ?? s * nKvHeads * headDim;
      if (kvStride < s * nKvHeads * headDim) throw new ShapeError(op, `kvBatchStride ${kvStride} < S·Hkv·D (${shape})`);
      need(op, 'probs', f32(op, 'probs', p.probs), batch * nHeads * tq * s, shape);
      need(op, 'v', f32(op, 'v', p.v), batch === 0 ? 0 : (batch - 1) * kvStride + s * nKvHeads * headDim, shape);
      need(op, 'out', f32(op, 'out', p.out), batch * tq * nHeads * headDim, shape);
      inner.probsTimesV(p);
    },
    attentionBackward(p: AttentionBackwardParams) {
      const op = 'attentionBackward';
      const { shape, qn, kvn, pn } = attentionSizes(op, p);
      for (const [nm, a] of [['q', p.q], ['dout', p.dout], ['dq', p.dq]] as const) need(op, nm, f32(op, nm, a), qn, shape);
      for (const [nm, a] of [['k', p.k], ['v', p.v], ['dk', p.dk], ['dv', p.dv]] as const) need(op, nm, f32(op, nm, a), kvn, shape);
      need(op, 'probs', f32(op, 'probs', p.probs), pn, shape);
      if (p.dProbsExtra !== undefined) need(op, 'dProbsExtra', f32(op, 'dProbsExtra', p.dProbsExtra), pn, shape);
      inner.attentionBackward(p);
    },
    probsTimesVBackward(p: ProbsTimesVBackwardParams) {
      const op = 'probsTimesVBackward';
      const { shape, qn, kvn, pn } = attentionSizes(op, p);
      need(op, 'dout', f32(op, 'dout', p.dout), qn, shape);
      need(op, 'v', f32(op, 'v', p.v), kvn, shape);
      need(op, 'dv', f32(op, 'dv', p.dv), kvn, shape);
      need(op, 'probs', f32(op, 'probs', p.probs), pn, shape);
      need(op, 'dProbs', f32(op, 'dProbs', p.dProbs), pn, shape);
      inner.probsTimesVBackward(p);
    },

  };
}
