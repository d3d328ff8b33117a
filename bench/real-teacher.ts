/**
 * `npm run bench:real-teacher` — EchoAtt on a real 16-layer model (gutenberg16 from ../shared): analysis at depth,
 * head-aligned vs unaligned sharing, the measured plan search against the similarity heuristic, teacher /
 * training-free / distilled held-out perplexity at 4, 8 and 12 shared layers, and the students' speed, in one run.
 *
 * Quality is token perplexity on `--windows` windows of 256 tokens spread over heldout.txt (the 8 books the model
 * never trained on); every plan is chosen on calibration text (the teacher's own samples) and distilled on
 * train-sample.txt (training books), never on the held-out books. Phases cache their results under
 * bench/.cache/real-teacher/ (a rerun continues; distillation resumes from its checkpoints); `--fresh` starts over.
 *
 * Flags: --windows N (64) --calib N (16) --steps N or N,N,N per --ks (300,600,1000) --batch B --seq-len T --lr X --ks 4,8,12
 *        --quick (a smoke run: few windows, tiny search, few steps) --fresh
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadModel } from '../src/models/load.js';
import { sampleSequences } from '../src/models/generate.js';
import { withPlan } from '../src/models/surgery.js';
import { parsePlan, type SharingPlan } from '../src/models/sharing-plan.js';
import { getBackend, simdLevel } from '../src/backend/index.js';
import { analyze } from '../src/analysis/analyze.js';
import { depthSummary } from '../src/analysis/summaries.js';
import { searchPlans, type SearchResult } from '../src/analysis/search.js';
import { alignPlan } from '../src/analysis/alignment.js';
import { echoattStrategy } from '../src/analysis/strategies.js';
import { sharingCost } from '../src/sharing/cost.js';
import { heldOutPerplexity, heldOutWindows } from '../src/eval/heldout.js';
import { compareSpeed, speedRatio } from '../src/eval/speed.js';
import { distill } from '../src/distill/distill.js';
import { SHARED_DIR } from '../src/paths.js';

const args = process.argv.slice(2);
const flag = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const quick = args.includes('--quick');
const W = Number(flag('windows', quick ? '8' : '64'));
const CALIB = Number(flag('calib', quick ? '4' : '16'));
const KS = flag('ks', '4,8,12').split(',').map(Number);
/** Distillation steps per student (one number for all, or one per entry of --ks). */
const STEP_LIST = flag('steps', quick ? '4' : '300,600,1000').split(',').map(Number);
const stepsFor = (k: number) => STEP_LIST.length === KS.length ? STEP_LIST[KS.indexOf(k)] : STEP_LIST[0];
const BATCH = Number(flag('batch', '8'));
const SEQ = Number(flag('seq-len', '128'));
const LR = Number(flag('lr', '1e-3'));
const DIR = path.resolve('bench/.cache', quick ? 'real-teacher-quick' : 'real-teacher');
if (args.includes('--fresh')) fs.rmSync(DIR, { recursive: true, force: true });
fs.mkdirSync(DIR, { recursive: true });

const MODEL = path.join(SHARED_DIR, 'models/gutenberg16');
const be = getBackend();
const { model: teacher, tokenizer, checkpoint } = loadModel(path.join(MODEL, 'model.bin'), { backend: be });
const L = teacher.config.numLayers;

