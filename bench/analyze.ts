/**
 * `npm run bench:analyze` — throughput of `echoatt analyze` and a streaming-memory check.
 *   1. analysis vs the model's own prefill on a TinyLlama-1.1B-shaped model with random f32 weights (22 layers;
 *      `--layers N` to shrink) at T = 512: each round times one plain prefill (`model.forward`, no statistics) and the
 *      similarity phase of `analyze` on one 512-token sequence (forward pass with probabilities, cosine, JS and
 *      head-pair statistics, loss; criticality and the measured search off: those are forward passes, i.e. the
 *      model's own speed), who goes first alternating; the ratio analysis / prefill tok/s is reported as the median
 *      (min–max) of the rounds (`--rounds N` or BENCH_ROUNDS, default 5);
 *   2. throughput of the similarity and criticality phases on stories260K at T = 256 and 512;
 *   3. streaming memory: stories260K at N = 2, 8, 32 sequences (T = 256), each run in a fresh process, reporting
 *      peak RSS and the growth of JS heap + array buffers over the model-loaded baseline. Flat = streaming works.
 * Options: `--threads N` (default: all cores), `--skip-tinyllama`.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { getBackend, simdLevel } from '../src/backend/index.js';
import { cpuModel, medianRange } from './common.js';
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

/** Alternating rounds of plain prefill and analysis (similarity phase) on the TinyLlama shape; markdown lines. */
async function tinyLlamaRounds(layers: number, rounds: number): Promise<string[]> {
  const T = 512;
  const cfg = tinyLlamaConfig(layers);
  const t0 = performance.now();
  const tiny = LlamaModel.fromWeights(cfg, randomLlamaWeights(cfg, { seed: 1, dtype: 'f32' }), be);
  process.stderr.write(`built TinyLlama-shaped random model (${layers} layers, f32) in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  const stub = { vocabSize: cfg.vocabSize, bosId: 1, eosIds: [2] } as unknown as Tokenizer;
  const seqs = randomSequences(rounds + 1, T, cfg.vocabSize, 1);
  const prefill = (ids: Int32Array) => {
    const t = performance.now();
    tiny.forward(ids);
    return (T * 1000) / (performance.now() - t);
  };
  const analysis = async (ids: Int32Array) => {
    const r = await analyze(tiny, stub, { data: { sequences: [ids], description: 'random tokens' }, criticalitySeqs: 0, search: false });
    return r.timing.similarityTokensPerSecond;
  };
  prefill(seqs[rounds]); // warm-up: first-touch of buffers, thread pool
  await analysis(seqs[rounds]);
  const rows: string[] = [];
  const ratios: number[] = [];
  const [pre, ana]: number[][] = [[], []];
  for (let r = 0; r < rounds; r++) {
    let p: number;
    let a: number;
    if (r % 2 === 0) {
      p = prefill(seqs[r]);
      a = await analysis(seqs[r]);
    } else {
      a = await analysis(seqs[r]);
      p = prefill(seqs[r]);
    }
    pre.push(p);
    ana.push(a);
    ratios.push(a / p);
    rows.push(`| ${r + 1} | ${r % 2 === 0 ? 'prefill' : 'analysis'} | ${p.toFixed(1)} | ${a.toFixed(1)} | ${(a / p).toFixed(3)} |`);
    process.stderr.write(`  round ${r + 1}/${rounds}: prefill ${p.toFixed(1)} tok/s, analysis ${a.toFixed(1)} tok/s\r`);
  }
  process.stderr.write('\n');
  return [
    `## Analysis vs the model's prefill: TinyLlama-1.1B shape (${layers} layers, hidden 2048, 32 heads / 4 KV heads, vocab 32000, random f32 weights), T = ${T}`,
    '',
    `${cpuModel()}, SIMD ${simdLevel(be)}, ${be.threads} thread(s); ${rounds} rounds of one ${T}-token sequence each, who goes first alternating. ` +
      'prefill: `model.forward` alone; analysis: the similarity phase of `analyze` (forward pass with probabilities + cosine, JS, head-pair statistics, loss).',
    '',
    '| round | first | prefill tok/s | analysis tok/s | analysis / prefill |',
    '|---:|---|---:|---:|---:|',
    ...rows,
    `| median (min–max) | | ${medianRange(pre, 1, '')} | ${medianRange(ana, 1, '')} | **${medianRange(ratios, 3)}** |`,
    '',
  ];
}

async function main(): Promise<void> {
  const childN = arg('child');
  if (childN) return child(Number(childN));
  process.stdout.write(`echoatt analyze benchmark — ${cpuModel()}, backend ${be.name} (SIMD ${simdLevel(be)}), ${be.threads} thread(s), node ${process.version}\n\n`);
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
  const tiny = process.argv.includes('--skip-tinyllama') ? [] : await tinyLlamaRounds(Number(arg('layers', '22')), Number(arg('rounds', process.env.BENCH_ROUNDS ?? '5')));
  for (const line of tiny) process.stdout.write(`${line}\n`);
  process.stdout.write('## Throughput (stories260K)\n\n');
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
