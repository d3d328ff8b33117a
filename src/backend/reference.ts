/**
 * The reference backend: plain TypeScript loops, written to be obviously correct rather than fast.
 * Tests hold every other backend against it. Accumulations use JS doubles, so it is also slightly more
 * accurate than a float32 kernel. The op table's methods are its entries' `reference` functions (`ops/`); the
 * kernels the table does not describe (GEMM, attention, map comparison, AdamW, step programs) are written here.
 */
import type {
  AdamWParams,
  AttentionBackwardParams,
  AttentionParams,
  AttentionShape,
  Backend,
  GemmParams,
  ProbsTimesVBackwardParams,
  ProbsTimesVParams,
} from './backend.js';
import { gemmLayout } from './backend.js';
import type { StepProgram, StepRunner } from './program.js';
import { interpretProgram } from './program-run.js';
import { adamwRef, compareProbsRef } from './reference-stats.js';
import { tableMethods, type TableMethods } from './ops/index.js';
import { softmaxBackwardRef } from './ops/rows.js';

/** The op table's reference functions, installed on the prototype below. */
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export interface ReferenceBackend extends TableMethods {}

// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export class ReferenceBackend implements Backend {
  readonly name = 'reference';
  readonly threads = 1;
  setThreads(_n: number): void {}

  stepProgram(p: StepProgram): StepRunner {
    return interpretProgram(this, p);
  }

  gemm(p: GemmParams): void {
    const { a, b, c } = p;
    const { m, n, k, transA, transB, lda, ldb, ldc, alpha, beta, batch, strideA, strideB, strideC, aOff, bOff, cOff } = gemmLayout(p);
    for (let bi = 0; bi < batch; bi++) {
      const aO = aOff + bi * strideA;
      const bO = bOff + bi * strideB;
      const cO = cOff + bi * strideC;
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let l = 0; l < k; l++) {
            const av = transA ? a[aO + l * lda + i] : a[aO + i * lda + l];
            const bv = transB ? b[bO + j * ldb + l] : b[bO + l * ldb + j];
            s += av * bv;
          }
          const idx = cO + i * ldc + j;
          c[idx] = beta === 0 ? alpha * s : alpha * s + beta * c[idx];
        }
      }
    }
  }

  attention(p: AttentionParams): void {
    const { q, k, v, out, s, nKvHeads, headDim: d, qPos0, scale } = p;
    const kvStride = p.kvBatchStride ?? s * nKvHeads * d;
    const scores = new Float64Array(s);
    const window = p.window ?? 0;
    forEachQueryRow(p, ({ b, kh, t, qo, pRow }) => {
      const last = Math.min(qPos0 + t, s - 1);
      const first = window > 0 ? Math.max(0, qPos0 + t - window + 1) : 0; // visible keys: first ..= last
      let max = -Infinity;
      for (let j = first; j <= last; j++) {
        const ko = b * kvStride + (j * nKvHeads + kh) * d;
        let dot = 0;
        for (let e = 0; e < d; e++) dot += q[qo + e] * k[ko + e];
        scores[j] = dot * scale;
        max = Math.max(max, scores[j]); // Math.max propagates NaN
      }
      let sum = 0;
      for (let j = first; j <= last; j++) {
        scores[j] = Math.exp(scores[j] - max);
        sum += scores[j];
      }
      for (let e = 0; e < d; e++) out[qo + e] = 0;
      for (let j = 0; j < s; j++) {
        const pj = j >= first && j <= last ? scores[j] / sum : 0;
        if (p.probs) p.probs[pRow + j] = pj;
        if (j < first || j > last) continue;
        const vo = b * kvStride + (j * nKvHeads + kh) * d;
        for (let e = 0; e < d; e++) out[qo + e] += pj * v[vo + e];
      }
    });
  }

  probsTimesV(p: ProbsTimesVParams): void {
    const { probs, v, out, s, nKvHeads, headDim: d } = p;
    const kvStride = p.kvBatchStride ?? s * nKvHeads * d;
    forEachQueryRow(p, ({ b, kh, qo, pRow }) => {
      for (let e = 0; e < d; e++) {
        let acc = 0;
        for (let j = 0; j < s; j++) acc += probs[pRow + j] * v[b * kvStride + (j * nKvHeads + kh) * d + e];
        out[qo + e] = acc;
      }
    });
  }

  probsTimesVBackward(p: ProbsTimesVBackwardParams): void {
    const { probs, v, dout, dProbs, dv, batch, s, nKvHeads, headDim: d } = p;
    dv.fill(0, 0, batch * s * nKvHeads * d);
    forEachQueryRow(p, ({ b, kh, qo, pRow }) => {
      for (let j = 0; j < s; j++) {
        const vo = ((b * s + j) * nKvHeads + kh) * d;
        let dot = 0;
        for (let e = 0; e < d; e++) {
          dot += dout[qo + e] * v[vo + e];
          dv[vo + e] += probs[pRow + j] * dout[qo + e];
        }
        dProbs[pRow + j] = dot;
      }
    });
  }

  attentionBackward(p: AttentionBackwardParams): void {
    const { q, k, probs, dq, dk, batch, tq, s, nHeads, nKvHeads, headDim: d, scale } = p;
    const dP = new Float32Array(batch * nHeads * tq * s);
    this.probsTimesVBackward({ ...p, dProbs: dP });
    if (p.dProbsExtra) for (let i = 0; i < dP.length; i++) dP[i] += p.dProbsExtra[i];
    const dS = new Float32Array(dP.length);
    softmaxBackwardRef(probs, dP, dS, batch * nHeads * tq, s);
    dq.fill(0, 0, batch * tq * nHeads * d);
    dk.fill(0, 0, batch * s * nKvHeads * d);
    forEachQueryRow(p, ({ b, kh, qo, pRow }) => {
      for (let j = 0; j < s; j++) {
        const g = dS[pRow + j] * scale;
        if (g === 0) continue;
        const ko = ((b * s + j) * nKvHeads + kh) * d;
        for (let e = 0; e < d; e++) {
          dq[qo + e] += g * k[ko + e];
          dk[ko + e] += g * q[qo + e];
        }
      }
    });
  }

  compareProbs(maps: readonly Float32Array[], b: Float32Array, heads: number, k: number, stats: Float64Array, gram?: Float64Array): void {
    compareProbsRef(maps, b, heads, k, stats, gram);
  }

  adamw(p: AdamWParams): void {
    adamwRef(p);
  }

}

/**
 * Every (batch entry `b`, query head `h` reading K/V head `kh`, query row `t`) of an attention shape, with the offset
 * of the row in `(B, Tq, H, D)` (`qo`) and of its probabilities in `(B, H, Tq, S)` (`pRow`).
 */
function forEachQueryRow(p: AttentionShape, f: (r: { b: number; h: number; kh: number; t: number; qo: number; pRow: number }) => void): void {
  const { batch, tq, s, nHeads, nKvHeads, headDim: d } = p;
  const group = nHeads / nKvHeads;
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < nHeads; h++) {
      const kh = Math.floor(h / group);
      for (let t = 0; t < tq; t++) f({ b, h, kh, t, qo: ((b * tq + t) * nHeads + h) * d, pRow: ((b * nHeads + h) * tq + t) * s });
    }
  }
}

Object.assign(ReferenceBackend.prototype, tableMethods((_op, e) => e.reference));
