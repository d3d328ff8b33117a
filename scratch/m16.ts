import { loadModel } from '../src/models/load.js';
const m = loadModel('bench/.cache/serve/tinyllama-22L-f16', { weights: 'as-stored' }).model;
const cache = m.newSlotCache(16, 256);
const slots = Int32Array.from({ length: 16 }, () => cache.acquire()!);
for (const s of slots) { m.forward(Int32Array.of(1, 2, 3, 4), { cache: cache.view(s), lastOnly: true }); cache.commit(s, 4); }
const ids = Int32Array.from({ length: 16 }, (_, i) => 5 + i);
for (let r = 0; r < 3; r++) {
  let t0 = performance.now(); m.decodeSlots(ids, slots, cache); const a = performance.now() - t0;
  const c = m.newCache(1, 64);
  t0 = performance.now(); m.forward(Int32Array.from({ length: 16 }, (_, i) => 5 + i), { cache: c, lastOnly: true }); const b = performance.now() - t0;
  t0 = performance.now(); m.decodeSlots(ids.subarray(0, 1), slots.subarray(0, 1), cache); const d = performance.now() - t0;
  console.log(`decodeSlots 16 rows ${a.toFixed(0)} ms; prefill T=16 (lastOnly) ${b.toFixed(0)} ms; decodeSlots 1 row ${d.toFixed(0)} ms`);
}
