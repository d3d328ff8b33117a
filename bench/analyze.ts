/**
 * `npm run bench:analyze` — throughput of `echoatt analyze` and a streaming-memory check.
 *   1. throughput (tokens/s through the similarity phase: forward pass with probabilities + cosine, JS and head-pair
 *      statistics; and the criticality phase separately) on stories260K at T = 256 and 512, and on a
 *      TinyLlama-1.1B-shaped model with random f32 weights (22 layers; `--layers N` to shrink) at T = 512;
 *   2. streaming memory: stories260K at N = 2, 8, 32 sequences (T = 256), each run in a fresh process, reporting
 *      peak RSS and the growth of JS heap + array buffers over the model-loaded baseline. Flat = streaming works.
 * Options: `--threads N` (default: all cores), `--tiny-seqs N` (default 2), `--skip-tinyllama`.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { getBackend } from '../src/backend/index.js';
import { loadModel } from '../src/models/load.js';
import { LlamaModel } from '../src/models/llama.js';
import { randomLlamaWeights, tinyLlamaConfig } from '../src/models/random.js';
import { analyze, type AnalyzeOptions } from '../src/analysis/analyze.js';
import type { Tokenizer } from '../src/tokenizer/tokenizer.js';
import { SHARED_DIR } from '../src/cli/defaults.js';

function arg(name: string, def?: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
}

const be = getBackend();
be.setThreads(Number(arg('threads', String(be.threads))));
const STORIES = path.join(SHARED_DIR, 'models/stories260K/stories260K.bin');
const MiB = 1048576;

function mem(): number {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/**
 * Child mode: one analysis of stories260K with N sequences; prints one JSON line. RSS is sampled (getrusage's
 * maxRSS would carry the parent's peak across fork/exec on Linux).
 */
async function child(n: number): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
  const { model, tokenizer } = loadModel(STORIES, { backend: be });
  gc();
  const base = mem();
  const rssBase = process.memoryUsage().rss;
  let peakRss = rssBase;
  let peak = base;
  const sample = () => {
    peak = Math.max(peak, mem());
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
  };
  const r = await analyze(model, tokenizer, { seqs: n, seqLen: 256, criticalitySeqs: 0, onProgress: sample });
  sample();
  gc();
  const retained = mem() - base;
  process.stdout.write(`${JSON.stringify({
    n: r.data.sequences, rssBaseMiB: rssBase / MiB, peakRssMiB: peakRss / MiB, growthMiB: (peak - base) / MiB, retainedMiB: retained / MiB,
    heldMiB: r.similarity.memory.peakHeldBytes / MiB, boundMiB: r.similarity.memory.boundBytes / MiB,
  })}\n`);
}

function randomSequences(n: number, t: number, vocab: number, bos: number): Int32Array[] {
  let s = 12345;
  return Array.from({ length: n }, () => {
    const out = new Int32Array(t);
    out[0] = bos;
    for (let i = 1; i < t; i++) {
      s = (s * 1103515245 + 12345) >>> 0;
      out[i] = 3 + (s % (vocab - 3));
    }
    return out;
  });
}

interface Row {
  model: string;
  setting: string;
  simTokS: number;
  simS: number;
  critTokS: string;
  passes: number;
  heldMiB: number;
  peakRssGiB: number;
}

async function throughput(label: string, model: LlamaModel, tokenizer: Tokenizer, opts: AnalyzeOptions, setting: string): Promise<Row> {
  const r = await analyze(model, tokenizer, opts);
  const critTokens = r.criticality ? r.criticality.sequences * r.data.seqLen * (r.model.numLayers - 1) : 0;
  return {
    model: label,
    setting,
    simTokS: r.timing.similarityTokensPerSecond,
    simS: r.timing.similarityMs / 1000,
    critTokS: critTokens ? ((critTokens * 1000) / r.timing.criticalityMs).toFixed(0) : '-',
    passes: r.similarity.memory.passes,
    heldMiB: r.similarity.memory.peakHeldBytes / MiB,
    peakRssGiB: process.resourceUsage().maxRSS / 1024 / 1024,
  };
}

