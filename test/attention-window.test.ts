/**
 * Sliding-window attention (Gemma 3's local layers): `AttentionParams.window` W > 0 lets query position p see keys
 * `max(0, p − W + 1) ..= p` only. Every backend against the reference (prefill, chunked prefill, decode with a cache
 * stride, GQA, narrow and wide heads, probs on and off), keys outside the window skipped rather than masked, a window
 * wider than the context changing nothing, and the backward (which works from probs) against finite differences.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { availableBackends, getBackend } from '../src/backend/index.js';
import { ReferenceBackend } from '../src/backend/reference.js';
import type { AttentionParams, Backend } from '../src/backend/backend.js';
import { assertClose, finiteDifference, randn } from './helpers.js';

const ref = new ReferenceBackend();

type Case = { batch: number; tq: number; s: number; nHeads: number; nKvHeads: number; headDim: number; qPos0: number; cap: number; window: number };

function params(c: Case, seed: number): AttentionParams {
  const { batch, tq, nHeads, nKvHeads, headDim, cap } = c;
  return {
    ...c,
    q: randn(batch * tq * nHeads * headDim, seed, -2, 2),
    k: randn(batch * cap * nKvHeads * headDim, seed + 1, -2, 2),
    v: randn(batch * cap * nKvHeads * headDim, seed + 2),
    out: new Float32Array(batch * tq * nHeads * headDim),
    scale: 1 / Math.sqrt(headDim),
    kvBatchStride: cap * nKvHeads * headDim,
  };
}

const CASES: Case[] = [
  { batch: 1, tq: 9, s: 9, nHeads: 2, nKvHeads: 1, headDim: 8, qPos0: 0, cap: 9, window: 1 },
  { batch: 2, tq: 40, s: 40, nHeads: 4, nKvHeads: 2, headDim: 16, qPos0: 0, cap: 40, window: 5 },
  { batch: 1, tq: 70, s: 70, nHeads: 8, nKvHeads: 2, headDim: 64, qPos0: 0, cap: 80, window: 17 },
  { batch: 1, tq: 6, s: 50, nHeads: 4, nKvHeads: 4, headDim: 40, qPos0: 44, cap: 60, window: 16 }, // chunked prefill
  { batch: 2, tq: 1, s: 300, nHeads: 16, nKvHeads: 2, headDim: 128, qPos0: 299, cap: 300, window: 33 }, // decode
  { batch: 1, tq: 1, s: 20, nHeads: 2, nKvHeads: 1, headDim: 32, qPos0: 19, cap: 64, window: 100 }, // wider than context
  { batch: 1, tq: 3, s: 4, nHeads: 1, nKvHeads: 1, headDim: 8, qPos0: 8, cap: 4, window: 3 }, // rows with no visible key
];

/** Visible keys of query row t: [first, last]. */
function visible(c: Case, t: number): [number, number] {
  const p = c.qPos0 + t;
  return [c.window > 0 ? Math.max(0, p - c.window + 1) : 0, Math.min(p, c.s - 1)];
}

describe('reference: sliding-window attention by hand', () => {
  test('equal keys average the values inside the window; probabilities outside are exactly 0', () => {
    const d = 2;
    const q = randn(4 * d, 1);
    const k = new Float32Array(4 * d).fill(1);
    const v = Float32Array.of(1, 10, 2, 20, 3, 30, 4, 40);
    const out = new Float32Array(4 * d);
    const probs = new Float32Array(16);
    ref.attention({ q, k, v, out, probs, batch: 1, tq: 4, s: 4, nHeads: 1, nKvHeads: 1, headDim: d, qPos0: 0, scale: 1, window: 2 });
    assertClose(out, [1, 10, 1.5, 15, 2.5, 25, 3.5, 35], 'out');
    assert.deepEqual([...probs], [1, 0, 0, 0, 0.5, 0.5, 0, 0, 0, 0.5, 0.5, 0, 0, 0, 0.5, 0.5]);
  });
});

