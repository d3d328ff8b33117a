/**
 * `npm run bench:before-after -- --before ../before` — this checkout against another one of echoatt (e.g. the commit
 * before a refactor: `git worktree add ../before <commit> && (cd ../before && npm ci)`), in ONE process, alternating
 * run by run so a shared machine's drift hits both alike: prefill and decode of stories260K and gutenberg16, and one
 * training step (autograd forward + cross-entropy + backward + clip + AdamW) of a student of each. Reports the fastest
 * run of each side and their ratio, and the median (min–max) of the per-round ratios (> 1: this checkout is faster).
 * Flags: --before DIR (required) --rounds N (20) --train-rounds N (8)
 */
import path from 'node:path';
import os from 'node:os';
import { SHARED_DIR } from '../src/paths.js';

const arg = (n: string, d?: string) => { const i = process.argv.indexOf(`--${n}`); return i >= 0 ? process.argv[i + 1] : d; };
const beforeDir = arg('before');
if (!beforeDir) throw new Error('--before DIR: the other echoatt checkout (with node_modules and its native build)');
const ROUNDS = Number(arg('rounds', '20'));
const TRAIN_ROUNDS = Number(arg('train-rounds', '8'));
const here = path.resolve(import.meta.dirname, '..');
const there = path.resolve(beforeDir);
/** The two checkouts' modules; the older one kept the trainable forward in autograd/model.ts and the plan in sharing/plan.ts. */
async function tree(root: string) {
  const imp = (p: string) => import(path.join(root, p));
  const firstOf = async (...ps: string[]) => { for (const p of ps) { try { return await imp(p); } catch { /* try the next */ } } throw new Error(`${root}: none of ${ps.join(', ')}`); };
  return {
    load: await imp('src/models/load.js'), ag: await imp('src/autograd/index.js'), distill: await imp('src/distill/index.js'),
    student: await imp('src/sharing/student.js'), train: await firstOf('src/models/tape-ops.js', 'src/autograd/model.js'),
    plan: await firstOf('src/models/sharing-plan.js', 'src/sharing/plan.js'),
  };
}
const A = await tree(there);
const B = await tree(here);
const med = (x: number[]) => [...x].sort((p, q) => p - q)[Math.floor(x.length / 2)];
/** Fastest run of each side, and the median (min–max) of the per-round ratios: rounds run both sides back to back. */
const row = (what: string, ta: number[], tb: number[], unit: number) => {
  const r = ta.map((x, i) => x / tb[i]).sort((p, q) => p - q);
  return `| ${what} | ${(unit / Math.min(...ta)).toFixed(1)} | ${(unit / Math.min(...tb)).toFixed(1)} | ${(Math.min(...ta) / Math.min(...tb)).toFixed(3)} | ${med(r).toFixed(3)} (${r[0].toFixed(2)}–${r[r.length - 1].toFixed(2)}) |`;
};

function inference(m: { newCache: (b: number, c: number) => unknown; forward: (ids: Int32Array, o: object) => unknown; config: { vocabSize: number; maxPositions: number } }) {
  const T = Math.min(256, m.config.maxPositions);
  const ids = new Int32Array(T).map((_, i) => 1 + ((i * 7919) % (m.config.vocabSize - 1)));
  return { T, run: () => {
    let c = m.newCache(1, T);
    let t0 = performance.now();
    m.forward(ids, { cache: c, lastOnly: true });
    const prefill = performance.now() - t0;
    c = m.newCache(1, T);
    m.forward(ids.subarray(0, 1), { cache: c, lastOnly: true });
    t0 = performance.now();
    for (let i = 1; i < T; i++) m.forward(ids.subarray(i, i + 1), { cache: c, lastOnly: true });
    return { prefill, decode: performance.now() - t0 };
  } };
}