async function main(): Promise<void> {
  const childN = arg('child');
  if (childN) return child(Number(childN));
  process.stdout.write(`echoatt analyze benchmark — backend ${be.name}, ${be.threads} thread(s), node ${process.version}\n\n`);
  // Streaming check first, in fresh processes, before this process grows.
  const memoryRows: string[] = [];
  const self = fileURLToPath(import.meta.url);
  for (const n of [2, 8, 32]) {
    const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', self, '--child', String(n), '--threads', String(be.threads)], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`child N=${n} failed: ${r.stderr}`);
    const j = JSON.parse(r.stdout.trim().split('\n').pop()!);
    memoryRows.push(`| ${j.n} | ${j.rssBaseMiB.toFixed(1)} | ${j.peakRssMiB.toFixed(1)} | ${j.growthMiB.toFixed(1)} | ${j.retainedMiB.toFixed(2)} | ${j.heldMiB.toFixed(2)} (${j.boundMiB.toFixed(2)}) |\n`);
  }
  const rows: Row[] = [];
  const { model, tokenizer } = loadModel(STORIES, { backend: be });
  await analyze(model, tokenizer, { seqs: 1, seqLen: 64, criticalitySeqs: 0 }); // warm-up
  rows.push(await throughput('stories260K', model, tokenizer, { seqs: 16, seqLen: 256, criticalitySeqs: 8 }, 'N=16 T=256 (gutenberg)'));
  rows.push(await throughput('stories260K', model, tokenizer, { seqs: 8, seqLen: 512, criticalitySeqs: 4 }, 'N=8 T=512 (gutenberg)'));
  if (!process.argv.includes('--skip-tinyllama')) {
    const layers = Number(arg('layers', '22'));
    const cfg = tinyLlamaConfig(layers);
    const t0 = performance.now();
    const tiny = LlamaModel.fromWeights(cfg, randomLlamaWeights(cfg, { seed: 1, dtype: 'f32' }), be);
    process.stderr.write(`built TinyLlama-shaped random model (${layers} layers, f32) in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
    const n = Number(arg('tiny-seqs', '2'));
    const stub = { vocabSize: cfg.vocabSize, bosId: 1, eosIds: [2] } as unknown as Tokenizer;
    const sequences = randomSequences(n, 512, cfg.vocabSize, 1);
    rows.push(await throughput(`TinyLlama-shape (${layers}L, random f32)`, tiny, stub, {
      data: { sequences, description: 'random tokens' }, criticalitySeqs: 0,
      onProgress: (p) => process.stderr.write(`  similarity ${p.done}/${p.total}\r`),
    }, `N=${n} T=512, similarity only`));
    process.stderr.write('\n');
  }
  process.stdout.write('## Throughput\n\n');
  process.stdout.write('| model | setting | similarity tok/s | similarity s | criticality tok/s | passes/seq | maps held MiB | peak RSS GiB |\n|---|---|---:|---:|---:|---:|---:|---:|\n');
  for (const r of rows) {
    process.stdout.write(`| ${r.model} | ${r.setting} | ${r.simTokS.toFixed(0)} | ${r.simS.toFixed(2)} | ${r.critTokS} | ${r.passes} | ${r.heldMiB.toFixed(1)} | ${r.peakRssGiB.toFixed(2)} |\n`);
  }

  process.stdout.write('\n## Streaming memory (stories260K, T=256, fresh process per N, criticality off)\n\n');
  process.stdout.write(
    '| N sequences | RSS after load MiB | peak RSS MiB | peak heap+buffers growth MiB (incl. garbage) | retained after GC MiB | maps held MiB (bound) |\n' +
      '|---:|---:|---:|---:|---:|---:|\n',
  );
  for (const line of memoryRows) process.stdout.write(line);
}

await main();
