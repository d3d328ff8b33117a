/**
 * `npm run bench:vs-llamacpp` — echoatt against llama.cpp (node-llama-cpp 3.22.1, CPU) on the same weights.
 *
 * 1. Installs node-llama-cpp into bench/.llamacpp (bench-only, not a dependency of echoatt; ~0.7 GB from npm).
 * 2. Writes one random-weight TinyLlama-1.1B-shaped model (22 layers, hidden 2048, 32/4 heads, FFN 5632, vocab 32000,
 *    the real Llama-2 tokenizer) as F16 safetensors (for echoatt) and F16 GGUF (for llama.cpp), cached in bench/.cache.
 * 3. Measures, each in its own child process (best of --reps runs of each, default 3, on both sides): prefill
 *    tok/s @512 and decode tok/s of the last N positions before 512 and 2048 context, peak RSS, on 1 and 2 threads —
 *    llama.cpp, echoatt's model, and echoatt's shared student (9 of 22 layers) — and prints ratios.
 * 4. Cross-checks correctness: next-token log-probabilities of both runtimes on the same tokens, on stories260K and on
 *    the random TinyLlama-shaped model, both exported as F32 GGUF (max abs difference and perplexity of each).
 * Both sides use an F32 KV cache and plain (non-flash) attention. llama.cpp's decode step is timed with
 * evaluateWithoutGeneratingNewTokens, which skips its output layer (no logits requested); echoatt's includes the
 * LM head, so the comparison leans towards llama.cpp by roughly the LM head's share (~6% at this shape).
 * Run it on an otherwise idle machine: llama.cpp's spinning threads suffer badly from contention.
 * Options: --threads 1,2  --decode-steps N  --reps N  --skip-speed  --skip-check  --layers N (smaller model for a quick look).
 */
import { spawnSync, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadModel } from '../src/models/load.js';
import { LlamaModel } from '../src/models/llama.js';
import { randomLlamaWeights, tinyLlamaConfig } from '../src/models/random.js';
import { exportGguf, ggufTokenizerOf, ggufTokenizerFromJson } from '../src/export/gguf.js';
import { makePlan, type SharingPlan } from '../src/models/sharing-plan.js';
import { buildStudent } from '../src/sharing/student.js';
import { getBackend } from '../src/backend/index.js';
import { SHARED_DIR } from '../src/cli/defaults.js';
import { peakRssGiB, tokens } from './common.js';
import { writeModelCheckpoint } from '../src/models/checkpoint.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const nlcDir = path.join(here, '.llamacpp');
const cacheDir = path.join(here, '.cache');
const LLAMA2_TOKENIZER = path.join(SHARED_DIR, 'tokenizers/llama2-32k/tokenizer.json');

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
}
const layers = Number(arg('layers', '22'));
const threadList = arg('threads', '1,2').split(',').map(Number);
const decodeSteps = Number(arg('decode-steps', '16'));
const reps = Number(arg('reps', '3'));
const PREFILL_T = 512;
const DECODE_CTX = [512, 2048];

function benchPlan(L: number): SharingPlan {
  if (L === 22) return makePlan('manual', [{ anchor: 4, shared: [5, 6, 7] }, { anchor: 9, shared: [10, 11, 12] }, { anchor: 14, shared: [15, 16, 17] }]);
  const mid = Math.floor(L / 2);
  return makePlan('manual', [{ anchor: mid - 1, shared: [mid] }]);
}



interface SpeedResult {
  prefill: Record<string, number>;
  decode: Record<string, number>;
  peakRssGiB: number;
}

function parseResult<T>(label: string, r: ReturnType<typeof spawnSync>): T {
  const out = String(r.stdout);
  const line = out.split('\n').find((l) => l.startsWith('RESULT '));
  if (r.status !== 0 || !line) throw new Error(`${label} failed (status ${r.status}):\n${out}\n${String(r.stderr)}`);
  return JSON.parse(line.slice(7)) as T;
}

function ensureLlamaCpp(): void {
  if (fs.existsSync(path.join(nlcDir, 'node_modules', 'node-llama-cpp', 'package.json'))) return;
  console.log('installing node-llama-cpp@3.22.1 into bench/.llamacpp (bench only) ...');
  fs.mkdirSync(nlcDir, { recursive: true });
  fs.writeFileSync(path.join(nlcDir, 'package.json'), '{ "private": true }\n');
  execFileSync('npm', ['install', 'node-llama-cpp@3.22.1', '--no-audit', '--no-fund'], { cwd: nlcDir, stdio: 'inherit' });
}

function llamaCpp(mode: string, args: string[]): ReturnType<typeof spawnSync> {
  return spawnSync(process.execPath, [path.join(here, 'llamacpp', 'runner.mjs'), mode, ...args], { encoding: 'utf8', maxBuffer: 1 << 30 });
}

