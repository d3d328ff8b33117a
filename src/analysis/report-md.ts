/** `report.md` of an analysis: what was measured, the layer and head similarities, depth, criticality, plans, search. */
import path from 'node:path';
import type { AnalysisResult } from './analyze.js';
import { planNames } from './analyze.js';
import type { StrategyName } from './strategies.js';
import { depthSummary, movesText } from './summaries.js';
import type { Trial } from './search.js';

/** The files an analysis report consists of. */
export interface ReportFiles {
  dir: string;
  similarityJson: string;
  reportMd: string;
  plans: Partial<Record<StrategyName, string>>;
  /** Chart name → its SVG and PNG paths. */
  charts: Record<string, { svg: string; png: string }>;
}

/** Largest L·H for which the (L·H)×(L·H) head-pair heatmap is drawn (SVG size grows with its square). */
export const MAX_HEAD_PAIR_CHART = 128;

const fmt = (v: number | null | undefined, d = 3) => (v === null || v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(d));
const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
const mib = (b: number) => `${(b / 1048576).toFixed(2)} MiB`;

function img(files: ReportFiles, name: string, alt: string): string {
  const c = files.charts[name];
  if (!c) return '';
  return `![${alt}](${path.basename(c.png)})\n\n([SVG](${path.basename(c.svg)}))\n`;
}

/** The text of `report.md`. */
export function reportMarkdown(result: AnalysisResult, files: ReportFiles, command?: string): string {
  return [
    ...header(result, command), ...similaritySection(result, files), ...depthSection(result), ...criticalitySection(result, files),
    ...plansSection(result, files), ...searchSection(result, files), ...streamingSection(result),
  ].join('\n');
}

function header(result: AnalysisResult, command?: string): string[] {
  const m = result.model;
  const d = result.data;
  const t = result.timing;
  return [
    `# Attention-similarity analysis: ${m.name}`, '',
    ...(command ? ['```sh', command, '```', ''] : []),
    '| | |', '|---|---|',
    `| model | ${m.name}: ${m.numLayers} layers, ${m.numHeads} query heads (${m.numKvHeads} KV heads), head dim ${m.headDim}, hidden ${m.hiddenSize}, ${(m.parameters / 1e6).toFixed(3)} M parameters |`,
    `| data | ${d.description}${d.documentsRead !== undefined ? ` (${d.documentsRead} document(s) read, sequences spread over ${d.documentsSampled ?? '?'})` : ''} |`,
    `| calibration | ${d.sequences} sequences × ${d.seqLen} tokens = ${d.tokens} tokens${d.requestedSeqs ? ` (asked for ${d.requestedSeqs}; the data ran out)` : ''} |`,
    `| teacher loss | ${fmt(result.teacherLoss.mean)} ± ${fmt(result.teacherLoss.std)} nats/token (mean ± std across sequences) |`,
    `| compute | ${result.settings.backend} backend, ${result.settings.threads} thread(s); similarity ${(t.similarityMs / 1000).toFixed(1)} s (${t.similarityTokensPerSecond.toFixed(0)} tokens/s), criticality ${(t.criticalityMs / 1000).toFixed(1)} s, search ${(t.searchMs / 1000).toFixed(1)} s |`,
    '',
    '## What is measured', '',
    'For every pair of layers and every query head, over the post-softmax attention matrices of each calibration sequence:',
    '- **cosine**: cosine similarity of the two flattened causal attention matrices (1 = the layers attend identically);',
    '- **JS**: Jensen–Shannon divergence between corresponding rows (each query position\'s attention distribution), natural',
    '  log, averaged over rows (0 = identical, ln 2 ≈ 0.693 = disjoint).',
    '',
    'Head-averaged values are means over the query heads (with grouped-query attention, query heads are compared one to one).',
    'Each sequence gives one value per statistic; tables show the mean (± std) across sequences.',
    '',
  ];
}

