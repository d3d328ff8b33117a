/**
 * `npm run bench:serve` — `echoatt serve` on loopback, a TinyLlama-1.1B-shaped teacher (random F16 weights, 22 layers,
 * the real Llama-2 tokenizer) against its student sharing 9 of 22 layers (F16), each served under the SAME KV-memory
 * budget (`--kv-memory`): how many concurrent 2048-token sequences each holds, aggregate decode tok/s of 1, 4 and 16
 * concurrent streaming requests (official `openai` client), and time to first token (p50 / p95). Each server runs in
 * its own process, one after the other; the model files are written once to bench/.cache/serve.
 * Flags: --kv-memory MiB (1408) --tokens N (24 per request) --rounds N (3 per concurrency) --layers N (22)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import OpenAI from 'openai';
import { getBackend, simdLevel } from '../src/backend/index.js';
import { tinyLlamaConfig, randomLlamaWeights } from '../src/models/random.js';
import { writeModelCheckpoint } from '../src/models/checkpoint.js';
import { loadModel, saveModel } from '../src/models/load.js';
import { makePlan } from '../src/models/sharing-plan.js';
import { withPlan } from '../src/models/surgery.js';
import { SHARED_DIR } from '../src/paths.js';

const arg = (n: string, d: string) => { const i = process.argv.indexOf(`--${n}`); return i >= 0 ? process.argv[i + 1] : d; };
const KV_MIB = Number(arg('kv-memory', '1408'));
const TOKENS = Number(arg('tokens', '24'));
const ROUNDS = Number(arg('rounds', '3'));
const LAYERS = Number(arg('layers', '22'));
const here = path.dirname(new URL(import.meta.url).pathname);
const dir = path.join(here, '.cache', 'serve');
const TOKENIZER = path.join(SHARED_DIR, 'tokenizers/llama2-32k/tokenizer.json');
const PROMPTS = ['Once upon a time', 'The history of', 'In the morning the', 'A recipe for', 'The main idea', 'She opened the door',
  'Scientists have found', 'The weather today', 'He said that', 'Our team', 'The river', 'At the end of the day', 'Music is', 'The old house', 'We walked', 'Numbers'];

/** Teacher and student model folders (F16 safetensors), written once. */
function ensureModels(): { teacher: string; student: string } {
  const teacher = path.join(dir, `tinyllama-${LAYERS}L-f16`);
  const student = path.join(dir, `tinyllama-${LAYERS}L-f16-student`);
  if (fs.existsSync(path.join(teacher, 'config.json')) && fs.existsSync(path.join(student, 'config.json'))) return { teacher, student };
  process.stderr.write(`writing the random TinyLlama-shaped F16 teacher and its student to ${dir} ...\n`);
  const cfg = tinyLlamaConfig(LAYERS);
  writeModelCheckpoint(teacher, cfg, randomLlamaWeights(cfg, { seed: 31, dtype: 'f16' }), TOKENIZER);
  const t = loadModel(teacher, { weights: 'as-stored' });
  const plan = LAYERS === 22
    ? makePlan('bench', [{ anchor: 4, shared: [5, 6, 7] }, { anchor: 9, shared: [10, 11, 12] }, { anchor: 14, shared: [15, 16, 17] }])
    : makePlan('bench', [{ anchor: 1, shared: [2] }]);
  saveModel(student, withPlan(t.model, plan), TOKENIZER);
  return { teacher, student };
}

interface Server { url: string; name: string; health: Record<string, number | string>; stop(): Promise<void> }