function trainStep(t: Awaited<ReturnType<typeof tree>>, model: string, T: number, groups: object[]) {
  const m = t.student.buildStudent(t.load.loadModel(model).model, t.plan.makePlan('m', groups));
  const p = t.train.modelParams(m);
  for (const x of p.list) x.data = x.data.slice(); // its own arrays, so the two sides never share weights
  const trainable = t.distill.selectTrainable(m, p, 'all', false);
  const opt = new t.distill.AdamW(trainable);
  const V = m.config.vocabSize;
  const n = T * 8;
  const ids = new Int32Array(n).map((_, i) => 1 + ((i * 7919) % (V - 1)));
  const targets = new Int32Array(n).map((_, i) => ids[(i + 1) % n]);
  return () => {
    const tape = new t.ag.Tape(m.backend);
    const { logits } = t.train.forwardTrain(m, p, ids, { batch: 8, tape });
    tape.backward(t.ag.apply(tape, t.ag.OPS.crossEntropy, { logits, targets, rows: n, cols: V }));
    t.distill.clipGradNorm(trainable, 1);
    opt.step(1e-6);
    opt.zeroGrad();
  };
}

const { getBackend, simdLevel } = await import(path.join(here, 'src/backend/index.js'));
const hereBe = getBackend();
const out = [`${os.cpus()[0]?.model ?? 'cpu'}, SIMD ${simdLevel(hereBe)}, ${hereBe.threads} thread(s); before = ${there}, after = ${here}; ${ROUNDS} alternating rounds (training: ${TRAIN_ROUNDS})`, '',
  '| measurement | before (tok/s, fastest) | after (tok/s, fastest) | after / before, fastest | after / before, median of rounds (min–max) |', '|---|---:|---:|---:|---:|'];
for (const name of ['stories260K/stories260K.bin', 'gutenberg16/model.bin']) {
  const file = path.join(SHARED_DIR, 'models', name);
  const a = inference(A.load.loadModel(file).model);
  const b = inference(B.load.loadModel(file).model);
  for (let i = 0; i < 3; i++) { a.run(); b.run(); }
  const ra = { prefill: [] as number[], decode: [] as number[] };
  const rb = { prefill: [] as number[], decode: [] as number[] };
  for (let i = 0; i < ROUNDS; i++) {
    // Which side goes first alternates, so neither always runs after the other's thread pool went idle.
    const [x, y] = i % 2 ? (() => { const q = b.run(); return [a.run(), q]; })() : [a.run(), b.run()];
    ra.prefill.push(x.prefill); ra.decode.push(x.decode); rb.prefill.push(y.prefill); rb.decode.push(y.decode);
  }
  const label = name.split('/')[0];
  out.push(row(`${label} prefill T=${a.T}`, ra.prefill, rb.prefill, a.T * 1000), row(`${label} decode ${a.T - 1} tokens`, ra.decode, rb.decode, (a.T - 1) * 1000));
}
for (const [name, T, groups] of [['stories260K/stories260K.bin', 256, [{ anchor: 1, shared: [2, 3] }]], ['gutenberg16/model.bin', 128, [{ anchor: 1, shared: [2, 3] }, { anchor: 4, shared: [5, 6] }]]] as const) {
  const file = path.join(SHARED_DIR, 'models', name);
  const a = trainStep(A, file, T, [...groups]);
  const b = trainStep(B, file, T, [...groups]);
  a(); b();
  const ta: number[] = [];
  const tb: number[] = [];
  for (let i = 0; i < TRAIN_ROUNDS; i++) {
    const time = (f: () => void) => { const t0 = performance.now(); f(); return performance.now() - t0; };
    if (i % 2) { tb.push(time(b)); ta.push(time(a)); } else { ta.push(time(a)); tb.push(time(b)); }
  }
  out.push(row(`${name.split('/')[0]} student training step, 8×${T} tokens`, ta, tb, 8 * T * 1000));
}
process.stdout.write(`${out.join('\n')}\n`);
