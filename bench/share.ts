/**
 * `npm run bench:share` — a TinyLlama-1.1B-shaped teacher (random f32 weights, 22 layers) against a shared-attention
 * student that shares 9 of its 22 inner layers, measured side by side in one run: prefill tokens/s at T = 512 and
 * 2048 (through a KV cache, long prompts in query chunks, as generation prefills), decode tokens/s at context 2048,
 * peak RSS and KV-cache bytes. Each model runs in its own child process so peak
 * memory is its own. Options: `--threads N`, `--decode-steps N`, `--layers N` (shrink for a quick look),
 * `--prefill 512,2048`.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import { getBackend, simdLevel } from '../src/backend/index.js';
import { LlamaModel } from '../src/models/llama.js';
import { randomLlamaWeights, tinyLlamaConfig } from '../src/models/random.js';
import { makePlan, type SharingPlan } from '../src/models/sharing-plan.js';
import { buildStudent } from '../src/sharing/student.js';
import { sharingCost } from '../src/sharing/cost.js';
import { peakRssGiB, tokens } from './common.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
}

const layers = Number(arg('layers', '22'));
const decodeSteps = Number(arg('decode-steps', '16'));
const prefills = arg('prefill', '512,2048').split(',').map(Number);
const maxT = Math.max(...prefills);

/** 9 of 22 inner layers in three groups, each reusing the layer just before it; scaled for --layers. */
function benchPlan(L: number): SharingPlan {
  if (L === 22) {
    return makePlan('manual', [
      { anchor: 4, shared: [5, 6, 7] },
      { anchor: 9, shared: [10, 11, 12] },
      { anchor: 14, shared: [15, 16, 17] },
    ]);
  }
  const mid = Math.floor(L / 2);
  return makePlan('manual', [{ anchor: mid - 1, shared: [mid] }]);
}

interface ChildResult {
  which: string;
  params: number;
  prefill: { t: number; tokPerS: number }[];
  decodeTokPerS: number;
  kvBytesPerToken: number;
  kvBytesAtMax: number;
  peakRssGiB: number;
}



function child(which: 'teacher' | 'student'): void {
  const be = getBackend();
  if (process.argv.includes('--threads')) be.setThreads(Number(arg('threads', '2')));
  const cfg = tinyLlamaConfig(layers);
  // Built in a nested call so the teacher's dropped q/k arrays are unreachable once the student exists.
  const build = () => {
    const teacher = LlamaModel.fromWeights(cfg, randomLlamaWeights(cfg, { seed: 11 }), be);
    return which === 'teacher' ? teacher : buildStudent(teacher, benchPlan(layers));
  };
  const model = build();
  const prefill: ChildResult['prefill'] = [];
  model.forward(tokens(16, cfg.vocabSize, 1), { lastOnly: true }); // warm-up
  let decodeTokPerS = 0;
  let kvBytesAtMax = 0;
  for (const t of prefills) {
    const ids = tokens(t, cfg.vocabSize, t);
    // A prefill as generation runs it: into a KV cache, long steps in query chunks (ForwardOptions.chunk, 512).
    const t0 = performance.now();
    model.forward(ids, { lastOnly: true, cache: model.newCache(1, t) });
    prefill.push({ t, tokPerS: (t * 1000) / (performance.now() - t0) });
  }
  {
    // Decode the last `decodeSteps` positions before context maxT (positions stop at the model's 2048).
    const p0 = maxT - decodeSteps;
    const ids = tokens(maxT, cfg.vocabSize, 5);
    const cache = model.newCache(1, maxT);
    for (let i = 0; i < p0; i += 512) model.forward(ids.subarray(i, Math.min(p0, i + 512)), { cache, lastOnly: true });
    const t1 = performance.now();
    for (let i = p0; i < maxT; i++) model.forward(ids.subarray(i, i + 1), { cache, lastOnly: true });
    decodeTokPerS = (decodeSteps * 1000) / (performance.now() - t1);
    kvBytesAtMax = cache.bytesPerToken() * cache.length;
  }
  const res: ChildResult = {
    which,
    params: model.parameterCount(),
    prefill,
    decodeTokPerS,
    kvBytesPerToken: model.newCache(1, 1).bytesPerToken(),
    kvBytesAtMax,
    peakRssGiB: peakRssGiB(),
  };
  process.stdout.write(`RESULT ${JSON.stringify(res)}\n`);
}

function run(which: string): ChildResult {
  const args = ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', which, ...process.argv.slice(2)];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 });
  const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  if (r.status !== 0 || !line) throw new Error(`${which} run failed (status ${r.status}):\n${r.stdout}`);
  return JSON.parse(line.slice(7)) as ChildResult;
}

const childIdx = process.argv.indexOf('--child');
if (childIdx >= 0) {
  child(process.argv[childIdx + 1] as 'teacher' | 'student');
} else {
  const be = getBackend();
  const cfg = tinyLlamaConfig(layers);
  const plan = benchPlan(layers);
  const cost = sharingCost(cfg, plan, maxT);
  console.log(`${os.cpus()[0]?.model ?? 'cpu'}, SIMD ${simdLevel(be)}; TinyLlama-1.1B shape, ${layers} layers, random f32 weights; backend ${be.name}, ${arg('threads', String(be.threads))} thread(s)`);
  console.log(`student shares layers ${cost.sharedLayers.join(', ')} (${cost.sharedLayers.length} of ${layers})`);
  const t = run('teacher');
  const s = run('student');
  const ratio = (a: number, b: number) => (b ? (a / b).toFixed(3) : 'n/a');
  console.log('');
  console.log('| measurement | teacher | student | student / teacher |');
  console.log('|---|---:|---:|---:|');
  for (let i = 0; i < t.prefill.length; i++) {
    console.log(`| prefill tok/s @T=${t.prefill[i].t} | ${t.prefill[i].tokPerS.toFixed(1)} | ${s.prefill[i].tokPerS.toFixed(1)} | ${ratio(s.prefill[i].tokPerS, t.prefill[i].tokPerS)} |`);
  }
  console.log(`| decode tok/s @ctx ${maxT} | ${t.decodeTokPerS.toFixed(2)} | ${s.decodeTokPerS.toFixed(2)} | ${ratio(s.decodeTokPerS, t.decodeTokPerS)} |`);
  console.log(`| parameters | ${t.params} | ${s.params} | ${ratio(s.params, t.params)} |`);
  console.log(`| KV bytes/token | ${t.kvBytesPerToken} | ${s.kvBytesPerToken} | ${ratio(s.kvBytesPerToken, t.kvBytesPerToken)} |`);
  console.log(`| KV bytes @${maxT} tokens | ${t.kvBytesAtMax} | ${s.kvBytesAtMax} | ${ratio(s.kvBytesAtMax, t.kvBytesAtMax)} |`);
  console.log(`| peak RSS GiB | ${t.peakRssGiB.toFixed(2)} | ${s.peakRssGiB.toFixed(2)} | ${ratio(s.peakRssGiB, t.peakRssGiB)} |`);
}
