/** GEMM-blocked prefill attention equals the backend's attention kernels, on every backend. */
import { test } from 'node:test';
import { availableBackends, getBackend } from '../src/backend/index.js';
import { attention, probsTimesV } from '../src/nn/attention.js';
import { assertClose, randn } from './helpers.js';

for (const name of availableBackends()) {
  test(`blocked attention and P·V match the kernels (${name})`, () => {
    const be = getBackend(name);
    const cases = [
      { batch: 1, tq: 32, s: 32, nHeads: 4, nKvHeads: 2, headDim: 8, qPos0: 0, cap: 32 },
      { batch: 2, tq: 129, s: 129, nHeads: 6, nKvHeads: 2, headDim: 16, qPos0: 0, cap: 140 },
      { batch: 1, tq: 300, s: 310, nHeads: 2, nKvHeads: 1, headDim: 32, qPos0: 10, cap: 320 },
      { batch: 1, tq: 8, s: 20, nHeads: 2, nKvHeads: 2, headDim: 8, qPos0: 12, cap: 20 },
    ];
    let seed = 1;
    for (const c of cases) {
      const { batch, tq, s, nHeads, nKvHeads, headDim, cap } = c;
      const q = randn(batch * tq * nHeads * headDim, seed++, -2, 2);
      const k = randn(batch * cap * nKvHeads * headDim, seed++, -2, 2);
      const v = randn(batch * cap * nKvHeads * headDim, seed++);
      const p = { ...c, q, k, v, scale: 1 / Math.sqrt(headDim), kvBatchStride: cap * nKvHeads * headDim };
      const oE = new Float32Array(q.length);
      const pE = new Float32Array(batch * nHeads * tq * s);
      be.attention({ ...p, out: oE, probs: pE });
      const oG = new Float32Array(q.length);
      const pG = new Float32Array(pE.length).fill(NaN);
      attention(be, { ...p, out: oG, probs: pG });
      assertClose(oG, oE, `out ${JSON.stringify(c)}`, 1e-4, 1e-5);
      assertClose(pG, pE, `probs ${JSON.stringify(c)}`, 1e-4, 1e-6);
      const oN = new Float32Array(q.length);
      attention(be, { ...p, out: oN });
      assertClose(oN, oE, `out without probs ${JSON.stringify(c)}`, 1e-4, 1e-5);
      const oP = new Float32Array(q.length);
      probsTimesV(be, { ...p, probs: pE, out: oP }, c.qPos0);
      assertClose(oP, oE, `P·V ${JSON.stringify(c)}`, 1e-4, 1e-5);
    }
  });
}
