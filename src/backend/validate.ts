/**
 * Size and type validation in front of any backend. Native kernels trust their arguments (a bounds check per
 * element would cost real time), so every call is checked here first and a bad call becomes a {@link ShapeError}
 * naming the op and the shapes instead of a segfault.
 */
import type {
  AttentionBackwardParams,
  AttentionParams,
  AttentionShape,
  Backend,
  GemmParams,
  ProbsTimesVBackwardParams,
  ProbsTimesVParams,
  RopeStyle,
} from './backend.js';
import { gemmLayout } from './backend.js';
import { DTypeError, ShapeError } from '../errors.js';
import { checkThreads } from './threads.js';
import { checkProgram, checkStep } from './program-run.js';
import { describe, dims, f32, finite, i32, need } from './check.js';
import { statsOps } from './validate-stats.js';

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
 * Wrap a backend so every call is validated. The wrapper adds a few integer comparisons per call, nothing per element
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
    ...linearOps(inner),
    ...attentionOps(inner),
    ...softmaxOps(inner),
    ...pointwiseOps(inner),
    ...activationOps(inner),
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

/** Checked matrix products, norms and RoPE. */
function linearOps(inner: Backend): Pick<Backend, 'gemm' | 'matvec' | 'matmulHalf' | 'rmsnorm' | 'rmsnormBackward' | 'rope'> {
  return {
    gemm(p) {
      checkGemm(p);
      inner.gemm(p);
    },
    matvec(w, x, y, n, k, wOff = 0, accumulate = false) {
      const op = 'matvec';
      dims(op, { n, k, wOff });
      const shape = `W (${n}, ${k}) at offset ${wOff}`;
      need(op, 'w', f32(op, 'w', w), wOff + n * k, shape);
      need(op, 'x', f32(op, 'x', x), k, shape);
      need(op, 'y', f32(op, 'y', y), n, shape);
      inner.matvec(w, x, y, n, k, wOff, accumulate);
    },
    matmulHalf(x, w, dtype, out, rows, n, k) {
      const op = 'matmulHalf';
      dims(op, { rows, n, k });
      if (dtype !== 'f16' && dtype !== 'bf16') throw new DTypeError(op, `weight dtype must be 'f16' or 'bf16', got '${String(dtype)}'`);
      if (!(w instanceof Uint16Array)) throw new DTypeError(op, `w must be a Uint16Array of ${dtype} bits, got ${describe(w)}`);
      const shape = `x (${rows}, ${k}) · W (${n}, ${k})ᵀ`;
      need(op, 'x', f32(op, 'x', x), rows * k, shape);
      if (w.length < n * k) throw new ShapeError(op, `w has ${w.length} elements but ${shape} needs ${n * k}`);
      need(op, 'out', f32(op, 'out', out), rows * n, shape);
      inner.matmulHalf(x, w, dtype, out, rows, n, k);
    },
    rmsnorm(x, w, out, rows, dim, eps, wOffset = 0) {
      const op = 'rmsnorm';
      dims(op, { rows, dim });
      finite(op, 'wOffset', wOffset);
      const shape = `(${rows}, ${dim})`;
      need(op, 'x', f32(op, 'x', x), rows * dim, shape);
      need(op, 'w', f32(op, 'w', w), dim, shape);
      need(op, 'out', f32(op, 'out', out), rows * dim, shape);
      inner.rmsnorm(x, w, out, rows, dim, eps, wOffset);
    },
    rmsnormBackward(x, w, dy, dx, dw, rows, dim, eps, wOffset = 0) {
      const op = 'rmsnormBackward';
      dims(op, { rows, dim });
      finite(op, 'wOffset', wOffset);
      const shape = `(${rows}, ${dim})`;
      for (const [nm, a] of [['x', x], ['dy', dy], ['dx', dx]] as const) need(op, nm, f32(op, nm, a), rows * dim, shape);
      need(op, 'w', f32(op, 'w', w), dim, shape);
      need(op, 'dw', f32(op, 'dw', dw), dim, shape);
      inner.rmsnormBackward(x, w, dy, dx, dw, rows, dim, eps, wOffset);
    },
    rope(x, nTok, nHeads, headDim, pos, cos, sin, style: RopeStyle, inverse = false) {
      const op = 'rope';
      dims(op, { nTok, nHeads, headDim });
      if (headDim % 2 !== 0) throw new ShapeError(op, `headDim ${headDim} must be even`);
      if (style !== 'interleaved' && style !== 'half') throw new ShapeError(op, `unknown RoPE style '${String(style)}'`);
      const shape = `(${nTok}, ${nHeads}, ${headDim})`;
      need(op, 'x', f32(op, 'x', x), nTok * nHeads * headDim, shape);
      need(op, 'pos', i32(op, 'pos', pos), nTok, shape);
      f32(op, 'cos', cos);
      f32(op, 'sin', sin);
      const half = headDim / 2;
      const maxPos = Math.floor(Math.min(cos.length, sin.length) / Math.max(half, 1));
      for (let t = 0; t < nTok; t++) {
        if (!(pos[t] >= 0 && pos[t] < maxPos)) {
          throw new ShapeError(op, `position ${pos[t]} of token ${t} is outside the RoPE table (0..${maxPos - 1})`);
        }
      }
      inner.rope(x, nTok, nHeads, headDim, pos, cos, sin, style, inverse);
    }
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

/** Checked losses, elementwise ops and embeddings. */
function pointwiseOps(inner: Backend): Pick<Backend, 'crossEntropy' | 'siluMul' | 'siluMulBackward' | 'add' | 'mul' | 'axpy' | 'embedding' | 'embeddingBackward'> {
  return {
    crossEntropy(logits, targets, losses, rows, cols, dlogits, gradScale = 1, ignoreIndex = -100) {
      const op = 'crossEntropy';
      dims(op, { rows, cols });
      const shape = `logits (${rows}, ${cols})`;
      need(op, 'logits', f32(op, 'logits', logits), rows * cols, shape);
      need(op, 'targets', i32(op, 'targets', targets), rows, shape);
      need(op, 'losses', f32(op, 'losses', losses), rows, shape);
      if (dlogits !== undefined) need(op, 'dlogits', f32(op, 'dlogits', dlogits), rows * cols, shape);
      for (let r = 0; r < rows; r++) {
        const t = targets[r];
        if (t !== ignoreIndex && !(t >= 0 && t < cols)) {
          throw new ShapeError(op, `target ${t} at row ${r} is outside [0, ${cols})`);
        }
      }
      inner.crossEntropy(logits, targets, losses, rows, cols, dlogits, gradScale, ignoreIndex);
    },
    siluMul(gate, up, out, n) {
      const op = 'siluMul';
      dims(op, { n });
      for (const [nm, a] of [['gate', gate], ['up', up], ['out', out]] as const) need(op, nm, f32(op, nm, a), n, `(${n})`);
      inner.siluMul(gate, up, out, n);
    },
    siluMulBackward(gate, up, dout, dgate, dup, n) {
      const op = 'siluMulBackward';
      dims(op, { n });
      const arrs = [['gate', gate], ['up', up], ['dout', dout], ['dgate', dgate], ['dup', dup]] as const;
      for (const [nm, a] of arrs) need(op, nm, f32(op, nm, a), n, `(${n})`);
      inner.siluMulBackward(gate, up, dout, dgate, dup, n);
    },
    add(a, bb, out, n) {
      elementwise('add', a, bb, out, n);
      inner.add(a, bb, out, n);
    },
    mul(a, bb, out, n) {
      elementwise('mul', a, bb, out, n);
      inner.mul(a, bb, out, n);
    },
    axpy(alpha, x, y, n) {
      const op = 'axpy';
      dims(op, { n });
      need(op, 'x', f32(op, 'x', x), n, `(${n})`);
      need(op, 'y', f32(op, 'y', y), n, `(${n})`);
      inner.axpy(alpha, x, y, n);
    },
    embedding(table, ids, out, vocab, dim) {
      checkEmbedding('embedding', { table, out }, ids, vocab, dim);
      inner.embedding(table, ids, out, vocab, dim);
    },
    embeddingBackward(dOut, ids, dTable, vocab, dim) {
      checkEmbedding('embeddingBackward', { dTable, dOut }, ids, vocab, dim);
      inner.embeddingBackward(dOut, ids, dTable, vocab, dim);
    }
  };
}

/** Checked GELU activation (Gemma's FFN) and scaling. */
function activationOps(inner: Backend): Pick<Backend, 'geluTanhMul' | 'geluTanhMulBackward' | 'scale'> {
  return {
    geluTanhMul(gate, up, out, n) {
      const op = 'geluTanhMul';
      dims(op, { n });
      for (const [nm, a] of [['gate', gate], ['up', up], ['out', out]] as const) need(op, nm, f32(op, nm, a), n, `(${n})`);
      inner.geluTanhMul(gate, up, out, n);
    },
    geluTanhMulBackward(gate, up, dout, dgate, dup, n) {
      const op = 'geluTanhMulBackward';
      dims(op, { n });
      const arrs = [['gate', gate], ['up', up], ['dout', dout], ['dgate', dgate], ['dup', dup]] as const;
      for (const [nm, a] of arrs) need(op, nm, f32(op, nm, a), n, `(${n})`);
      inner.geluTanhMulBackward(gate, up, dout, dgate, dup, n);
    },
    scale(x, alpha, out, n) {
      const op = 'scale';
      dims(op, { n });
      need(op, 'x', f32(op, 'x', x), n, `(${n})`);
      need(op, 'out', f32(op, 'out', out), n, `(${n})`);
      inner.scale(x, alpha, out, n);
    },
  };
}

/** An embedding table `(vocab, dim)` (first entry of `arrays`) and rows `(ids, dim)` (second), and ids inside the vocabulary. */
function checkEmbedding(op: string, arrays: Record<string, Float32Array>, ids: Int32Array, vocab: number, dim: number): void {
  dims(op, { vocab, dim });
  const shape = `table (${vocab}, ${dim}), ${ids?.length} ids`;
  const [[tName, table], [rName, rows]] = Object.entries(arrays);
  need(op, tName, f32(op, tName, table), vocab * dim, shape);
  i32(op, 'ids', ids);
  need(op, rName, f32(op, rName, rows), ids.length * dim, shape);
  checkIds(op, ids, vocab);
}

function elementwise(op: string, a: Float32Array, b: Float32Array, out: Float32Array, n: number): void {
  dims(op, { n });
  for (const [nm, x] of [['a', a], ['b', b], ['out', out]] as const) need(op, nm, f32(op, nm, x), n, `(${n})`);
}

function checkIds(op: string, ids: Int32Array, vocab: number): void {
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t];
    if (!(id >= 0 && id < vocab)) throw new ShapeError(op, `token id ${id} at position ${t} is outside [0, ${vocab})`);
  }
}

