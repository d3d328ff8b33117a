/**
 * `npm run bench:vs-llamacpp` — echoatt against llama.cpp (node-llama-cpp 3.22.1, CPU) on the same weights.
 *
 * 1. Installs node-llama-cpp into bench/.llamacpp (bench-only, not a dependency of echoatt; ~0.7 GB from npm).
 * 2. Writes one random-weight TinyLlama-1.1B-shaped model (22 layers, hidden 2048, 32/4 heads, FFN 5632, vocab 32000,
 *    the real Llama-2 tokenizer) as F16 safetensors (for echoatt) and F16 GGUF (for llama.cpp), cached in bench/.cache.
 * 3. Speed, per thread count in one child process (bench/llamacpp/duel.ts) holding llama.cpp, echoatt's model and
 *    its shared student (9 of 22 layers): prefill tok/s @512 and decode tok/s of the last N positions before 512 and
 *    2048 context, in --rounds alternating rounds (default 5; each runtime takes each position in the order in turn);
 *    every cell is the median (min–max) over rounds and every ratio the median (min–max) of per-round ratios. Each
 *    decode round also measures the memory streaming rate (f16 weights of 8 FFN-sized matrices, 176 MiB, through
 *    matmulHalf: bench:gemm's decode measurement) and from it that
 *    round's ceiling for each runtime: (weights + the KV cache it attends over) / rate.
 * 4. Cross-checks correctness: next-token log-probabilities of both runtimes on the same tokens, on stories260K and on
 *    the random TinyLlama-shaped model, both exported as F32 GGUF (max abs difference and perplexity of each).
 * Both sides use an F32 KV cache and plain (non-flash) attention. llama.cpp's decode step is timed with
 * evaluateWithoutGeneratingNewTokens, which skips its output layer (no logits requested); echoatt's includes the
 * LM head, so the comparison leans towards llama.cpp by roughly the LM head's share (~6% at this shape).
 * Options: --threads 1,2  --decode-steps N  --rounds N  --skip-speed  --skip-check  --layers N (smaller model for a quick look).
 */
import { spawnSync, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadModel } from '../src/models/load.js';
import { LlamaModel } from '../src/models/llama.js';
import { randomLlamaWeights, tinyLlamaConfig } from '../src/models/random.js';
import { exportGguf, ggufTokenizerOf, ggufTokenizerFromJson } from '../src/export/gguf.js';
import { getBackend, simdLevel } from '../src/backend/index.js';
import { SHARED_DIR } from '../src/cli/defaults.js';
import { cpuModel, fmtSpread, spread } from './common.js';
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
const rounds = Number(arg('rounds', '5'));
const PREFILL_T = 512;
const DECODE_CTX = [512, 2048];

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

{
  ensureLlamaCpp();
  const files = ensureModelFiles();
  const be = getBackend();
  console.log(`${cpuModel()}; echoatt backend ${be.name}, SIMD ${simdLevel(be)}; TinyLlama-1.1B shape, ${layers} layers, random F16 weights; ` +
    `${rounds} alternating rounds, cells median (min–max) over rounds`);
  if (!process.argv.includes('--skip-speed')) speed(files);
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

interface DuelResult {
  runtimes: string[];
  prefill: Record<string, number[]>;
  decode: Record<number, Record<string, number[]>>;
  /** Per ctx: the streaming rate measured in each decode round (GB/s), and the bytes one step of each runtime reads. */
  gbps: Record<number, number[]>;
  bytes: Record<number, Record<string, number>>;
}

function speed(files: { hfDir: string; ggufF16: string }): void {
  const perRound = (a: number[], b: number[]) => a.map((x, i) => x / b[i]);
  const verdict = (xs: number[], target: number) => `${fmtSpread(xs, 2, '×')} ${spread(xs).median >= target ? 'meets' : 'misses'} ≥ ${target}×`;
  for (const th of threadList) {
    const child = spawnSync(process.execPath, ['--import', 'tsx', path.join(here, 'llamacpp', 'duel.ts'), files.ggufF16, files.hfDir, String(th),
      String(PREFILL_T), DECODE_CTX.join(','), String(decodeSteps), String(rounds)], { encoding: 'utf8', maxBuffer: 1 << 26 });
    const r = parseResult<DuelResult>(`speed child (${th} threads)`, child);
    const [lc, et, es] = r.runtimes;
    const ceiling = (c: number, name: string) => r.gbps[c].map((g) => (g * 1e9) / r.bytes[c][name]); // tok/s per round
    console.log(`\n${th} thread(s); memory streaming rate measured in each decode round (f16 weights of 8 FFN-sized matrices through matmulHalf): ` +
      DECODE_CTX.map((c) => `@${c} ${fmtSpread(r.gbps[c])} GB/s`).join(', '));
    console.log(`| runtime | prefill tok/s @${PREFILL_T} | ${DECODE_CTX.map((c) => `decode tok/s @${c} (ceiling)`).join(' | ')} |`);
    console.log(`|---|---:|${DECODE_CTX.map(() => '---:').join('|')}|`);
    for (const name of r.runtimes) {
      console.log(`| ${name} | ${fmtSpread(r.prefill[name])} | ${DECODE_CTX.map((c) => `${fmtSpread(r.decode[c][name], 2)} (${spread(ceiling(c, name)).median.toFixed(1)})`).join(' | ')} |`);
    }
    console.log(`echoatt / llama.cpp: prefill @${PREFILL_T} ${fmtSpread(perRound(r.prefill[et], r.prefill[lc]), 2, '×')}`);
    for (const c of DECODE_CTX) {
      const ceil = ceiling(c, et);
      const frac = r.decode[c][et].map((x, i) => x / ceil[i]);
      console.log(`  decode @${c}: echoatt / llama.cpp ${verdict(perRound(r.decode[c][et], r.decode[c][lc]), 1.3)}; ` +
        `echoatt at ${fmtSpread(frac, 2)} of its streaming ceiling (target ≥ 0.85); student / teacher ${fmtSpread(perRound(r.decode[c][es], r.decode[c][et]), 2, '×')}`);
    }
  }
}