for (const name of availableBackends()) {
  const be: Backend = getBackend(name);
  describe(`backend ${name}: sliding-window attention`, () => {
    test('against the reference: prefill, chunked prefill, decode, GQA, probs on and off, several thread counts', () => {
      const saved = be.threads;
      let seed = 1;
      for (const c of CASES) {
        for (const threads of [saved, 7]) {
          be.setThreads(threads);
          const p = params(c, seed);
          seed += 3;
          const pE = new Float32Array(c.batch * c.nHeads * c.tq * c.s);
          const oE = new Float32Array(p.out.length);
          ref.attention({ ...p, out: oE, probs: pE });
          be.attention(p);
          assertClose(p.out, oE, `out ${JSON.stringify(c)}`, 1e-4, 1e-5);
          const pG = new Float32Array(pE.length).fill(NaN);
          be.attention({ ...p, probs: pG });
          assertClose(pG, pE, `probs ${JSON.stringify(c)}`, 1e-4, 1e-6);
          for (let r = 0; r < c.batch * c.nHeads * c.tq; r++) {
            const [first, last] = visible(c, r % c.tq);
            for (let j = 0; j < c.s; j++) if (j < first || j > last) assert.equal(pG[r * c.s + j], 0, `probs outside the window, row ${r} key ${j}`);
          }
        }
      }
      be.setThreads(saved);
    });

    test('keys outside the window are never read (NaN there leaves the output finite)', () => {
      for (const c of CASES.slice(0, 5)) {
        const p = params(c, 50);
        const expected = new Float32Array(p.out.length);
        ref.attention({ ...p, out: expected });
        const row = c.nKvHeads * c.headDim;
        // Poison every cache row no query row can see: before the first visible key of row 0, past s.
        const [first0] = visible(c, 0);
        for (let b = 0; b < c.batch; b++) {
          for (let j = 0; j < c.cap; j++) {
            if (j >= first0 && j < c.s) continue;
            p.k.fill(NaN, b * c.cap * row + j * row, b * c.cap * row + (j + 1) * row);
            p.v.fill(NaN, b * c.cap * row + j * row, b * c.cap * row + (j + 1) * row);
          }
        }
        be.attention(p);
        assertClose(p.out, expected, `out with poisoned keys ${JSON.stringify(c)}`, 1e-4, 1e-5);
      }
    });

    test('a window as wide as the context gives the bits of no window', () => {
      for (const c of CASES.slice(1, 5)) {
        const p = params(c, 70);
        const a = new Float32Array(p.out.length);
        const b = new Float32Array(p.out.length);
        be.attention({ ...p, out: a, window: 0 });
        be.attention({ ...p, out: b, window: c.qPos0 + c.tq });
        assert.deepEqual(new Uint32Array(b.buffer), new Uint32Array(a.buffer), JSON.stringify(c));
      }
    });

    test('attentionBackward from windowed probabilities against the reference', () => {
      const c = { batch: 2, tq: 20, s: 20, nHeads: 4, nKvHeads: 2, headDim: 16, qPos0: 0, window: 6 };
      const p = params({ ...c, cap: c.s }, 90);
      const probs = new Float32Array(c.batch * c.nHeads * c.tq * c.s);
      ref.attention({ ...p, probs });
      const dout = randn(p.q.length, 5);
      const mk = () => ({ dq: new Float32Array(p.q.length), dk: new Float32Array(p.k.length), dv: new Float32Array(p.v.length) });
      const [e, g] = [mk(), mk()];
      ref.attentionBackward({ ...c, q: p.q, k: p.k, v: p.v, probs, dout, scale: p.scale, ...e });
      be.attentionBackward({ ...c, q: p.q, k: p.k, v: p.v, probs, dout, scale: p.scale, ...g });
      assertClose(g.dq, e.dq, 'dq', 1e-4, 1e-5);
      assertClose(g.dk, e.dk, 'dk', 1e-4, 1e-5);
      assertClose(g.dv, e.dv, 'dv', 1e-4, 1e-5);
    });
  });
}

test('reference attentionBackward from windowed probs matches finite differences of the windowed forward', () => {
  const c = { batch: 1, tq: 6, s: 6, nHeads: 2, nKvHeads: 1, headDim: 3, qPos0: 0, scale: 0.7, window: 3 };
  const q = randn(c.tq * c.nHeads * c.headDim, 1);
  const k = randn(c.s * c.headDim, 2);
  const v = randn(c.s * c.headDim, 3);
  const r = randn(q.length, 4);
  const fwd = (qq: Float32Array, kk: Float32Array, vv: Float32Array) => {
    const out = new Float32Array(q.length);
    ref.attention({ ...c, q: qq, k: kk, v: vv, out });
    return out;
  };
  const fd = (f: (x: Float32Array) => Float32Array, x: Float32Array) => finiteDifference(f, x, r);
  const probs = new Float32Array(c.nHeads * c.tq * c.s);
  ref.attention({ ...c, q, k, v, out: new Float32Array(q.length), probs });
  const grads = { dq: new Float32Array(q.length), dk: new Float32Array(k.length), dv: new Float32Array(v.length) };
  ref.attentionBackward({ ...c, q, k, v, probs, dout: r, ...grads });
  assertClose(grads.dq, fd((x) => fwd(x, k, v), q), 'dq', 1e-2, 2e-3);
  assertClose(grads.dk, fd((x) => fwd(q, x, v), k), 'dk', 1e-2, 2e-3);
  assertClose(grads.dv, fd((x) => fwd(q, k, x), v), 'dv', 1e-2, 2e-3);
});