function similaritySection(result: AnalysisResult, files: ReportFiles): string[] {
  const s = result.similarity;
  const L = s.numLayers;
  const cos = (i: number, j: number) => s.cosine.mean[i * L + j];
  const js = (i: number, j: number) => s.js.mean[i * L + j];
  const pairs: [number, number][] = [];
  for (let i = 0; i < L; i++) for (let j = i + 1; j < L; j++) pairs.push([i, j]);
  pairs.sort((a, b) => cos(b[0], b[1]) - cos(a[0], a[1]));
  const out = ['## Layer × layer', '', img(files, 'cosine', 'cosine heatmap'), img(files, 'js', 'JS heatmap')];
  out.push('Most similar layer pairs:', '', '| layers | cosine (± std) | JS (nats) |', '|---|---:|---:|');
  for (const [i, j] of pairs.slice(0, Math.min(8, pairs.length))) out.push(`| L${i} – L${j} | ${fmt(cos(i, j))} ± ${fmt(s.cosine.std[i * L + j])} | ${fmt(js(i, j), 4)} |`);
  out.push('', 'Adjacent layers:', '', '| layer | cosine with previous | JS with previous |', '|---|---:|---:|');
  for (let l = 1; l < L; l++) out.push(`| L${l} | ${fmt(cos(l - 1, l))} | ${fmt(js(l - 1, l), 4)} |`);
  out.push('', '## Per head', '', img(files, 'cosine-per-head', 'cosine per head'), img(files, 'js-per-head', 'JS per head'));
  if (files.charts['head-pairs']) out.push(img(files, 'head-pairs', 'head-pair cosine'));
  else if (s.headPairs) out.push(`(The ${L * s.numHeads}×${L * s.numHeads} head-pair matrix is in similarity.json; it is drawn only up to ${MAX_HEAD_PAIR_CHART}×${MAX_HEAD_PAIR_CHART}.)`, '');
  return out;
}

function depthSection(result: AnalysisResult): string[] {
  const d = depthSummary(result);
  const out = [
    '## Depth: are inner layers more alike?', '',
    `Mean cosine of adjacent inner layers (neither the first nor the last): **${fmt(d.adjacentInner)}**; of the outer pairs (L0–L1 and the last two): **${fmt(d.adjacentOuter)}**.`,
    `Mean cosine of the pairs within the first, middle and last third of the layers: ${fmt(d.thirds.first)}, ${fmt(d.thirds.middle)}, ${fmt(d.thirds.last)}.`,
    '',
    '| layer | most similar earlier layer | cosine | cosine with heads re-aligned |', '|---|---:|---:|---:|',
    ...d.layers.filter((x) => x.bestEarlier !== null).map((x) => `| L${x.layer} | L${x.bestEarlier} | ${fmt(x.cosine)} | ${fmt(x.alignedCosine)} |`),
    '',
  ];
  if (Number.isFinite(d.cosineVsMeasuredCost ?? NaN)) {
    out.push(`Spearman correlation between a single share's cosine and its measured loss rise: ${fmt(d.cosineVsMeasuredCost, 2)} (negative: more alike is cheaper; near 0 or positive: similarity does not predict cost, so the plan is chosen by measurement).`, '');
  }
  return out;
}

function criticalitySection(result: AnalysisResult, files: ReportFiles): string[] {
  const crit = result.criticality;
  if (!crit) return ['## Criticality', '', 'Not measured (`--criticality-seqs 0`); the budget plan ranks layers by 1 − cosine instead.', ''];
  return [
    '## Criticality', '',
    `Loss rise (nats/token, on ${crit.sequences} sequence(s); teacher ${fmt(crit.baseLoss)}) when a layer's attention is replaced by its most similar earlier layer's:`, '',
    img(files, 'criticality', 'criticality'),
    '| layer | anchor | cosine | student loss | Δ loss |', '|---|---:|---:|---:|---:|',
    ...crit.layers.map((c) => `| L${c.layer} | ${c.anchor === null ? '–' : `L${c.anchor}`} | ${fmt(c.similarity)} | ${fmt(c.loss)} | ${fmt(c.delta, 4)} |`),
    '',
  ];
}