/** Random TinyLlama-shaped model files: F16 safetensors dir + F16 GGUF (+ F32 GGUF for the cross-check). */
function ensureModelFiles(): { hfDir: string; ggufF16: string; ggufF32: string } {
  const tag = `tinyllama-${layers}L`;
  const hfDir = path.join(cacheDir, `${tag}-f16`);
  const ggufF16 = path.join(cacheDir, `${tag}-f16.gguf`);
  const ggufF32 = path.join(cacheDir, `${tag}-f32.gguf`);
  if (fs.existsSync(path.join(hfDir, 'config.json')) && fs.existsSync(ggufF16) && fs.existsSync(ggufF32)) return { hfDir, ggufF16, ggufF32 };
  fs.mkdirSync(cacheDir, { recursive: true });
  console.log(`writing the random ${tag} model (safetensors F16, GGUF F16 and F32) to bench/.cache ...`);
  const cfg = tinyLlamaConfig(layers);
  const f16 = randomLlamaWeights(cfg, { seed: 21, dtype: 'f16' });
  writeModelCheckpoint(hfDir, cfg, f16, LLAMA2_TOKENIZER);
  // The GGUFs are written from the F16 values widened to f32, so all three files hold the same numbers.
  const model = LlamaModel.fromWeights(cfg, f16, getBackend('reference'));
  const tok = ggufTokenizerFromJson(LLAMA2_TOKENIZER);
  exportGguf(ggufF16, model, tok, { dtype: 'f16', name: `${tag} random` });
  exportGguf(ggufF32, model, tok, { dtype: 'f32', name: `${tag} random` });
  return { hfDir, ggufF16, ggufF32 };
}

// ---- echoatt child processes -------------------------------------------------------------------------------------

function echoChild(): void {
  const [, , , which, modelDir, threadsS] = process.argv;
  const be = getBackend();
  be.setThreads(Number(threadsS));
  const build = () => {
    const { model } = loadModel(modelDir, { backend: be, weights: 'as-stored' });
    return which === 'student' ? buildStudent(model, benchPlan(model.config.numLayers)) : model;
  };
  const model = build();
  const V = model.config.vocabSize;
  const res: SpeedResult = { prefill: {}, decode: {}, peakRssGiB: 0 };
  model.forward(tokens(8, V, 1), { lastOnly: true }); // warm-up
  {
    let best = Infinity;
    for (let r = 0; r < reps; r++) {
      const t0 = performance.now();
      model.forward(tokens(PREFILL_T, V, 2), { lastOnly: true });
      best = Math.min(best, performance.now() - t0);
    }
    res.prefill[PREFILL_T] = (PREFILL_T * 1000) / best;
  }
  for (const c of DECODE_CTX) {
    // Decode the last `decodeSteps` positions before context c (so c never exceeds the model's 2048 positions).
    const p0 = c - decodeSteps;
    const toks = tokens(c, V, 3);
    const cache = model.newCache(1, c);
    for (let i = 0; i < p0; i += 512) model.forward(toks.subarray(i, Math.min(p0, i + 512)), { cache, lastOnly: true });
    // Best of `reps` windows: rewinding the cache makes the window's positions be decoded again.
    let best = Infinity;
    for (let r = 0; r < reps; r++) {
      cache.length = p0;
      const t0 = performance.now();
      for (let i = p0; i < c; i++) model.forward(toks.subarray(i, i + 1), { cache, lastOnly: true });
      best = Math.min(best, performance.now() - t0);
    }
    res.decode[c] = (decodeSteps * 1000) / best;
  }
  res.peakRssGiB = peakRssGiB();
  process.stdout.write(`RESULT ${JSON.stringify(res)}\n`);
}

function echo(which: string, modelDir: string, threads: number): SpeedResult {
  const r = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--echo-child', which, modelDir, String(threads), ...process.argv.slice(2)], {
    encoding: 'utf8',
    maxBuffer: 1 << 26,
  });
  return parseResult<SpeedResult>(`echoatt ${which}`, r);
}

// ---- correctness cross-check -------------------------------------------------------------------------------------

