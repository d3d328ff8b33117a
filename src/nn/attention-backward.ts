/**
 * Training-time attention backward through GEMM. For many query rows the backend's row-at-a-time backward kernels
 * run far below GEMM speed; here each (sequence, head) is four GEMMs over its `T × S` probabilities:
 *
 *     dV_g += Pᵀ · dO      dP = dO · V_gᵀ (+ dP from layers that echoed P)
 *     dS = softmax′(P, dP)  dQ = scale · dS · K_g      dK_g += scale · dSᵀ · Q
 *
 * (`g` the head's K/V group, accumulated over the group's query heads). Short sequences use the kernels as they are.
 * Same semantics as `Backend.attentionBackward` / `Backend.probsTimesVBackward` (tests hold them equal): outputs are
 * overwritten, K/V dense `(B, S, Hkv, D)`.
 */
import type { AttentionBackwardParams, Backend, ProbsTimesVBackwardParams } from '../backend/backend.js';

/** Query rows below this use the backend's kernels directly. */
const MIN_ROWS = 32;

/** `dV += Pᵀ·dO` and `dP = dO·Vᵀ` of one (sequence, head) into `dP` at `dpOff` (row stride S). */
function pvBackwardHead(be: Backend, p: ProbsTimesVBackwardParams, b: number, h: number, dP: Float32Array, dpOff: number): void {
  const { probs, v, dout, dv, tq: T, s: S, nHeads: H, nKvHeads: Hkv, headDim: D } = p;
  const kvOff = b * S * Hkv * D + Math.floor(h / (H / Hkv)) * D;
  const oOff = (b * T * H + h) * D;
  const pOff = (b * H + h) * T * S;
  be.gemm({ m: S, n: D, k: T, transA: true, a: probs, aOff: pOff, lda: S, b: dout, bOff: oOff, ldb: H * D, c: dv, cOff: kvOff, ldc: Hkv * D, beta: 1 });
  be.gemm({ m: T, n: S, k: D, transB: true, a: dout, aOff: oOff, lda: H * D, b: v, bOff: kvOff, ldb: Hkv * D, c: dP, cOff: dpOff, ldc: S });
}

/** Backward of `out = P · V`: writes `dProbs` and `dv`. */
export function probsTimesVBackward(be: Backend, p: ProbsTimesVBackwardParams): void {
  if (p.tq < MIN_ROWS) {
    be.probsTimesVBackward(p);
    return;
  }
  p.dv.fill(0, 0, p.batch * p.s * p.nKvHeads * p.headDim);
  for (let b = 0; b < p.batch; b++) {
    for (let h = 0; h < p.nHeads; h++) pvBackwardHead(be, p, b, h, p.dProbs, (b * p.nHeads + h) * p.tq * p.s);
  }
}

/** Backward of causal softmax attention: writes `dq`, `dk`, `dv` (adding `dProbsExtra` to the probabilities' gradient). */
export function attentionBackward(be: Backend, p: AttentionBackwardParams): void {
  const { q, k, probs, dq, dk, batch, tq: T, s: S, nHeads: H, nKvHeads: Hkv, headDim: D, scale } = p;
  if (T < MIN_ROWS) {
    be.attentionBackward(p);
    return;
  }
  const dP = new Float32Array(T * S); // one head's scratch
  const dS = new Float32Array(T * S);
  p.dv.fill(0, 0, batch * S * Hkv * D);
  dk.fill(0, 0, batch * S * Hkv * D);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < H; h++) {
      const pOff = (b * H + h) * T * S;
      const kvOff = b * S * Hkv * D + Math.floor(h / (H / Hkv)) * D;
      const qOff = (b * T * H + h) * D;
      pvBackwardHead(be, { ...p, dProbs: dP }, b, h, dP, 0);
      if (p.dProbsExtra) be.add(dP, p.dProbsExtra.subarray(pOff, pOff + T * S), dP, T * S);
      be.softmaxBackward(probs.subarray(pOff, pOff + T * S), dP, dS, T, S);
      be.gemm({ m: T, n: D, k: S, alpha: scale, a: dS, lda: S, b: k, bOff: kvOff, ldb: Hkv * D, c: dq, cOff: qOff, ldc: H * D });
      be.gemm({ m: S, n: D, k: T, transA: true, alpha: scale, a: dS, lda: S, b: q, bOff: qOff, ldb: H * D, c: dk, cOff: kvOff, ldc: Hkv * D, beta: 1 });
    }
  }
}
