/**
 * `npm run bench:vs-c` — echoatt's greedy decode speed against a plain single-threaded C forward pass
 * (bench/c/llama_c.c: float loops, no BLAS, no threads, built with gcc -Ofast -march=native into bench/.cache).
 *
 * For stories260K and gutenberg16 (llama2.c checkpoints from ../shared): the same prompt (BOS + "Once upon a time",
 * encoded by echoatt's tokenizer) is run to the model's full context (512 / 256 positions) with argmax sampling and
 * no stop token, on 1 thread on both sides. It first checks that both produce the same token ids, then runs
 * BENCH_ROUNDS (default 7) alternating rounds (who goes first alternates; in a round each side runs BENCH_REPS times,
 * default 3, and keeps its best, so a short noisy phase of this shared machine does not decide a round) and prints
 * each side's decode tok/s (median, min–max) and echoatt/C as the median of per-round ratios (min–max), next to its
 * target.
 * Decode tok/s on both sides: forward passes after the prompt / time from the end of the prompt's last forward pass
 * to the last token (echoatt prefills the prompt in one batched pass, C token by token; neither is timed).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { getBackend, simdLevel } from '../src/backend/index.js';
import { loadModel } from '../src/models/load.js';
import { generate } from '../src/models/generate.js';
import { SHARED_DIR } from '../src/cli/defaults.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const cBin = path.join(here, '.cache', 'llama_c');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const REPS = Number(process.env.BENCH_REPS ?? 3);
const bestOf = (f: () => number): number => Math.max(...Array.from({ length: REPS }, f));
const PROMPT = 'Once upon a time';
const MODELS = [
  { name: 'stories260K', file: path.join(SHARED_DIR, 'models/stories260K/stories260K.bin'), target: 1.5 },
  { name: 'gutenberg16', file: path.join(SHARED_DIR, 'models/gutenberg16/model.bin'), target: 3 },
];

interface Run {
  tokens: number[];
  tokPerS: number;
}

function runC(file: string, steps: number, prompt: number[]): Run {
  const r = spawnSync(cBin, [file, String(steps), prompt.join(',')], { encoding: 'utf8' });
  const m = /decode \d+ tokens [\d.]+ ms ([\d.]+) tok\/s/.exec(r.stderr);
  if (r.status !== 0 || !m) throw new Error(`llama_c failed (status ${r.status}): ${r.stderr}`);
  return { tokens: r.stdout.trim().split(',').map(Number), tokPerS: Number(m[1]) };
}

function stats(xs: number[]): { median: number; min: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return { median: s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2, min: s[0], max: s[s.length - 1] };
}

const fmt = (x: number, d = 0): string => x.toFixed(d);
const line = (label: string, xs: number[], d = 0, unit = ''): string => {
  const s = stats(xs);
  return `${label} ${fmt(s.median, d)}${unit} (min–max ${fmt(s.min, d)}–${fmt(s.max, d)}${unit})`;
};

fs.mkdirSync(path.dirname(cBin), { recursive: true });
execFileSync('gcc', ['-Ofast', '-march=native', '-o', cBin, path.join(here, 'c', 'llama_c.c'), '-lm']);

const be = getBackend();
be.setThreads(1);
const cpu = /model name\s*:\s*(.*)/.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown CPU';
const gcc = execFileSync('gcc', ['-dumpfullversion'], { encoding: 'utf8' }).trim();
console.log(`${cpu}; echoatt backend ${be.name}, SIMD ${simdLevel(be)}, ${be.threads} thread; C: gcc ${gcc} -Ofast -march=native, 1 thread; Node ${process.version}; ${ROUNDS} rounds, best of ${REPS} runs per side per round`);

for (const spec of MODELS) {
  const { model, tokenizer } = loadModel(spec.file, { backend: be });
  const steps = model.config.maxPositions;
  const opts = { prompt: PROMPT, temperature: 0, steps, maxTokens: steps, stopIds: [] };
  const runEcho = (): Run => {
    const r = generate(model, tokenizer, opts, () => {});
    return { tokens: r.tokens, tokPerS: r.decodeTokensPerSecond };
  };
  const first = runEcho(); // also the warm-up
  const prompt = tokenizer.encode(PROMPT, { bos: true, eos: false }); // as generate() encodes it
  const c = runC(spec.file, steps, prompt);
  const c0 = model.config;
  console.log(`\n${spec.name} (dim ${c0.hiddenSize}, ${c0.numLayers} layers, ${c0.numHeads}/${c0.numKvHeads} heads, vocab ${c0.vocabSize}): ` +
    `prompt ${prompt.length} tokens, ${steps} positions, ${steps - prompt.length} decode tokens per run`);
  const n = Math.max(first.tokens.length, c.tokens.length);
  const diff = Array.from({ length: n }, (_, i) => i).find((i) => first.tokens[i] !== c.tokens[i]);
  console.log(diff === undefined
    ? `  same tokens: yes (${n} generated tokens)`
    : `  same tokens: no (first difference at generated token ${diff}, position ${prompt.length + diff}: echoatt ${first.tokens[diff]}, C ${c.tokens[diff]})`);

  const cTps: number[] = [];
  const eTps: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const sides = [() => cTps.push(bestOf(() => runC(spec.file, steps, prompt).tokPerS)), () => eTps.push(bestOf(() => runEcho().tokPerS))];
    if (r % 2) sides.reverse();
    sides.forEach((f) => f());
  }
  const ratios = eTps.map((e, i) => e / cTps[i]);
  const ratio = stats(ratios).median;
  console.log(line('  C        decode tok/s: median', cTps));
  console.log(line('  echoatt  decode tok/s: median', eTps));
  console.log(`${line('  echoatt/C: median', ratios, 2, '×')}   target ≥ ${spec.target}×: ${ratio >= spec.target ? 'met' : 'not met'}`);
}
