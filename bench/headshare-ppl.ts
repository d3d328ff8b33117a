/**
 * `node --import tsx bench/headshare-ppl.ts` — head-wise weight sharing on stories260K: perplexity vs share rate for
 * DirectShare and PostShare, and the saved file size before and after.
 *
 * Held-out text: 24 teacher samples (T = 1, top-p 0.9, seeds 1234…, as bench/share-quality.ts) plus the 5 real
 * TinyStories of ../shared/data/corpus/tinystories_sample.txt, each document starting with BOS; perplexity from
 * `src/eval/perplexity.ts` (token level, sliding windows of 256 tokens, stride 128).
 * PostShare training text: teacher samples with other seeds (5000…, T = 1), disjoint from the held-out ones; LM loss
 * + λ · Frobenius penalty. Its "rate 0" row is the same training with no pairs (fine-tuning alone), to separate the
 * effect of training on teacher text from the effect of sharing.
 *
 * Options: `--rates 0.1,0.2,0.3,0.4,0.5`, `--steps 300`, `--lambda 1`, `--lr 1e-3`, `--batch 8`, `--train-samples 256`,
 * `--strategy qk`, `--out out/headshare-ppl`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadModel, saveModel } from '../src/models/load.js';
import { generate } from '../src/models/generate.js';
import { getBackend } from '../src/backend/index.js';
import type { LlamaModel } from '../src/models/llama.js';
import { directShare, type HeadShareStrategy } from '../src/sharing/headshare.js';
import { postShare } from '../src/sharing/postshare.js';
import { fingerprint, packDocuments, readSamples, writeSamples } from '../src/train/data.js';
import { tokenPerplexity } from '../src/eval/perplexity.js';
import { lineChart, writeChart, writeFileAtomic } from '../src/report/plot.js';
import { SHARED_DIR } from '../src/cli/defaults.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
}

const rates = arg('rates', '0.1,0.2,0.3,0.4,0.5').split(',').map(Number);
const steps = Number(arg('steps', '300'));
const lambda = Number(arg('lambda', '1'));
const lr = Number(arg('lr', '1e-3'));
const nTrain = Number(arg('train-samples', '256'));
const strategy = arg('strategy', 'qk') as HeadShareStrategy;
const outDir = arg('out', 'out/headshare-ppl');
const batch = Number(arg('batch', '8'));
const SEQ = 128;

const be = getBackend();
const modelPath = path.join(SHARED_DIR, 'models/stories260K/stories260K.bin');
const { model: teacher, tokenizer, stopIds, checkpoint } = loadModel(modelPath, { backend: be });
const bos = tokenizer.bosId ?? 1;

function sample(seed: number, topP: number): number[] {
  const r = generate(teacher, tokenizer, { temperature: 1, topP, seed, maxTokens: 300, stopIds }, () => {});
  return [...r.promptTokens, ...r.tokens];
}

const heldDocs: number[][] = [];
for (let i = 0; i < 24; i++) heldDocs.push(sample(1234 + i, 0.9));
for (const story of fs.readFileSync(path.join(SHARED_DIR, 'data/corpus/tinystories_sample.txt'), 'utf8').split(/\n(?=Once|One day|There was)/)) {
  if (story.trim()) heldDocs.push([bos, ...tokenizer.encode(story.trim(), { bos: false })]);
}
const held = heldDocs.flat();
const ppl = (m: LlamaModel) => tokenPerplexity(m, held, { mode: 'sliding', ctx: 256, stride: 128 }).ppl;

const t0 = performance.now();
fs.mkdirSync(outDir, { recursive: true });
const cacheFile = path.join(outDir, `train-samples-${nTrain}.jsonl`);
let trainDocs: number[][] = [];
if (fs.existsSync(cacheFile)) trainDocs = readSamples(cacheFile);
else {
  for (let i = 0; i < nTrain; i++) trainDocs.push(sample(5000 + i, 1));
  writeSamples(cacheFile, trainDocs, tokenizer);
}
const sequences = packDocuments(trainDocs, SEQ);
const dataset = { sequences, description: `${nTrain} teacher samples`, fingerprint: fingerprint(sequences) };
console.log(`held-out: ${held.length} tokens (${heldDocs.length} documents); PostShare train: ${sequences.length} × ${SEQ + 1} tokens (${((performance.now() - t0) / 1000).toFixed(1)} s to sample)`);

saveModel(path.join(outDir, 'dense'), teacher, checkpoint.tokenizerPath);
const size = (d: string) => fs.statSync(path.join(outDir, d, 'model.safetensors')).size;
const denseBytes = size('dense');
const basePpl = ppl(teacher);
console.log(`teacher: ppl ${basePpl.toFixed(3)}; dense model.safetensors ${denseBytes} bytes (llama2.c .bin ${fs.statSync(modelPath).size})`);

interface Row { rate: number; units: number; direct: number; post: number; penaltyBefore: number; penaltyAfter: number; bytes: number; saved: number }
const rows: Row[] = [];
const post0 = await postShare(teacher, tokenizer, { shareRate: 0, strategy, dataset, steps, lambda, lr, seqLen: SEQ, batch: batch });
const post0Ppl = ppl(post0.trained);
console.log(`post-trained without sharing (rate 0): ppl ${post0Ppl.toFixed(3)}`);
for (const rate of rates) {
  const ds = directShare(teacher, { shareRate: rate, strategy });
  const dir = `ds-${rate}`;
  saveModel(path.join(outDir, dir), ds.model, checkpoint.tokenizerPath);
  const t1 = performance.now();
  const ps = await postShare(teacher, tokenizer, { shareRate: rate, strategy, dataset, steps, lambda, lr, seqLen: SEQ, batch: batch });
  const row: Row = {
    rate, units: ds.map.shared.length, direct: ppl(ds.model), post: ppl(ps.model), penaltyBefore: ps.penaltyBefore, penaltyAfter: ps.penaltyAfter,
    bytes: size(dir), saved: ds.report.bytesSaved.f32,
  };
  rows.push(row);
  console.log(`rate ${rate}: ${row.units} units; DirectShare ppl ${row.direct.toFixed(3)}; PostShare ppl ${row.post.toFixed(3)} (penalty ${row.penaltyBefore.toFixed(2)} -> ${row.penaltyAfter.toFixed(2)}, ${((performance.now() - t1) / 1000).toFixed(0)} s); file ${row.bytes} bytes`);
}

const U = teacher.config.numLayers * teacher.config.numKvHeads;
const table = [
  `stories260K, strategy ${strategy}; held-out ${held.length} tokens; PostShare: ${steps} steps × ${batch} × ${SEQ} tokens, λ = ${lambda}, lr ${lr}`,
  '',
  '| share rate | units shared | DirectShare ppl | PostShare ppl | PostShare penalty before → after | model.safetensors bytes | saved vs dense |',
  '|---|---|---|---|---|---|---|',
  `| 0 (teacher) | 0/${U} | ${basePpl.toFixed(3)} | ${post0Ppl.toFixed(3)} (fine-tuned, no sharing) | – | ${denseBytes} | 0 |`,
  ...rows.map((r) => `| ${r.rate} | ${r.units}/${U} | ${r.direct.toFixed(3)} | ${r.post.toFixed(3)} | ${r.penaltyBefore.toFixed(2)} → ${r.penaltyAfter.toFixed(2)} | ${r.bytes} | ${denseBytes - r.bytes} (${((100 * (denseBytes - r.bytes)) / denseBytes).toFixed(1)}%) |`),
  '',
  'Head-wise sharing saves weight memory only: the KV cache and the FLOPs are unchanged.',
].join('\n');
console.log(`\n${table}`);
writeFileAtomic(path.join(outDir, 'table.md'), `${table}\n`);
writeFileAtomic(path.join(outDir, 'results.json'), `${JSON.stringify({ basePpl, post0Ppl, denseBytes, rows, steps, lambda, lr, strategy }, null, 2)}\n`);
const xs = [0, ...rows.map((r) => r.rate)];
const chart = await lineChart(
  [
    { name: 'DirectShare', x: xs, y: [basePpl, ...rows.map((r) => r.direct)] },
    { name: 'PostShare', x: xs, y: [post0Ppl, ...rows.map((r) => r.post)] },
  ],
  { title: 'stories260K: perplexity vs head-sharing rate', xTitle: 'share rate (fraction of K/V-group units)', yTitle: 'perplexity (held-out)', subtitle: `strategy ${strategy}; PostShare ${steps} steps, λ=${lambda}, lr ${lr}; weight memory only — KV cache and FLOPs unchanged` },
);
console.log(writeChart(chart, path.join(outDir, 'ppl-vs-rate')));
