/**
 * `npm run bench:share` — a TinyLlama-1.1B-shaped teacher (random f32 weights, 22 layers, positions stretched to 4096
 * + the decode window) against a shared-attention student that shares 9 of its 22 layers. For each context T
 * (default 512, 2048, 4096): prefill T tokens through a KV cache (long prompts in query chunks, as generation
 * prefills), then decode `--decode-steps` tokens after them (decode @T). Each model runs in its own child process so
 * peak RSS is its own; `--rounds` rounds (default 5) alternate which model runs first, every cell is the median
 * (min–max) over rounds and every ratio the median (min–max) of per-round ratios.
 * Options: `--threads N`, `--decode-steps N`, `--layers N` (shrink for a quick look), `--contexts 512,2048,4096`, `--rounds N`.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { getBackend, simdLevel } from '../src/backend/index.js';
import { LlamaModel } from '../src/models/llama.js';
import { randomLlamaWeights, TINYLLAMA_CONFIG_JSON } from '../src/models/random.js';
import { configFromJson } from '../src/models/config.js';
import { buildStudent } from '../src/sharing/student.js';
import { sharingCost } from '../src/sharing/cost.js';
import { benchPlan, cpuModel, fmtSpread, peakRssGiB, tokens } from './common.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
}

const layers = Number(arg('layers', '22'));
const decodeSteps = Number(arg('decode-steps', '16'));
const contexts = arg('contexts', '512,2048,4096').split(',').map(Number);
const rounds = Number(arg('rounds', '5'));
const maxT = Math.max(...contexts);

/** TinyLlama's shape with room for the longest context and its decode window (random weights: nothing to extrapolate). */
function benchConfig() {
  return configFromJson({ ...TINYLLAMA_CONFIG_JSON, num_hidden_layers: layers, max_position_embeddings: Math.max(2048, maxT + decodeSteps) }, 'TinyLlama-1.1B shape (bench)');
}

interface ChildResult {
  which: string;
  params: number;
  /** Per context: prefill tok/s of T tokens, then decode tok/s of the next `decodeSteps`. */
  contexts: { t: number; prefill: number; decode: number; kvBytes: number }[];
  kvBytesPerToken: number;
  peakRssGiB: number;
}

function child(which: 'teacher' | 'student'): void {
  const be = getBackend();
  if (process.argv.includes('--threads')) be.setThreads(Number(arg('threads', '2')));
  const cfg = benchConfig();
  // Built in a nested call so the teacher's dropped q/k arrays are unreachable once the student exists.
  const build = () => {
    const teacher = LlamaModel.fromWeights(cfg, randomLlamaWeights(cfg, { seed: 11 }), be);
    return which === 'teacher' ? teacher : buildStudent(teacher, benchPlan(layers));
  };
  const model = build();
  model.forward(tokens(16, cfg.vocabSize, 1), { lastOnly: true }); // warm-up
  const out: ChildResult['contexts'] = [];
  for (const t of contexts) {
    const ids = tokens(t + decodeSteps, cfg.vocabSize, t);
    const cache = model.newCache(1, t + decodeSteps);
    // A prefill as generation runs it: into a KV cache, long steps in query chunks (ForwardOptions.chunk).
    const t0 = performance.now();
    model.forward(ids.subarray(0, t), { lastOnly: true, cache });
    const t1 = performance.now();
    for (let i = t; i < t + decodeSteps; i++) model.forward(ids.subarray(i, i + 1), { cache, lastOnly: true });
    const t2 = performance.now();
    out.push({ t, prefill: (t * 1000) / (t1 - t0), decode: (decodeSteps * 1000) / (t2 - t1), kvBytes: cache.bytesPerToken() * cache.length });
  }
  const res: ChildResult = { which, params: model.parameterCount(), contexts: out, kvBytesPerToken: model.newCache(1, 1).bytesPerToken(), peakRssGiB: peakRssGiB() };
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
  const cfg = benchConfig();
  const cost = sharingCost(cfg, benchPlan(layers), maxT);
  console.log(`${cpuModel()}, SIMD ${simdLevel(be)}; TinyLlama-1.1B shape, ${layers} layers, random f32 weights; backend ${be.name}, ` +
    `${arg('threads', String(be.threads))} thread(s); ${rounds} alternating rounds, cells median (min–max)`);
  console.log(`student shares layers ${cost.sharedLayers.join(', ')} (${cost.sharedLayers.length} of ${layers})`);
  const runs: { t: ChildResult; s: ChildResult }[] = [];
  for (let r = 0; r < rounds; r++) {
    const [first, second] = r % 2 ? (['student', 'teacher'] as const) : (['teacher', 'student'] as const);
    const a = run(first);
    const b = run(second);
    runs.push(first === 'teacher' ? { t: a, s: b } : { t: b, s: a });
  }
  const col = (f: (x: ChildResult) => number, d = 1) => [fmtSpread(runs.map((x) => f(x.t)), d), fmtSpread(runs.map((x) => f(x.s)), d), fmtSpread(runs.map((x) => f(x.s) / f(x.t)), 3, '×')];
  const row = (label: string, cells: string[]) => console.log(`| ${label} | ${cells.join(' | ')} |`);
  console.log('');
  console.log('| measurement | teacher | student | student / teacher |');
  console.log('|---|---:|---:|---:|');
  contexts.forEach((t, i) => row(`prefill tok/s @T=${t}`, col((x) => x.contexts[i].prefill)));
  contexts.forEach((t, i) => row(`decode tok/s @ctx ${t}`, col((x) => x.contexts[i].decode, 2)));
  const [t0, s0] = [runs[0].t, runs[0].s];
  row('parameters', [String(t0.params), String(s0.params), (s0.params / t0.params).toFixed(3)]);
  row('KV bytes/token', [String(t0.kvBytesPerToken), String(s0.kvBytesPerToken), (s0.kvBytesPerToken / t0.kvBytesPerToken).toFixed(3)]);
  row(`KV bytes @${maxT}+${decodeSteps} tokens`, [String(t0.contexts.at(-1)!.kvBytes), String(s0.contexts.at(-1)!.kvBytes), (s0.contexts.at(-1)!.kvBytes / t0.contexts.at(-1)!.kvBytes).toFixed(3)]);
  row('peak RSS GiB', col((x) => x.peakRssGiB, 2));
  console.log('targets: prefill @2048 and @4096 ≥ 1.1×, decode @4096 ≥ 1.15×, peak RSS ≤ the teacher\'s');
}
