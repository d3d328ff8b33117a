/**
 * `npm run bench:share-quality` — training-free shared-attention students of stories260K: every plan that shares one
 * layer with one earlier anchor, and every contiguous block (anchor = the layer before it), against the teacher.
 * Metric: token-level perplexity (mean next-token NLL over non-overlapping 256-token windows, each starting with BOS)
 * on (a) text the teacher generated (in-domain TinyStories-like text: 24 samples, T=1, top-p 0.9, seed 1234) plus the
 * 5 real TinyStories of ../shared/data/corpus/tinystories_sample.txt, and (b) the first 64 K tokens of WikiText-2 test.
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadModel } from '../src/models/load.js';
import { generate } from '../src/models/generate.js';
import { getBackend } from '../src/backend/index.js';
import type { LlamaModel } from '../src/models/llama.js';
import { makePlan, type PlanGroup } from '../src/models/sharing-plan.js';
import { buildStudent } from '../src/sharing/student.js';
import { sharingCost } from '../src/sharing/cost.js';
import { SHARED_DIR } from '../src/cli/defaults.js';

const WINDOW = 256;
const be = getBackend();
const { model: teacher, tokenizer, stopIds } = loadModel(path.join(SHARED_DIR, 'models/stories260K/stories260K.bin'), { backend: be });
const bos = tokenizer.bosId ?? 1;

function windows(text: string, maxTokens: number): Int32Array[] {
  const ids = tokenizer.encode(text, { bos: false }).slice(0, maxTokens);
  const out: Int32Array[] = [];
  for (let i = 0; i + 1 < ids.length; i += WINDOW - 1) out.push(Int32Array.from([bos, ...ids.slice(i, i + WINDOW - 1)]));
  return out;
}

function perplexity(model: LlamaModel, wins: Int32Array[]): number {
  const V = model.config.vocabSize;
  let nll = 0;
  let n = 0;
  for (const w of wins) {
    const logits = model.forward(w);
    const rows = w.length - 1;
    const losses = new Float32Array(rows);
    be.crossEntropy(logits.subarray(0, rows * V), w.subarray(1), losses, rows, V);
    for (const l of losses) nll += l;
    n += rows;
  }
  return Math.exp(nll / n);
}

const samples: string[] = [];
for (let i = 0; i < 24; i++) {
  const out: Uint8Array[] = [];
  generate(teacher, tokenizer, { temperature: 1, topP: 0.9, seed: 1234 + i, maxTokens: 300, stopIds }, (b) => out.push(b));
  samples.push(Buffer.concat(out).toString('utf8'));
}
const stories = `${samples.join('\n')}\n${fs.readFileSync(path.join(SHARED_DIR, 'data/corpus/tinystories_sample.txt'), 'utf8')}`;
const wiki = fs.readFileSync(path.join(SHARED_DIR, 'data/wikitext2/wiki.test.raw'), 'utf8');
const data = { stories: windows(stories, 1 << 20), wiki: windows(wiki, 65536) };
console.log(`stories: ${data.stories.length} windows; wikitext-2: ${data.wiki.length} windows of ${WINDOW} tokens`);

const L = teacher.config.numLayers;
const plans: { label: string; groups: PlanGroup[] }[] = [];
for (let l = 1; l < L; l++) for (let a = 0; a < l; a++) plans.push({ label: `${l}←${a}`, groups: [{ anchor: a, shared: [l] }] });
for (let a = 0; a < L - 1; a++) {
  for (let b = a + 2; b < L; b++) {
    const shared = Array.from({ length: b - a }, (_, i) => a + 1 + i);
    plans.push({ label: `${shared.join(',')}←${a}`, groups: [{ anchor: a, shared }] });
  }
}

const base = { stories: perplexity(teacher, data.stories), wiki: perplexity(teacher, data.wiki) };
console.log('');
console.log('| plan (shared←anchor) | attn FLOPs removed @512 | stories ppl | Δ vs teacher | wikitext-2 ppl | Δ vs teacher |');
console.log('|---|---:|---:|---:|---:|---:|');
console.log(`| teacher | 0% | ${base.stories.toFixed(3)} | | ${base.wiki.toFixed(2)} | |`);
for (const p of plans) {
  const plan = makePlan('manual', p.groups);
  const student = buildStudent(teacher, plan);
  const c = sharingCost(teacher.config, plan, 512);
  const s = perplexity(student, data.stories);
  const w = perplexity(student, data.wiki);
  const pct = (x: number, y: number) => `${x >= y ? '+' : ''}${((100 * (x - y)) / y).toFixed(1)}%`;
  console.log(`| ${p.label} | ${((100 * c.attentionFlops.removed) / c.attentionFlops.total).toFixed(1)}% | ${s.toFixed(3)} | ${pct(s, base.stories)} | ${w.toFixed(2)} | ${pct(w, base.wiki)} |`);
}