function plansSection(result: AnalysisResult, files: ReportFiles): string[] {
  const names = planNames(result);
  const out = [
    '## Proposed plans', '',
    'Shared layers reuse their anchor\'s attention probabilities (with `search`, query heads re-aligned to the most similar anchor heads) and drop their own q/k projections and K cache. `echoatt`, `span` and `budget` are similarity/criticality heuristics; `search` measures the students themselves.', '',
    '| strategy | groups (anchor ← shared) | mean cosine | Δ loss (predicted; measured for search) | attention FLOPs | K cache | attention params | file |',
    '|---|---|---:|---:|---:|---:|---:|---|',
  ];
  for (const k of names) {
    const o = result.plans[k]!;
    const groups = o.plan.groups.length ? o.plan.groups.map((g) => `L${g.anchor} ← ${g.shared.map((x) => `L${x}`).join(', ')}`).join('; ') : '(nothing shared)';
    out.push(`| ${k} | ${groups} | ${fmt(o.meanSimilarity)} | ${o.predictedLossDelta === null ? 'n/a' : fmt(o.predictedLossDelta, 4)} | ${pct(o.removed.flops)} | ${pct(o.removed.kcache)} | ${pct(o.removed.params)} | [${path.basename(files.plans[k]!)}](${path.basename(files.plans[k]!)}) |`);
  }
  out.push('', ...names.map((k) => `- **${k}**: ${result.plans[k]!.why}.`), '');
  out.push(
    `Removed fractions follow the cost model of \`sharing/cost.ts\` at T = ${result.data.seqLen} (FLOPs: q/k projections + QKᵀ + softmax of the shared layers over all attention-block FLOPs).`,
    '', 'Apply a plan (and edit it first if you like — it is plain JSON):', '', '```sh',
    `echoatt share --plan ${path.basename(files.plans.search ?? files.plans.echoatt!)} --out student`, '```', '',
  );
  return out;
}

function trialRow(t: Trial): string {
  return `| ${t.step} | ${movesText(t)} | ${fmt(t.loss, 4)} | ${fmt(t.delta, 4)} | ${pct(t.removed.flops)} | ${pct(t.removed.kcache)} |`;
}

function searchSection(result: AnalysisResult, files: ReportFiles): string[] {
  const r = result.search;
  if (!r) return [];
  const head = ['| shared layers | plan (layer←anchor[anchor head per query head]) | loss | Δ loss | attention FLOPs | K cache |', '|---:|---|---:|---:|---:|---:|'];
  return [
    '## Measured plan search', '',
    `Calibration loss of the training-free students themselves (teacher ${fmt(r.teacherLoss, 4)} nats/token on ${r.cost.sequences} × ${r.cost.tokens / r.cost.sequences} tokens), ` +
      `heads ${r.align === 'cosine' ? 're-aligned by cosine' : 'not re-aligned'}: every single share measured, then a beam search adding one share at a time. ` +
      `Cost: ${r.cost.evaluations} plans measured, ${fmt(r.cost.forwardPasses, 1)} forward passes, ${fmt(r.cost.seconds, 1)} s.`, '',
    img(files, 'search-curve', 'search curve'), img(files, 'single-shares', 'single-share costs'),
    `**Chosen**${r.budget !== null ? ` (lowest measured loss removing ≥ ${pct(r.budget)} of ${r.resource})` : ''}:`, '', ...head, trialRow(r.chosen), '',
    'Runners-up (measured):', '', ...head, ...r.runnersUp.map(trialRow), '',
    'Best plan found for each number of shared layers (the curve):', '', ...head, ...r.path.map(trialRow), '',
    'Cheapest single shares:', '', ...head, ...r.singles.slice(0, 10).map(trialRow), '',
  ];
}

function streamingSection(result: AnalysisResult): string[] {
  const mem = result.similarity.memory;
  return [
    '## Streaming', '',
    `Attention maps are held for at most ${mem.layersPerBlock} layer(s) of one sequence at a time (plus the layer being compared): bound ${mib(mem.boundBytes)}, peak held ${mib(mem.peakHeldBytes)}; ${mem.passes} forward pass(es) per sequence. Memory does not grow with the number of sequences.`,
    '',
  ];
}
