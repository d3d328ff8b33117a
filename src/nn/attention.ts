/**
 * Prefill attention through GEMM. For many query rows, the backend's row-at-a-time attention kernel runs far
 * below GEMM speed; here each (sequence, head) is processed in blocks of query rows: scores = Q·Kᵀ (one GEMM over
 * the visible keys only), causal softmax, out = P·V (one GEMM). A block's scores are the only scratch, so no
 * `T × S` matrix is held unless the caller asks for the probabilities. Short steps (decode) use the kernel as is.
 * Same semantics as `Backend.attention` / `Backend.probsTimesV` (tests hold them equal).
 */
import type { AttentionParams, Backend, ProbsTimesVParams } from '../backend/backend.js';
import { gatherHeads } from '../backend/gather-heads.js';

export { gatherHeads };

/** Query rows below this use the backend's fused kernel directly. */
const MIN_ROWS = 32;
/** Query rows per block: scratch is BLOCK × S floats. */
const BLOCK = 128;

export function attention(be: Backend, p: AttentionParams): void {
  const { q, k, v, out, batch, tq, s, nHeads: H, nKvHeads: Hkv, headDim: D, qPos0, scale, probs } = p;
  if (tq < MIN_ROWS) {
    be.attention(p);
    return;
  }
  const window = p.window ?? 0;
  const group = H / Hkv;
  const kvStride = p.kvBatchStride ?? s * Hkv * D;
  const scratch = new Float32Array(group * Math.min(BLOCK, tq) * s);
  for (let b = 0; b < batch; b++) {
    for (let kh = 0; kh < Hkv; kh++) {
      const h0 = kh * group;
      for (let r0 = 0; r0 < tq; r0 += BLOCK) {
        const rows = Math.min(BLOCK, tq - r0);
        // Keys [lo, lo + cols): from the first key the block's first row sees (sliding window) to the last row's.
        const lo = window > 0 ? Math.max(0, qPos0 + r0 - window + 1) : 0;
        const cols = Math.min(s, qPos0 + r0 + rows) - lo;
        const kvOff = b * kvStride + lo * Hkv * D + kh * D;
        const sc = scratch.subarray(0, group * rows * cols); // (group, rows, cols)
        // The query heads of one KV group share K and V: one batched GEMM over the group (A_i = head h0 + i,
        // B broadcast) instead of one call per head.
        be.gemm({
          m: rows, n: cols, k: D, alpha: scale, transB: true, batch: group,
          a: q, aOff: ((b * tq + r0) * H + h0) * D, lda: H * D, strideA: D,
          b: k, bOff: kvOff, ldb: Hkv * D, strideB: 0,
          c: sc, ldc: cols, strideC: rows * cols,
        });
        if (window > 0) maskBeforeWindow(sc, group * rows, rows, cols, qPos0 + r0 - lo - window + 1);
        for (let i = 0; i < group; i++) {
          const si = sc.subarray(i * rows * cols, (i + 1) * rows * cols);
          be.softmax(si, si, rows, cols, qPos0 + r0 - lo);
        }
        be.gemm({
          m: rows, n: D, k: cols, batch: group,
          a: sc, lda: cols, strideA: rows * cols,
          b: v, bOff: kvOff, ldb: Hkv * D, strideB: 0,
          c: out, cOff: ((b * tq + r0) * H + h0) * D, ldc: H * D, strideC: D,
        });
        if (probs) {
          for (let i = 0; i < group; i++) {
            for (let r = 0; r < rows; r++) {
              const o = ((b * H + h0 + i) * tq + r0 + r) * s;
              const src = (i * rows + r) * cols;
              probs.fill(0, o, o + lo);
              probs.set(sc.subarray(src, src + cols), o + lo);
              probs.fill(0, o + lo + cols, o + s);
            }
          }
        }
      }
    }
  }
}

/**
 * Scores of keys that slid out of a query's window become −∞ (so softmax gives them exactly 0): in each of the
 * `n` rows (`rows` rows per head), row `r` drops its first `first + r` columns.
 */
function maskBeforeWindow(sc: Float32Array, n: number, rows: number, cols: number, first: number): void {
  for (let i = 0; i < n; i++) {
    const drop = Math.min(cols, first + (i % rows));
    if (drop > 0) sc.fill(-Infinity, i * cols, i * cols + drop);
  }
}

/**
 * `out = P · V` for echo layers, by GEMM over row blocks (skipping the causally masked columns). With `heads`, query
 * head `h` reads probability head `heads[h]` (head-aligned sharing) and V head `⌊h / G⌋` of this layer, as always.
 */
export function probsTimesV(be: Backend, p: ProbsTimesVParams, qPos0: number, heads: Int32Array | null = null): void {
  const { probs, v, out, batch, tq, s, nHeads: H, nKvHeads: Hkv, headDim: D } = p;
  if (tq < MIN_ROWS) {
    // Decode and short steps: a head map costs one gather of the few new probability rows.
    be.probsTimesV(heads ? { ...p, probs: gatherHeads(probs, heads, batch, tq * s) } : p);
    return;
  }
  const group = H / Hkv;
  const kvStride = p.kvBatchStride ?? s * Hkv * D;
  for (let b = 0; b < batch; b++) {
    for (let kh = 0; kh < Hkv; kh++) {
      const h0 = kh * group;
      for (let r0 = 0; r0 < tq; r0 += BLOCK) {
        const rows = Math.min(BLOCK, tq - r0);
        const cols = Math.min(s, qPos0 + r0 + rows);
        // Without a head map the group's heads are equally strided in P: one batched GEMM; with one, a GEMM per head.
        const runs = heads ? Array.from({ length: group }, (_, i) => [heads[h0 + i], h0 + i, 1]) : [[h0, h0, group]];
        for (const [src, h, n] of runs) {
          be.gemm({
            m: rows, n: D, k: cols, batch: n,
            a: probs, aOff: ((b * H + src) * tq + r0) * s, lda: s, strideA: tq * s,
            b: v, bOff: b * kvStride + kh * D, ldb: Hkv * D, strideB: 0,
            c: out, cOff: ((b * tq + r0) * H + h) * D, ldc: H * D, strideC: D,
          });
        }
      }
    }
  }
}
