/**
 * `npm run bench:decode` — prefill and decode throughput of the Llama runtime, with peak memory.
 *   1. stories260K (real weights from ../shared), prefill T=256 and decode to 256 context;
 *   2. a TinyLlama-1.1B-shaped model with random weights (22 layers; `--layers N` to shrink, `--dtype f32|bf16`
 *      for the stored dtype, kept as stored in memory), prefill at T=128 and 512, decode at context 512.
 * Options: `--threads N` (default: all cores), `--decode-steps N`, `--skip-tinyllama`.
 */
import path from 'node:path';
import { getBackend } from '../src/backend/index.js';
import { loadModel } from '../src/models/load.js';
import { LlamaModel } from '../src/models/llama.js';
import { randomLlamaWeights, tinyLlamaConfig } from '../src/models/random.js';
import type { DType } from '../src/tensor/dtype.js';
import { SHARED_DIR } from '../src/cli/defaults.js';
import { peakRssGiB, tokens } from './common.js';

function arg(name: string, def?: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
}

const be = getBackend();
const threads = Number(arg('threads', String(be.threads)));
be.setThreads(threads);
const decodeSteps = Number(arg('decode-steps', '32'));



interface Row {
  model: string;
  what: string;
  tokPerS: number;
  ms: number;
}
const rows: Row[] = [];

function prefill(label: string, model: LlamaModel, t: number, reps = 2): void {
  const ids = tokens(t, model.config.vocabSize, t);
  model.forward(ids.subarray(0, Math.min(t, 8)), { lastOnly: true }); // warm-up
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    model.forward(ids, { lastOnly: true });
    best = Math.min(best, performance.now() - t0);
  }
  rows.push({ model: label, what: `prefill T=${t}`, tokPerS: (t * 1000) / best, ms: best });
}

function decode(label: string, model: LlamaModel, ctx: number, steps: number): void {
  const cache = model.newCache(1, ctx + steps);
  const ids = tokens(ctx + steps, model.config.vocabSize, 7);
  model.forward(ids.subarray(0, ctx), { cache, lastOnly: true });
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) model.forward(ids.subarray(ctx + i, ctx + i + 1), { cache, lastOnly: true });
  const ms = performance.now() - t0;
  rows.push({ model: label, what: `decode @${ctx} ctx (${steps} tokens)`, tokPerS: (steps * 1000) / ms, ms: ms / steps });
}

console.log(`backend ${be.name}, ${be.threads} thread(s)`);
const stories = loadModel(path.join(SHARED_DIR, 'models/stories260K/stories260K.bin'), { backend: be }).model;
prefill('stories260K', stories, 256, 5);
decode('stories260K', stories, 1, 255);
console.log(`stories260K done, peak RSS ${peakRssGiB().toFixed(2)} GiB`);

if (!process.argv.includes('--skip-tinyllama')) {
  const layers = Number(arg('layers', '22'));
  const dtype = arg('dtype', 'f32') as DType;
  const cfg = tinyLlamaConfig(layers);
  const t0 = performance.now();
  let weights: ReturnType<typeof randomLlamaWeights> | undefined = randomLlamaWeights(cfg, { seed: 3, dtype });
  const tiny = LlamaModel.fromWeights(cfg, weights, be, 'as-stored');
  weights = undefined; // the model holds the arrays themselves; the map can go
  const label = `TinyLlama-shape ${layers}L ${dtype}`;
  console.log(`${label}: ${(tiny.parameterCount() / 1e9).toFixed(3)} B params built in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  prefill(label, tiny, 128);
  prefill(label, tiny, 512, 1);
  decode(label, tiny, 512, decodeSteps);
}

console.log('');
console.log('| model | measurement | tokens/s | ms |');
console.log('|---|---|---:|---:|');
for (const r of rows) console.log(`| ${r.model} | ${r.what} | ${r.tokPerS.toFixed(1)} | ${r.ms.toFixed(2)} |`);
console.log(`\npeak RSS ${peakRssGiB().toFixed(2)} GiB`);