/** Run `f` once; its JSON result is kept in the cache folder. */
async function phase<T>(name: string, f: () => Promise<T> | T): Promise<T> {
  const file = path.join(DIR, `${name}.json`);
  if (fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
  const t0 = performance.now();
  const r = await f();
  fs.writeFileSync(file, JSON.stringify(r));
  process.stderr.write(`[real-teacher] ${name}: ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
  return r;
}

// The books are one paragraph per line, tokenized line by line as the model was trained.
const held = await heldOutWindows(tokenizer, path.join(MODEL, 'heldout.txt'), { windows: W, seqLen: 256, encoding: 'lines' });
const calib = sampleSequences(teacher, { count: CALIB, length: 256, bosId: tokenizer.bosId!, seed: 1 });
const ppl = (plan: SharingPlan | null) => heldOutPerplexity(plan ? withPlan(teacher, plan) : teacher, held).perplexity;
const teacherPpl = await phase('teacher', () => ppl(null));
const rel = (p: number) => `${p >= teacherPpl ? '+' : ''}${(100 * (p / teacherPpl - 1)).toFixed(1)}%`;
const plansText = (p: SharingPlan) => p.groups.flatMap((g) => g.shared.map((s) => `${s}←${g.anchor}`)).sort((a, b) => parseInt(a) - parseInt(b)).join(' ');

// 1. Analysis at depth (calibration: the teacher's own samples).
const analysis = await analyze(teacher, tokenizer, { data: { sequences: calib, description: `${CALIB} teacher samples` }, criticalitySeqs: 0, search: false });
const depth = depthSummary(analysis);

// 2. Curves: searched (aligned / unaligned) and the similarity heuristic (EchoAtt's best blocks), k = 1 … L−1.
type Curve = { k: number; plan: SharingPlan; calibDelta: number | null; ppl: number }[];
const searchCurve = (align: 'none' | 'cosine') => phase(`search-${align}`, () => {
  const r = searchPlans(teacher, calib, { align, headPairs: analysis.similarity.headPairs, maxShared: quick ? 3 : L - 1, beam: quick ? 1 : 2, candidates: quick ? 3 : 8 });
  return { ...r, curve: r.path.map((t) => ({ k: t.step, plan: t.plan, calibDelta: t.delta, ppl: ppl(t.plan) })) };
});
const searched = { none: await searchCurve('none'), cosine: await searchCurve('cosine') };
const heuristic = await phase('heuristic', () => {
  const input = { config: teacher.config, seqLen: 256, similarity: analysis.similarity.cosine.mean };
  const out: { unaligned: Curve; aligned: Curve } = { unaligned: [], aligned: [] };
  for (let k = 1; k <= (quick ? 3 : L - 2); k++) {
    const plan = echoattStrategy(input, { k }).plan;
    const aligned = alignPlan(plan, analysis.similarity.headPairs!, teacher.config.numHeads);
    out.unaligned.push({ k, plan, calibDelta: null, ppl: ppl(plan) });
    out.aligned.push({ k, plan: aligned, calibDelta: null, ppl: ppl(aligned) });
  }
  return out;
});

// 3. Distillation of the searched, aligned plans at k = 4, 8, 12 on the training books.
const distilled = new Map<number, number>();
const distillInfo = new Map<number, { tokens: number; tokensPerSec: number }>();
const students = new Map<number, ReturnType<typeof withPlan>>();
for (const k of KS) {
  const t = searched.cosine.curve.find((c) => c.k === k);
  if (!t) continue;
  const plan = parsePlan(t.plan, `k=${k} plan`);
  const r = await phase(`distill-${k}`, async () => {
    const res = await distill({
      teacher, tokenizer: checkpoint.tokenizerPath!, plan, data: path.join(MODEL, 'train-sample.txt'), textEncoding: 'lines', spreadData: true, steps: stepsFor(k), batch: BATCH, seqLen: SEQ, lr: LR,
      loss: { alpha: 0, beta: 1, temperature: 1, gamma: 0 }, train: 'groups', out: path.join(DIR, `distill-${k}`), resume: fs.existsSync(path.join(DIR, `distill-${k}`, 'checkpoint.safetensors')),
      plot: false, handleSigint: true, onProgress: (p) => p.phase === 'train' && p.step % 50 === 0 && process.stderr.write(`  k=${k} step ${p.step}/${p.steps} loss ${p.loss.toFixed(4)} ${p.tokensPerSec.toFixed(0)} tok/s\n`),
    });
    if (res.interrupted) process.exit(130);
    return { studentDir: res.studentDir, tokensPerSec: res.tokensPerSec, tokens: res.step * BATCH * SEQ, minutes: res.tokensPerSec ? (res.step * BATCH * SEQ) / res.tokensPerSec / 60 : 0, ppl: heldOutPerplexity(res.student, held).perplexity };
  });
  distilled.set(k, r.ppl);
  distillInfo.set(k, r);
  students.set(k, loadModel(r.studentDir, { backend: be }).model);
}

// 4. Speed: the distilled students against the teacher, side by side.
const speed = compareSpeed([{ name: 'teacher', model: teacher }, ...[...students].map(([k, m]) => ({ name: `${k}/${L} student`, model: m }))], { prefill: 256, decodeFrom: 128, decodeTokens: 128, rounds: quick ? 1 : 15 });

// Tables.
const out: string[] = [];
const p = (...lines: string[]) => out.push(...(lines.length ? lines : ['']));
p(`gutenberg16 (${L} layers, ${teacher.config.numHeads} heads / ${teacher.config.numKvHeads} KV heads); ${os.cpus()[0]?.model ?? 'cpu'}; backend ${be.name} (SIMD ${simdLevel(be)}), ${be.threads} thread(s)`);
p(`held-out: ${W} windows × 256 tokens spread over heldout.txt; calibration: ${CALIB} teacher samples × 256; distillation: train-sample.txt (line by line, windows spread over all 20 books), ${KS.map((k) => `${stepsFor(k)} steps at k=${k}`).join(', ')}, ${BATCH} × ${SEQ} tokens per step, lr ${LR}, KL(T=1), shared layers and anchors trained`);
p(`teacher held-out perplexity ${teacherPpl.toFixed(2)}`);
p('', '### Analysis: are inner layers more alike?', '');
p(`adjacent inner layers: mean cosine ${depth.adjacentInner}; outer pairs (L0–L1, L14–L15): ${depth.adjacentOuter}; thirds (first / middle / last): ${depth.thirds.first} / ${depth.thirds.middle} / ${depth.thirds.last}`);
p(`Spearman(cosine of a single share, its measured cost) = ${depthSummary({ ...analysis, search: searched.none as unknown as SearchResult }).cosineVsMeasuredCost}`);
p('', '| layer | most similar earlier | cosine | best head-aligned cosine | cheapest measured anchor | Δ loss |', '|---:|---:|---:|---:|---:|---:|');
for (const x of depth.layers.slice(1)) {
  const best = searched.none.singles.filter((t) => t.moves[0].layer === x.layer).sort((a, b) => a.delta - b.delta)[0];
  p(`| ${x.layer} | ${x.bestEarlier} | ${x.cosine} | ${x.alignedCosine} | ${best?.moves[0].anchor ?? '–'} | ${best ? best.delta.toFixed(4) : '–'} |`);
}
p('', '### The curve: shared layers → held-out perplexity (training-free)', '');
p('| k | heuristic | heuristic + aligned | searched | searched + aligned | searched + aligned, distilled |', '|---:|---:|---:|---:|---:|---:|');
for (let k = 1; k < L; k++) {
  const cell = (c: Curve | undefined) => { const x = c?.find((y) => y.k === k); return x ? `${x.ppl.toFixed(2)} (${rel(x.ppl)})` : '–'; };
  const d = distilled.get(k);
  p(`| ${k} | ${cell(heuristic.unaligned)} | ${cell(heuristic.aligned)} | ${cell(searched.none.curve)} | ${cell(searched.cosine.curve)} | ${d ? `${d.toFixed(2)} (${rel(d)})` : ''} |`);
}
p('', '### Aligned vs unaligned on the same plans (the unaligned search\'s plans)', '');
p('| k | plan | unaligned | aligned |', '|---:|---|---:|---:|');
for (const c of searched.none.curve.filter((x) => [2, 4, 6, 8, 10, 12].includes(x.k))) {
  const a = await phase(`aligned-same-${c.k}`, () => ppl(alignPlan(parsePlan(c.plan, 'plan'), analysis.similarity.headPairs!, teacher.config.numHeads)));
  p(`| ${c.k} | ${plansText(c.plan)} | ${c.ppl.toFixed(2)} (${rel(c.ppl)}) | ${a.toFixed(2)} (${rel(a)}) |`);
}
for (const [name, r] of [['unaligned', searched.none], ['aligned', searched.cosine]] as const) {
  p('', `### Search ranking (${name}): cost ${r.cost.evaluations} plans, ${r.cost.forwardPasses.toFixed(1)} forward passes of ${r.cost.sequences}×${r.cost.tokens / r.cost.sequences} tokens, ${r.cost.seconds.toFixed(0)} s`, '');
  p('| k | rank | plan | calibration Δ loss |', '|---:|---:|---|---:|');
  for (const k of KS) for (const [i, t] of (r.byStep[k - 1] ?? []).slice(0, 3).entries()) p(`| ${k} | ${i + 1} | ${plansText(t.plan)} | ${t.delta.toFixed(4)} |`);
}
p('', '### Teacher, training-free and distilled students (searched, aligned plans)', '');
p('| shared layers | attention FLOPs removed | KV removed | params removed | teacher | training-free | distilled | distillation tokens |', '|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const k of KS) {
  const c = searched.cosine.curve.find((x) => x.k === k);
  if (!c) continue;
  const cost = sharingCost(teacher.config, parsePlan(c.plan, 'plan'), 256);
  const d = distilled.get(k);
  p(`| ${k}/${L} | ${(100 * cost.attentionFlops.removed / cost.attentionFlops.total).toFixed(1)}% | ${(100 * cost.kvCacheBytesPerToken.removedK / cost.kvCacheBytesPerToken.total).toFixed(1)}% | ${(100 * cost.params.removed / cost.params.total).toFixed(1)}% | ${teacherPpl.toFixed(2)} | ${c.ppl.toFixed(2)} (${rel(c.ppl)}) | ${d ? `${d.toFixed(2)} (${rel(d)})` : '–'} | ${distillInfo.get(k)?.tokens ?? '–'} (${(distillInfo.get(k)?.tokensPerSec ?? 0).toFixed(0)} tok/s) |`);
}
p('', `### Speed (prefill ${speed.settings.prefill} tokens; decode ${speed.settings.decodeTokens} tokens after ${speed.settings.decodeFrom}; ${speed.settings.rounds} alternating rounds)`, '');
p('tok/s: the fastest round; vs teacher: median of the per-round ratios (each round runs all models back to back), min–max in brackets.', '');
p('| model | prefill tok/s | decode tok/s | prefill vs teacher | decode vs teacher |', '|---|---:|---:|---:|---:|');
const fmtR = (r: { median: number; min: number; max: number }) => `${r.median.toFixed(3)}× (${r.min.toFixed(2)}–${r.max.toFixed(2)})`;
speed.models.forEach((m, i) => {
  const r = speedRatio(speed, i);
  p(`| ${m.name} | ${m.prefillTokensPerSecond.toFixed(0)} | ${m.decodeTokensPerSecond.toFixed(1)} | ${fmtR(r.prefill)} | ${fmtR(r.decode)} |`);
});
process.stdout.write(`${out.join('\n')}\n`);
fs.writeFileSync(path.join(DIR, 'tables.md'), `${out.join('\n')}\n`);