function crossCheck(label: string, gguf: string, model: LlamaModel, ids: Int32Array): string {
  const idsFile = path.join(cacheDir, 'check-ids.json');
  const outFile = path.join(cacheDir, 'check-logprobs.json');
  fs.writeFileSync(idsFile, JSON.stringify([...ids]));
  parseResult(`llama.cpp logits (${label})`, llamaCpp('logits', [gguf, '2', idsFile, outFile]));
  const theirs = JSON.parse(fs.readFileSync(outFile, 'utf8')) as number[][];
  const V = model.config.vocabSize;
  const logits = model.forward(ids);
  const ours = new Float32Array(logits.length);
  model.backend.logSoftmax(logits, ours, ids.length, V);
  let maxAbs = 0;
  let maxRel = 0;
  let nllOurs = 0;
  let nllTheirs = 0;
  for (let t = 0; t < ids.length; t++) {
    for (let j = 0; j < V; j++) {
      const d = Math.abs(ours[t * V + j] - theirs[t][j]);
      maxAbs = Math.max(maxAbs, d);
      maxRel = Math.max(maxRel, d / Math.max(1, Math.abs(theirs[t][j])));
    }
    if (t + 1 < ids.length) {
      nllOurs -= ours[t * V + ids[t + 1]];
      nllTheirs -= theirs[t][ids[t + 1]];
    }
  }
  const n = ids.length - 1;
  return `| ${label} | ${ids.length} | ${maxAbs.toExponential(2)} | ${maxRel.toExponential(2)} | ${Math.exp(nllOurs / n).toFixed(4)} | ${Math.exp(nllTheirs / n).toFixed(4)} |`;
}

// ---- main ----------------------------------------------------------------------------------------------------------

if (process.argv[2] === '--echo-child') {
  echoChild();
} else {
  ensureLlamaCpp();
  const files = ensureModelFiles();
  const cpu = fs.readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/)?.[1] ?? 'unknown CPU';
  console.log(`${cpu}; TinyLlama-1.1B shape, ${layers} layers, random F16 weights; echoatt backend ${getBackend().name}`);
  if (!process.argv.includes('--skip-speed')) {
    console.log('');
    console.log('| threads | runtime | prefill tok/s @512 | decode tok/s @512 | decode tok/s @2048 | peak RSS GiB |');
    console.log('|---:|---|---:|---:|---:|---:|');
    const ratios: string[] = [];
    for (const th of threadList) {
      const lc = parseResult<SpeedResult>('llama.cpp speed', llamaCpp('speed', [files.ggufF16, String(th), String(PREFILL_T), DECODE_CTX.join(','), String(decodeSteps), String(reps)]));
      const et = echo('teacher', files.hfDir, th);
      const es = echo('student', files.hfDir, th);
      const row = (name: string, r: SpeedResult) =>
        console.log(`| ${th} | ${name} | ${r.prefill[PREFILL_T].toFixed(1)} | ${r.decode[512].toFixed(2)} | ${r.decode[2048].toFixed(2)} | ${r.peakRssGiB.toFixed(2)} |`);
      row('llama.cpp F16', lc);
      row('echoatt F16', et);
      row('echoatt student 9/22 F16', es);
      const x = (a: number, b: number) => `${(a / b).toFixed(2)}×`;
      ratios.push(
        `${th} thread(s): echoatt/llama.cpp prefill@512 ${x(et.prefill[PREFILL_T], lc.prefill[PREFILL_T])}, decode@512 ${x(et.decode[512], lc.decode[512])}, ` +
          `decode@2048 ${x(et.decode[2048], lc.decode[2048])}; student decode@2048 vs llama.cpp ${x(es.decode[2048], lc.decode[2048])}`,
      );
    }
    console.log('');
    for (const r of ratios) console.log(r);
  }
  if (!process.argv.includes('--skip-check')) {
    console.log('');
    console.log('Cross-check against llama.cpp (F32 weights, F32 KV cache): next-token log-probabilities over the whole vocabulary');
    console.log('| model | tokens | max abs diff | max rel diff | ppl echoatt | ppl llama.cpp |');
    console.log('|---|---:|---:|---:|---:|---:|');
    const stories = loadModel(path.join(SHARED_DIR, 'models/stories260K/stories260K.bin'));
    const storiesGguf = path.join(cacheDir, 'stories260K-f32.gguf');
    exportGguf(storiesGguf, stories.model, ggufTokenizerOf(stories.tokenizer), { dtype: 'f32', name: 'stories260K' });
    const text = fs.readFileSync(path.join(SHARED_DIR, 'reference/stories260K-greedy-200.txt'), 'utf8');
    console.log(crossCheck('stories260K', storiesGguf, stories.model, Int32Array.from(stories.tokenizer.encode(text).slice(0, 128))));
    const tiny = loadModel(files.hfDir);
    const wiki = fs.readFileSync(path.join(SHARED_DIR, 'data/wikitext2/wiki.test.raw'), 'utf8').slice(0, 4000);
    console.log(crossCheck(`TinyLlama-shape ${layers}L random`, files.ggufF32, tiny.model, Int32Array.from(tiny.tokenizer.encode(wiki).slice(0, 64))));
  }
}
