/**
 * `npm run bench:batch-decode` — continuous batching's decode step (`LlamaModel.decodeSlots`): aggregate decode tok/s
 * of B sequences decoding together (each at its own length: sequence b starts from a 32 + 4b-token prompt) against the same B
 * sequences decoded one at a time, for the teacher and a distillation-free 8/16 student of gutenberg16 and for
 * stories260K. Median (min–max) of 7 alternating rounds. Also: how many 256-token sequences each model's slot cache
 * fits in 64 MiB.
 * Flags: --rounds N (7) --steps N (96 decode steps per run)
 */
import os from 'node:os';
import path from 'node:path';
import { loadModel } from '../src/models/load.js';
import { makePlan } from '../src/models/sharing-plan.js';
import { withPlan } from '../src/models/surgery.js';
import { getBackend, simdLevel } from '../src/backend/index.js';
import { SHARED_DIR } from '../src/paths.js';
import type { LlamaModel } from '../src/models/llama.js';

const arg = (n: string, d: string) => { const i = process.argv.indexOf(`--${n}`); return Number(i >= 0 ? process.argv[i + 1] : d); };
const ROUNDS = arg('rounds', '7');
const STEPS = arg('steps', '96');
const be = getBackend();
const g16 = loadModel(path.join(SHARED_DIR, 'models/gutenberg16/model.bin'), { backend: be }).model;
const models: [string, LlamaModel][] = [
  ['stories260K', loadModel(path.join(SHARED_DIR, 'models/stories260K/stories260K.bin'), { backend: be }).model],
  ['gutenberg16 teacher', g16],
  ['gutenberg16 student 8/16', withPlan(g16, makePlan('bench', [{ anchor: 0, shared: [1, 2, 3, 5, 6] }, { anchor: 4, shared: [11] }, { anchor: 9, shared: [12] }, { anchor: 13, shared: [15] }]))],
];

/** ms for `STEPS` decode steps of B sequences: together (one decodeSlots call per step) or one after another. */
function run(m: LlamaModel, B: number, together: boolean): number {
  const cache = m.newSlotCache(B, 256);
  const slots = Int32Array.from({ length: B }, () => cache.acquire()!);
  for (let b = 0; b < B; b++) {
    const prompt = Int32Array.from({ length: 32 + 4 * b }, (_, i) => 1 + ((i * 7919 + b) % (m.config.vocabSize - 1)));
    m.forward(prompt, { cache: cache.view(slots[b]), lastOnly: true });
    cache.commit(slots[b], prompt.length);
  }
  const ids = Int32Array.from({ length: B }, (_, b) => 1 + b);
  const t0 = performance.now();
  for (let s = 0; s < STEPS; s++) {
    if (together) m.decodeSlots(ids, slots, cache);
    else for (let b = 0; b < B; b++) m.decodeSlots(ids.subarray(b, b + 1), slots.subarray(b, b + 1), cache);
  }
  return performance.now() - t0;
}

const med = (x: number[]) => [...x].sort((a, b) => a - b)[x.length >> 1];
const range = (x: number[]) => `${Math.min(...x).toFixed(2)}–${Math.max(...x).toFixed(2)}`;
const out = [`${os.cpus()[0]?.model ?? 'cpu'}, SIMD ${simdLevel(be)}, ${be.threads} thread(s); ${STEPS} decode steps per run, median (min–max) of ${ROUNDS} alternating rounds (at 1 sequence both ways are the same call: that row shows the noise)`, '',
  '| model | sequences | one at a time, tok/s | together, tok/s | together / one at a time |', '|---|---:|---:|---:|---:|'];
for (const [name, m] of models) {
  run(m, 4, true); // warm-up
  for (const B of [1, 4, 16]) {
    const single: number[] = [];
    const batched: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      // Which way goes first alternates; at B = 1 both ways are the same call, so that row shows the noise.
      if (r % 2) { batched.push(run(m, B, true)); single.push(run(m, B, false)); } else { single.push(run(m, B, false)); batched.push(run(m, B, true)); }
    }
    const ratios = single.map((s, i) => s / batched[i]);
    const tps = (ms: number) => ((B * STEPS * 1000) / ms).toFixed(0);
    out.push(`| ${name} | ${B} | ${tps(med(single))} | ${tps(med(batched))} | ${med(ratios).toFixed(2)}× (${range(ratios)}) |`);
  }
}
out.push('', '| model | KV bytes / token | 256-token sequences in 64 MiB |', '|---|---:|---:|');
for (const [name, m] of models) {
  const perToken = m.newSlotCache(1, 1).bytesPerToken();
  out.push(`| ${name} | ${perToken} | ${Math.floor((64 << 20) / (perToken * 256))} |`);
}
process.stdout.write(`${out.join('\n')}\n`);
