import { getBackend } from '../src/backend/index.js';
import { attention } from '../src/nn/attention.js';
for (const name of ['native', 'reference'] as const) {
  const be = getBackend(name);
  for (const tq of [1, 3, 40]) {
    const H = 4, Hkv = 2, D = 8, s = 50;
    const q = new Float32Array(tq * H * D).map(() => Math.random() - 0.5);
    const k = new Float32Array(s * Hkv * D).map(() => Math.random() - 0.5);
    const v = new Float32Array(s * Hkv * D).map(() => Math.random() - 0.5);
    const out = new Float32Array(tq * H * D);
    const probs = new Float32Array(H * tq * s).fill(NaN);
    attention(be, { q, k, v, out, probs, batch: 1, tq, s, nHeads: H, nKvHeads: Hkv, headDim: D, qPos0: s - tq, scale: 0.3 });
    console.log(name, tq, 'NaN left:', probs.filter((x) => Number.isNaN(x)).length);
  }
}
