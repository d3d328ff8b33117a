/**
 * The reference backend: plain TypeScript loops, written to be obviously correct rather than fast.
 * Tests hold every other backend against it. Accumulations use JS doubles, so it is also slightly more
 * accurate than a float32 kernel.
 */
import type {
  AdamWParams,
  AttentionBackwardParams,
  AttentionParams,
  AttentionShape,
  Backend,
  GemmParams,
  HalfDType,
  ProbsTimesVBackwardParams,
  ProbsTimesVParams,
  RopeStyle,
} from './backend.js';
import { gemmLayout } from './backend.js';
import type { StepProgram, StepRunner } from './program.js';
import { interpretProgram } from './program-run.js';
import { ShapeError } from '../errors.js';
import { bf16ToF32, f16ToF32 } from '../tensor/dtype.js';
import { adamwRef, compareProbsRef, klDivergenceRef, packProbsRef, sumSquaresRef } from './reference-stats.js';
import { geluTanhMulBackwardRef, geluTanhMulRef } from './reference-pointwise.js';

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

  matvec(w: Float32Array, x: Float32Array, y: Float32Array, n: number, k: number, wOff = 0, accumulate = false): void {
    for (let i = 0; i < n; i++) {
      let s = 0;
      const row = wOff + i * k;
      for (let j = 0; j < k; j++) s += w[row + j] * x[j];
      y[i] = accumulate ? y[i] + s : s;
    }
  }

  matmulHalf(x: Float32Array, w: Uint16Array, dtype: HalfDType, out: Float32Array, rows: number, n: number, k: number): void {
    const row = new Float32Array(k);
    for (let i = 0; i < n; i++) {
      const bits = w.subarray(i * k, (i + 1) * k);
      if (dtype === 'bf16') bf16ToF32(bits, row);
      else f16ToF32(bits, row);
      for (let r = 0; r < rows; r++) {
        let s = 0;
        for (let j = 0; j < k; j++) s += x[r * k + j] * row[j];
        out[r * n + i] = s;
      }
    }
  }

  rmsnorm(x: Float32Array, w: Float32Array, out: Float32Array, rows: number, dim: number, eps: number, wOffset = 0): void {
    const ws = offsetWeights(w, dim, wOffset);
    for (let r = 0; r < rows; r++) {
      const o = r * dim;
      let ss = 0;
      for (let j = 0; j < dim; j++) ss += x[o + j] * x[o + j];
      const inv = 1 / Math.sqrt(ss / dim + eps);
      for (let j = 0; j < dim; j++) out[o + j] = x[o + j] * inv * ws[j];
    }
  }

  rmsnormBackward(
    x: Float32Array, wRaw: Float32Array, dy: Float32Array, dx: Float32Array, dw: Float32Array,
    rows: number, dim: number, eps: number, wOffset = 0,
  ): void {
    // y_j = x_j·r·w_j with r = (mean(x²)+eps)^-1/2;  dx_j = r·w_j·dy_j − x_j·r³/dim · Σ_k dy_k·w_k·x_k
    // (w_j standing for w_j + wOffset; ∂y/∂w does not depend on the offset)
    const w = offsetWeights(wRaw, dim, wOffset);
    for (let row = 0; row < rows; row++) {
      const o = row * dim;
      let ss = 0;
      for (let j = 0; j < dim; j++) ss += x[o + j] * x[o + j];
      const r = 1 / Math.sqrt(ss / dim + eps);
      let dot = 0;
      for (let j = 0; j < dim; j++) dot += dy[o + j] * w[j] * x[o + j];
      const c = (r * r * r * dot) / dim;
      for (let j = 0; j < dim; j++) {
        dw[j] += dy[o + j] * x[o + j] * r;
        dx[o + j] = r * w[j] * dy[o + j] - x[o + j] * c;
      }
    }
  }

  rope(
    x: Float32Array, nTok: number, nHeads: number, headDim: number, pos: Int32Array,
    cos: Float32Array, sin: Float32Array, style: RopeStyle, inverse = false,
  ): void {
    const half = headDim / 2;
    const sign = inverse ? -1 : 1;
    for (let t = 0; t < nTok; t++) {
      const tb = pos[t] * half;
      for (let h = 0; h < nHeads; h++) {
        const o = (t * nHeads + h) * headDim;
        for (let i = 0; i < half; i++) {
          const c = cos[tb + i];
          const s = sign * sin[tb + i];
          const i0 = style === 'interleaved' ? o + 2 * i : o + i;
          const i1 = style === 'interleaved' ? o + 2 * i + 1 : o + i + half;
          const a = x[i0];
          const b = x[i1];
          x[i0] = a * c - b * s;
          x[i1] = a * s + b * c;
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
    this.softmaxBackward(probs, dP, dS, batch * nHeads * tq, s);
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

  softmax(x: Float32Array, out: Float32Array, rows: number, cols: number, causalOffset?: number): void {
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      const last = causalOffset === undefined ? cols - 1 : Math.min(cols - 1, r + causalOffset);
      let max = -Infinity;
      for (let j = 0; j <= last; j++) max = Math.max(max, x[o + j]);
      let sum = 0;
      const e = new Float64Array(cols);
      for (let j = 0; j <= last; j++) {
        e[j] = Math.exp(x[o + j] - max);
        sum += e[j];
      }
      for (let j = 0; j < cols; j++) out[o + j] = j <= last ? e[j] / sum : 0;
    }
  }

  softmaxBackward(p: Float32Array, dp: Float32Array, dx: Float32Array, rows: number, cols: number): void {
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      let dot = 0;
      for (let j = 0; j < cols; j++) dot += p[o + j] * dp[o + j];
      for (let j = 0; j < cols; j++) dx[o + j] = p[o + j] * (dp[o + j] - dot);
    }
  }

  logSoftmax(x: Float32Array, out: Float32Array, rows: number, cols: number): void {
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      const lse = logSumExp(x, o, cols);
      for (let j = 0; j < cols; j++) out[o + j] = x[o + j] - lse;
    }
  }

  crossEntropy(
    logits: Float32Array, targets: Int32Array, losses: Float32Array, rows: number, cols: number,
    dlogits?: Float32Array, gradScale = 1, ignoreIndex = -100,
  ): void {
    for (let r = 0; r < rows; r++) {
      const t = targets[r];
      if (t !== ignoreIndex && !(t >= 0 && t < cols)) {
        throw new ShapeError('crossEntropy', `target ${t} at row ${r} is outside [0, ${cols})`);
      }
    }
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      const t = targets[r];
      if (t === ignoreIndex) {
        losses[r] = 0;
        if (dlogits) dlogits.fill(0, o, o + cols);
        continue;
      }
      const lse = logSumExp(logits, o, cols);
      losses[r] = lse - logits[o + t];
      if (dlogits) {
        for (let j = 0; j < cols; j++) dlogits[o + j] = gradScale * (Math.exp(logits[o + j] - lse) - (j === t ? 1 : 0));
      }
    }
  }

  siluMul(gate: Float32Array, up: Float32Array, out: Float32Array, n: number): void {
    for (let i = 0; i < n; i++) {
      const g = gate[i];
      out[i] = (g / (1 + Math.exp(-g))) * up[i];
    }
  }

  siluMulBackward(gate: Float32Array, up: Float32Array, dout: Float32Array, dgate: Float32Array, dup: Float32Array, n: number): void {
    for (let i = 0; i < n; i++) {
      const g = gate[i];
      const sig = 1 / (1 + Math.exp(-g));
      const silu = g * sig;
      const dy = dout[i];
      const u = up[i];
      dup[i] = dy * silu;
      dgate[i] = dy * u * sig * (1 + g * (1 - sig));
    }
  }

  geluTanhMul(gate: Float32Array, up: Float32Array, out: Float32Array, n: number): void {
    geluTanhMulRef(gate, up, out, n);
  }

  geluTanhMulBackward(gate: Float32Array, up: Float32Array, dout: Float32Array, dgate: Float32Array, dup: Float32Array, n: number): void {
    geluTanhMulBackwardRef(gate, up, dout, dgate, dup, n);
  }

  scale(x: Float32Array, alpha: number, out: Float32Array, n: number): void {
    const a = Math.fround(alpha);
    for (let i = 0; i < n; i++) out[i] = a * x[i];
  }

  add(a: Float32Array, b: Float32Array, out: Float32Array, n: number): void {
    for (let i = 0; i < n; i++) out[i] = a[i] + b[i];
  }

  mul(a: Float32Array, b: Float32Array, out: Float32Array, n: number): void {
    for (let i = 0; i < n; i++) out[i] = a[i] * b[i];
  }

  axpy(alpha: number, x: Float32Array, y: Float32Array, n: number): void {
    for (let i = 0; i < n; i++) y[i] += alpha * x[i];
  }

  packProbs(probs: Float32Array, packed: Float32Array, heads: number, t: number, stats: Float64Array): void {
    packProbsRef(probs, packed, heads, t, stats);
  }

  compareProbs(maps: readonly Float32Array[], b: Float32Array, heads: number, k: number, stats: Float64Array, gram?: Float64Array): void {
    compareProbsRef(maps, b, heads, k, stats, gram);
  }

  klDivergence(
    student: Float32Array, teacher: Float32Array, losses: Float32Array, rows: number, cols: number, temperature: number,
    dstudent?: Float32Array, gradScale = 1,
  ): void {
    klDivergenceRef(student, teacher, losses, rows, cols, temperature, dstudent, gradScale);
  }

  adamw(p: AdamWParams): void {
    adamwRef(p);
  }

  sumSquares(x: Float32Array, n: number): number {
    return sumSquaresRef(x, n);
  }

  embedding(table: Float32Array, ids: Int32Array, out: Float32Array, vocab: number, dim: number): void {
    for (let t = 0; t < ids.length; t++) {
      const id = ids[t];
      if (!(id >= 0 && id < vocab)) throw new ShapeError('embedding', `token id ${id} at position ${t} is outside [0, ${vocab})`);
      out.set(table.subarray(id * dim, id * dim + dim), t * dim);
    }
  }

  embeddingBackward(dOut: Float32Array, ids: Int32Array, dTable: Float32Array, vocab: number, dim: number): void {
    for (let t = 0; t < ids.length; t++) {
      const id = ids[t];
      if (!(id >= 0 && id < vocab)) throw new ShapeError('embeddingBackward', `token id ${id} at position ${t} is outside [0, ${vocab})`);
      for (let j = 0; j < dim; j++) dTable[id * dim + j] += dOut[t * dim + j];
    }
  }
}

/** `w` itself when `offset` is 0 (so results are those of a call without an offset, bit for bit), else `w + offset`. */
function offsetWeights(w: Float32Array, dim: number, offset: number): ArrayLike<number> {
  if (offset === 0) return w;
  const out = new Float64Array(dim);
  for (let j = 0; j < dim; j++) out[j] = w[j] + offset;
  return out;
}

function logSumExp(x: Float32Array, o: number, n: number): number {
  let max = -Infinity;
  for (let j = 0; j < n; j++) max = Math.max(max, x[o + j]);
  if (max === -Infinity) return -Infinity;
  let sum = 0;
  for (let j = 0; j < n; j++) sum += Math.exp(x[o + j] - max);
  return max + Math.log(sum);
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
