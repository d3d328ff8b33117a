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

for (const name of availableBackends()) {
  test(`GEMM-blocked attention backward and P·V backward match the kernels (${name})`, async () => {
    const { attentionBackward, probsTimesVBackward } = await import('../src/nn/attention-backward.js');
    const be = getBackend(name);
    let seed = 100;
    for (const c of [{ batch: 2, tq: 40, nHeads: 6, nKvHeads: 2, headDim: 8 }, { batch: 1, tq: 33, nHeads: 4, nKvHeads: 4, headDim: 16 }]) {
      const { batch, tq, nHeads, nKvHeads, headDim } = c;
      const shape = { batch, tq, s: tq, nHeads, nKvHeads, headDim };
      const q = randn(batch * tq * nHeads * headDim, seed++, -2, 2);
      const k = randn(batch * tq * nKvHeads * headDim, seed++, -2, 2);
      const v = randn(batch * tq * nKvHeads * headDim, seed++);
      const dout = randn(q.length, seed++);
      const extra = randn(batch * nHeads * tq * tq, seed++);
      const probs = new Float32Array(extra.length);
      be.attention({ ...shape, q, k, v, out: new Float32Array(q.length), probs, qPos0: 0, scale: 0.3 });
      const grads = () => ({ dq: new Float32Array(q.length).fill(NaN), dk: new Float32Array(k.length).fill(NaN), dv: new Float32Array(v.length).fill(NaN) });
      const want = grads();
      be.attentionBackward({ ...shape, q, k, v, probs, dout, ...want, scale: 0.3, dProbsExtra: extra });
      const got = grads();
      attentionBackward(be, { ...shape, q, k, v, probs, dout, ...got, scale: 0.3, dProbsExtra: extra });
      for (const key of ['dq', 'dk', 'dv'] as const) assertClose(got[key], want[key], `attention ${key} ${JSON.stringify(c)}`, 1e-4, 1e-5);
      const wantPv = { dProbs: new Float32Array(probs.length), dv: new Float32Array(v.length).fill(NaN) };
      be.probsTimesVBackward({ ...shape, probs, v, dout, ...wantPv });
      const gotPv = { dProbs: new Float32Array(probs.length).fill(NaN), dv: new Float32Array(v.length).fill(NaN) };
      probsTimesVBackward(be, { ...shape, probs, v, dout, ...gotPv });
      assertClose(gotPv.dProbs, wantPv.dProbs, `P·V dP ${JSON.stringify(c)}`, 1e-4, 1e-5);
      assertClose(gotPv.dv, wantPv.dv, `P·V dv ${JSON.stringify(c)}`, 1e-4, 1e-5);
    }
  });
}
