/**
 * `npm run bench:decode-profile` — where one decode step's time goes: the compiled step program (`LlamaModel.decodeStep`)
 * timed instruction by instruction, summed per kind of work over all layers and per layer, with the GB/s each weight
 * product streams, beside the memory streaming rate of the same run (bench/common.ts streamingRate: f16 weights of 8
 * FFN-sized matrices through matmulHalf, as bench:gemm's decode measurement).
 * Default model: TinyLlama-1.1B's shape with random F16 weights kept as stored (`--layers N` to shrink); `--model M`
 * profiles any checkpoint instead. Options: `--threads N`, `--ctx N` (positions before the profiled steps, default
 * 512), `--steps N` (default 16).
 */
import { getBackend, simdLevel } from '../src/backend/index.js';
import { loadNativeBackend } from '../src/backend/native.js';
import { loadModel } from '../src/models/load.js';
import { LlamaModel } from '../src/models/llama.js';
import { randomLlamaWeights, tinyLlamaConfig } from '../src/models/random.js';
import { cpuModel, streamingRate, tokens } from './common.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
}

const be = getBackend();
const threads = Number(arg('threads', String(be.threads)));
be.setThreads(threads);
const ctx = Number(arg('ctx', '512'));
const steps = Number(arg('steps', '16'));
const modelPath = arg('model', '');

function build(): { model: LlamaModel; name: string } {
  if (modelPath) return { model: loadModel(modelPath, { backend: be, weights: 'as-stored' }).model, name: modelPath };
  const cfg = tinyLlamaConfig(Number(arg('layers', '22')));
  return { model: LlamaModel.fromWeights(cfg, randomLlamaWeights(cfg, { seed: 5, dtype: 'f16' }), be, 'as-stored'), name: `TinyLlama-1.1B shape, ${cfg.numLayers} layers, random F16` };
}

/** Bytes of the weight each `layer L key` label multiplies by (0 for the rest). */
function weightBytes(model: LlamaModel): Map<string, number> {
  const bytes = new Map<string, number>();
  model.params.layers.forEach((layer, l) => {
    for (const key of ['wq', 'wk', 'wv', 'wo', 'wGate', 'wUp', 'wDown'] as const) bytes.set(`layer ${l} ${key}`, layer[key]?.byteLength ?? 0);
  });
  bytes.set('head', model.params.lmHead.byteLength);
  return bytes;
}

const { model, name } = build();
const nb = loadNativeBackend();
const gbps = nb ? streamingRate(nb, 5)() : NaN;
const cache = model.newCache(1, ctx + steps + 1);
const V = model.config.vocabSize;
model.forward(tokens(ctx, V, 3), { cache, lastOnly: true, chunk: 512 });
const step = model.decodeStep(cache);
step.run(1); // warm-up
step.profile(true);
const t0 = performance.now();
for (let i = 0; i < steps; i++) step.run(1 + i);
const wallUs = ((performance.now() - t0) * 1000) / steps;
const rows = step.profile(false);

const byKind = new Map<string, number>();
const byLayer = new Map<string, number>();
const bytesOf = weightBytes(model);
const kindBytes = new Map<string, number>();
for (const r of rows) {
  const m = /^(layer (\d+) )?(\S+)( \S+)?$/.exec(r.label);
  const layer = m?.[2] !== undefined ? `layer ${m[2]}` : r.label.split(' ')[0];
  const kind = r.label.replace(/^layer \d+ /, '');
  byKind.set(kind, (byKind.get(kind) ?? 0) + r.ns / steps);
  byLayer.set(layer, (byLayer.get(layer) ?? 0) + r.ns / steps);
}
for (const [label, b] of bytesOf) {
  const key = label.replace(/^layer \d+ /, '');
  const kind = [...byKind.keys()].find((k) => k.startsWith(`${key} mat`));
  if (kind) kindBytes.set(kind, (kindBytes.get(kind) ?? 0) + b);
}
const total = [...byKind.values()].reduce((a, b) => a + b, 0);
const allBytes = [...bytesOf.values()].reduce((a, b) => a + b, 0);
console.log(`${cpuModel()}, SIMD ${simdLevel(be)}, ${threads} thread(s); ${name}; decode at context ${ctx}, ${steps} steps profiled`);
console.log(`step: ${(wallUs / 1000).toFixed(2)} ms wall (${(1e6 / wallUs).toFixed(2)} tok/s), instructions ${(total / 1e6).toFixed(2)} ms; ` +
  `weights ${(allBytes / 1e9).toFixed(2)} GB per step → ${(allBytes / (wallUs * 1e3)).toFixed(1)} GB/s against a streaming rate of ${gbps.toFixed(1)} GB/s ` +
  `(ceiling ${((gbps * 1e9) / allBytes).toFixed(2)} tok/s without the KV cache, so ${((allBytes / (wallUs * 1e3)) / gbps).toFixed(2)} of it)`);
console.log('\n| work (all layers) | ms / step | share | GB/s of weights |');
console.log('|---|---:|---:|---:|');
for (const [k, ns] of [...byKind].sort((a, b) => b[1] - a[1])) {
  const b = kindBytes.get(k);
  console.log(`| ${k} | ${(ns / 1e6).toFixed(3)} | ${((100 * ns) / total).toFixed(1)}% | ${b ? (b / ns).toFixed(1) : ''} |`);
}
console.log('\n| layer | ms / step | share |');
console.log('|---|---:|---:|');
for (const [l, ns] of byLayer) console.log(`| ${l} | ${(ns / 1e6).toFixed(3)} | ${((100 * ns) / total).toFixed(1)}% |`);