/** Checked softmax kernels. */
function softmaxOps(inner: Backend): Pick<Backend, 'softmax' | 'softmaxBackward' | 'logSoftmax'> {
  return {
    softmax(x, out, rows, cols, causalOffset) {
      const op = 'softmax';
      dims(op, { rows, cols });
      if (causalOffset !== undefined && !Number.isInteger(causalOffset)) {
        throw new ShapeError(op, `causalOffset must be an integer, got ${causalOffset}`);
      }
      const shape = `(${rows}, ${cols})`;
      need(op, 'x', f32(op, 'x', x), rows * cols, shape);
      need(op, 'out', f32(op, 'out', out), rows * cols, shape);
      inner.softmax(x, out, rows, cols, causalOffset);
    },
    softmaxBackward(p, dp, dx, rows, cols) {
      const op = 'softmaxBackward';
      dims(op, { rows, cols });
      const shape = `(${rows}, ${cols})`;
      for (const [nm, a] of [['p', p], ['dp', dp], ['dx', dx]] as const) need(op, nm, f32(op, nm, a), rows * cols, shape);
      inner.softmaxBackward(p, dp, dx, rows, cols);
    },
    logSoftmax(x, out, rows, cols) {
      const op = 'logSoftmax';
      dims(op, { rows, cols });
      const shape = `(${rows}, ${cols})`;
      need(op, 'x', f32(op, 'x', x), rows * cols, shape);
      need(op, 'out', f32(op, 'out', out), rows * cols, shape);
      inner.logSoftmax(x, out, rows, cols);
    }
  };
}