async function serve(model: string): Promise<Server> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(here, '../src/cli/main.ts'), 'serve', '--model', model, '--port', '0', '--ctx', '2048',
    '--kv-memory', String(KV_MIB), '--max-batch', '256', '--max-queue', '256'], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  child.stdout.on('data', (d) => (out += String(d)));
  const exited = new Promise<void>((r) => child.on('close', () => r()));
  while (!/ on (http:\/\/\S+)/.test(out)) {
    if (child.exitCode !== null) throw new Error(`serve exited: ${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const url = / on (http:\/\/\S+)/.exec(out)![1];
  const health = await (await fetch(`${url}/health`)).json() as Record<string, number | string>;
  return { url, name: String(health.model), health, stop: async () => { child.kill('SIGTERM'); await exited; } };
}

/** `n` concurrent streaming requests of TOKENS tokens: aggregate tok/s over the whole burst and each time to first token. */
async function burst(c: OpenAI, model: string, n: number): Promise<{ tokPerS: number; ttft: number[] }> {
  const t0 = performance.now();
  const ttft: number[] = [];
  let tokens = 0;
  await Promise.all(Array.from({ length: n }, async (_, i) => {
    const stream = await c.completions.create({ model, prompt: PROMPTS[i % PROMPTS.length], max_tokens: TOKENS, temperature: 0, stream: true });
    let first = true;
    for await (const chunk of stream) {
      if (first && chunk.choices[0].text) {
        ttft.push(performance.now() - t0);
        first = false;
      }
      if (chunk.usage) tokens += chunk.usage.completion_tokens;
    }
  }));
  return { tokPerS: (tokens * 1000) / (performance.now() - t0), ttft };
}

const pct = (x: number[], p: number) => [...x].sort((a, b) => a - b)[Math.min(x.length - 1, Math.floor(p * x.length))];
const models = ensureModels();
const be = getBackend();
const rows: { name: string; kv: number; slots: number; tps: Record<number, number>; p50: number; p95: number }[] = [];
for (const [label, model] of [['teacher', models.teacher], [`student ${LAYERS === 22 ? '9/22' : '1/L'}`, models.student]] as const) {
  const s = await serve(model);
  const c = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'none', maxRetries: 0, timeout: 600_000 });
  await burst(c, s.name, 2); // warm-up
  const tps: Record<number, number> = {};
  const ttft: number[] = [];
  for (const n of [1, 4, 16]) {
    const runs: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const b = await burst(c, s.name, n);
      runs.push(b.tokPerS);
      if (n === 16) ttft.push(...b.ttft);
    }
    tps[n] = pct(runs, 0.5);
  }
  rows.push({ name: label, kv: Number(s.health.kv_bytes_per_token), slots: Number(s.health.slots), tps, p50: pct(ttft, 0.5), p95: pct(ttft, 0.95) });
  await s.stop();
}

const [t, st] = rows;
const out = [
  `${os.cpus()[0]?.model ?? 'cpu'}, SIMD ${simdLevel(be)}, ${be.threads} thread(s); TinyLlama-1.1B shape, ${LAYERS} layers, random F16 weights; ` +
    `--kv-memory ${KV_MIB} MiB, --ctx 2048; ${TOKENS} tokens per request, median of ${ROUNDS} bursts per concurrency; TTFT over the 16-stream bursts`,
  '',
  '| model | KV bytes / token | concurrent 2048-token sequences | tok/s, 1 stream | tok/s, 4 streams | tok/s, 16 streams | 16 streams / 1 | TTFT p50 (ms) | TTFT p95 (ms) |',
  '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ...rows.map((r) => `| ${r.name} | ${r.kv} | ${r.slots} | ${r.tps[1].toFixed(1)} | ${r.tps[4].toFixed(1)} | ${r.tps[16].toFixed(1)} | ${(r.tps[16] / r.tps[1]).toFixed(2)}× | ${r.p50.toFixed(0)} | ${r.p95.toFixed(0)} |`),
  '',
  `student / teacher: concurrent sequences ${(st.slots / t.slots).toFixed(2)}× (target ≥ 1.25×), aggregate tok/s at 16 streams ${(st.tps[16] / t.tps[16]).toFixed(2)}× (target ≥ 1.2×); ` +
    `16 streams vs 1: teacher ${(t.tps[16] / t.tps[1]).toFixed(2)}×, student ${(st.tps[16] / st.tps[1]).toFixed(2)}× (target ≥ 4×)`,
];
process.stdout.write(`${out.join('\n')}\n`);
