import { getBackend } from '../src/backend/index.js';
import { attention, probsTimesV } from '../src/nn/attention.js';
const be = getBackend();
const H = 32, Hkv = 4, D = 64, tq = 512, s = 2048;
const q = new Float32Array(tq * H * D).map(() => Math.random() - 0.5);
const k = new Float32Array(s * Hkv * D).map(() => Math.random() - 0.5);
const v = new Float32Array(s * Hkv * D).map(() => Math.random() - 0.5);
const out = new Float32Array(tq * H * D);
const probs = new Float32Array(H * tq * s);
const p = { q, k, v, out, batch: 1, tq, s, nHeads: H, nKvHeads: Hkv, headDim: D, qPos0: s - tq, scale: 0.125 };
for (let r = 0; r < 3; r++) {
  let t0 = performance.now(); attention(be, p); const a = performance.now() - t0;
  t0 = performance.now(); attention(be, { ...p, probs }); const b = performance.now() - t0;
  t0 = performance.now(); probsTimesV(be, { probs, v, out, batch: 1, tq, s, nHeads: H, nKvHeads: Hkv, headDim: D }, s - tq); const c = performance.now() - t0;
  console.log(`attention ${a.toFixed(1)} ms; attention+probs ${b.toFixed(1)} ms; probs·V ${c.toFixed(1)} ms`);
}
