/**
 * `npm run bench:attention` — decode-step attention at TinyLlama-1.1B shape (32 query heads, 4 KV heads, head dim 64)
 * over a KV cache of 512 and 2048 keys, 22 layers (each its own K/V buffers, as in a real cache), 1 and 2 threads:
 * fused attention (scores, softmax, P·V; with and without the probabilities a shared-attention anchor hands on) and
 * P·V alone (a shared layer). Milliseconds per decoded token for all 22 layers, best of 20.
 */
import { getBackend } from '../src/backend/index.js';

const be = getBackend();
const [H, Hkv, D, L, CAP] = [32, 4, 64, 22, 2048];
let seed = 1;
const rand = (n: number) => Float32Array.from({ length: n }, () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32) - 0.5);
const ks = Array.from({ length: L }, () => rand(CAP * Hkv * D));
const vs = Array.from({ length: L }, () => rand(CAP * Hkv * D));
const q = rand(H * D);
const out = new Float32Array(H * D);
const best = (fn: () => void) => {
  let b = Infinity;
  for (let r = 0; r < 20; r++) {
    const t0 = performance.now();
    fn();
    b = Math.min(b, performance.now() - t0);
  }
  return b;
};
console.log(`backend ${be.name}; ${L} layers, ${H} query heads, ${Hkv} KV heads, head dim ${D}; ms per decoded token\n`);
console.log('| threads | keys | attention | attention + probs | P·V only |');
console.log('|---:|---:|---:|---:|---:|');
for (const threads of [1, 2]) {
  be.setThreads(threads);
  for (const s of [512, 2048]) {
    const probs = new Float32Array(H * s);
    const base = { q, out, batch: 1, tq: 1, s, nHeads: H, nKvHeads: Hkv, headDim: D, qPos0: s - 1, scale: 1 / Math.sqrt(D), kvBatchStride: CAP * Hkv * D };
    const att = best(() => { for (let l = 0; l < L; l++) be.attention({ ...base, k: ks[l], v: vs[l] }); });
    const attP = best(() => { for (let l = 0; l < L; l++) be.attention({ ...base, k: ks[l], v: vs[l], probs }); });
    const pv = best(() => { for (let l = 0; l < L; l++) be.probsTimesV({ probs, v: vs[l], out, batch: 1, tq: 1, s, nHeads: H, nKvHeads: Hkv, headDim: D, kvBatchStride: CAP * Hkv * D }); });
    console.log(`| ${threads} | ${s} | ${att.toFixed(2)} | ${attP.toFixed(2)} | ${pv.toFixed(2)} |`);
  }
}
