/**
 * Write an {@link AnalysisResult} to a folder:
 * - `similarity.json` — format `echoatt-similarity` v1: model, data, settings, every matrix (mean and std across
 *   sequences), teacher loss, criticality, the memory actually held, and the plans' summaries;
 * - `plan-<strategy>.json` — one sharing plan per strategy, in the plan format of `sharing/plan.ts` (the `note`
 *   says how it was chosen), ready for `echoatt share --plan`;
 * - heatmaps (`.svg` + `.png`): `cosine`, `js`, `cosine-per-head`, `js-per-head`, `head-pairs` (when L·H ≤ 128)
 *   and a `criticality` bar chart;
 * - `report.md` — the images and a short explanation of the proposals.
 * Every file is written atomically.
 */
import path from 'node:path';
import fs from 'node:fs';
import { barChart, heatmap, heatmapGrid, writeChart, writeFileAtomic } from '../report/plot.js';
import { toRows, type MatrixStat } from './similarity.js';
import { STRATEGIES, type StrategyName, type StrategyOutcome } from './strategies.js';
import type { AnalysisResult } from './analyze.js';

/** Largest L·H for which the (L·H)×(L·H) head-pair heatmap is drawn (SVG size grows with its square). */
export const MAX_HEAD_PAIR_CHART = 128;

export interface ReportFiles {
  dir: string;
  similarityJson: string;
  reportMd: string;
  plans: Record<StrategyName, string>;
  /** Chart name → its SVG and PNG paths. */
  charts: Record<string, { svg: string; png: string }>;
}

/** A compact summary (what `echoatt analyze --json` prints). */
export interface AnalysisSummary {
  model: AnalysisResult['model'];
  data: AnalysisResult['data'];
  teacherLoss: number;
  /** Head-averaged mean cosine, L × L rows. */
  cosine: number[][];
  /** Head-averaged mean JS divergence (nats), L × L rows. */
  js: number[][];
  criticality: { layer: number; anchor: number | null; delta: number | null }[] | null;
  plans: Record<StrategyName, {
    groups: { anchor: number; shared: number[] }[];
    meanSimilarity: number | null;
    predictedLossDelta: number | null;
    removed: StrategyOutcome['removed'];
    why: string;
  }>;
  memory: AnalysisResult['similarity']['memory'];
  timing: AnalysisResult['timing'];
  files?: ReportFiles;
}

function r6(v: number | null): number | null {
  return v === null || !Number.isFinite(v) ? null : Number(v.toPrecision(6));
}

function matrixJson(m: MatrixStat) {
  return { mean: toRows(m.mean, m.n), std: toRows(m.std, m.n) };
}

function planSummary(o: StrategyOutcome) {
  return {
    groups: o.plan.groups.map((g) => ({ anchor: g.anchor, shared: [...g.shared] })),
    meanSimilarity: r6(o.meanSimilarity),
    predictedLossDelta: r6(o.predictedLossDelta),
    removed: { flops: r6(o.removed.flops)!, kcache: r6(o.removed.kcache)!, params: r6(o.removed.params)! },
    why: o.why,
  };
}

export function analysisSummary(result: AnalysisResult, files?: ReportFiles): AnalysisSummary {
  const s = result.similarity;
  return {
    model: result.model,
    data: result.data,
    teacherLoss: r6(result.teacherLoss.mean)!,
    cosine: toRows(s.cosine.mean, s.numLayers),
    js: toRows(s.js.mean, s.numLayers),
    criticality: result.criticality ? result.criticality.layers.map((c) => ({ layer: c.layer, anchor: c.anchor, delta: r6(c.delta) })) : null,
    plans: Object.fromEntries(STRATEGIES.map((k) => [k, planSummary(result.plans[k])])) as AnalysisSummary['plans'],
    memory: s.memory,
    timing: result.timing,
    ...(files ? { files } : {}),
  };
}

/** The content of `similarity.json`. */
export function similarityJson(result: AnalysisResult): unknown {
  const s = result.similarity;
  return {
    format: 'echoatt-similarity',
    version: 1,
    metrics: {
      cosine: 'cosine similarity of the flattened causal post-softmax attention matrices, per query head; head-averaged = mean over heads',
      js: 'Jensen–Shannon divergence between corresponding attention rows (natural log, range [0, ln 2]), mean over query rows; head-averaged = mean over heads',
      headPairs: 'cosine between head a of layer i and head b of layer j; index l*numHeads + h',
      spread: 'mean and sample std across calibration sequences (one value per sequence)',
    },
    model: result.model,
    data: result.data,
    settings: result.settings,
    teacherLoss: { mean: r6(result.teacherLoss.mean), std: r6(result.teacherLoss.std) },
    cosine: matrixJson(s.cosine),
    js: matrixJson(s.js),
    perHead: {
      cosine: s.cosinePerHead.map(matrixJson),
      js: s.jsPerHead.map(matrixJson),
    },
    ...(s.headPairs ? { headPairs: { n: s.headPairs.n, ...matrixJson(s.headPairs) } } : {}),
    criticality: result.criticality,
    plans: Object.fromEntries(STRATEGIES.map((k) => [k, planSummary(result.plans[k])])),
    memory: s.memory,
    timing: result.timing,
  };
}

const fmt = (v: number | null | undefined, d = 3) => (v === null || v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(d));
const pct = (v: number) => `${(100 * v).toFixed(1)}%`;

function mib(b: number): string {
  return `${(b / 1048576).toFixed(2)} MiB`;
}

/** Write every artefact of the analysis into `outDir` (created if needed). */
export async function writeReport(result: AnalysisResult, outDir: string, opts: { command?: string } = {}): Promise<ReportFiles> {
  fs.mkdirSync(outDir, { recursive: true });
  const s = result.similarity;
  const L = s.numLayers;
  const H = s.numHeads;
  const layers = Array.from({ length: L }, (_, i) => `L${i}`);
  const sub = `${result.model.name} · ${result.data.sequences}×${result.data.seqLen} tokens`;
  const charts: ReportFiles['charts'] = {};
  const put = async (name: string, chart: Promise<Parameters<typeof writeChart>[0]>) => {
    charts[name] = writeChart(await chart, path.join(outDir, name));
  };
  await put('cosine', heatmap({ rows: L, cols: L, data: s.cosine.mean }, layers, 'Attention cosine similarity (head-averaged)', {
    domain: [0, 1], subtitle: sub, colorTitle: 'cosine',
  }));
  await put('js', heatmap({ rows: L, cols: L, data: s.js.mean }, layers, 'Jensen–Shannon divergence (head-averaged, nats)', {
    domain: [0, Math.LN2], reverse: true, subtitle: `${sub} · 0 = identical, ln 2 = disjoint`, colorTitle: 'JS', format: '.3f',
  }));
  const heads = Array.from({ length: H }, (_, h) => `head ${h}`);
  await put('cosine-per-head', heatmapGrid(s.cosinePerHead.map((m) => ({ rows: L, cols: L, data: m.mean })), layers, heads, 'Cosine similarity per query head', {
    domain: [0, 1], subtitle: sub, colorTitle: 'cosine',
  }));
  await put('js-per-head', heatmapGrid(s.jsPerHead.map((m) => ({ rows: L, cols: L, data: m.mean })), layers, heads, 'JS divergence per query head (nats)', {
    domain: [0, Math.LN2], reverse: true, subtitle: sub, colorTitle: 'JS',
  }));
  const drawPairs = s.headPairs !== undefined && L * H <= MAX_HEAD_PAIR_CHART;
  if (drawPairs && s.headPairs) {
    const labels = Array.from({ length: L * H }, (_, x) => `L${Math.floor(x / H)}h${x % H}`);
    await put('head-pairs', heatmap({ rows: L * H, cols: L * H, data: s.headPairs.mean }, labels, 'Cosine similarity between every pair of heads', {
      domain: [0, 1], subtitle: `${sub} · rows/columns: layer-major (L·H + h)`, colorTitle: 'cosine', annotate: false,
    }));
  }
  const crit = result.criticality;
  if (crit) {
    const measured = crit.layers.filter((c) => c.delta !== null);
    await put('criticality', barChart(measured.map((c) => ({ label: `L${c.layer}←L${c.anchor}`, value: c.delta! })), {
      title: 'Criticality: loss rise when a layer reuses its most similar earlier layer',
      subtitle: `${result.model.name} · ${crit.sequences}×${result.data.seqLen} tokens · teacher loss ${fmt(crit.baseLoss)} nats/token`,
      yTitle: 'Δ loss (nats/token)', xTitle: 'layer ← anchor',
    }));
  }

  const plans = {} as Record<StrategyName, string>;
  for (const k of STRATEGIES) {
    const file = path.join(outDir, `plan-${k}.json`);
    writeFileAtomic(file, `${JSON.stringify(result.plans[k].plan, null, 2)}\n`);
    plans[k] = file;
  }
  const similarityFile = path.join(outDir, 'similarity.json');
  writeFileAtomic(similarityFile, `${JSON.stringify(similarityJson(result), null, 1)}\n`);
  const reportFile = path.join(outDir, 'report.md');
  const files: ReportFiles = { dir: outDir, similarityJson: similarityFile, reportMd: reportFile, plans, charts };
  writeFileAtomic(reportFile, reportMarkdown(result, files, opts.command));
  return files;
}

function img(files: ReportFiles, name: string, alt: string): string {
  const c = files.charts[name];
  if (!c) return '';
  return `![${alt}](${path.basename(c.png)})\n\n([SVG](${path.basename(c.svg)}))\n`;
}

/** The text of `report.md`. */
export function reportMarkdown(result: AnalysisResult, files: ReportFiles, command?: string): string {
  const s = result.similarity;
  const L = s.numLayers;
  const H = s.numHeads;
  const cos = (i: number, j: number) => s.cosine.mean[i * L + j];
  const cosSd = (i: number, j: number) => s.cosine.std[i * L + j];
  const js = (i: number, j: number) => s.js.mean[i * L + j];
  const out: string[] = [];
  const m = result.model;
  out.push(`# Attention-similarity analysis: ${m.name}`, '');
  if (command) out.push('```sh', command, '```', '');
  out.push(
    `| | |`, `|---|---|`,
    `| model | ${m.name}: ${m.numLayers} layers, ${m.numHeads} query heads (${m.numKvHeads} KV heads), head dim ${m.headDim}, hidden ${m.hiddenSize}, ${(m.parameters / 1e6).toFixed(3)} M parameters |`,
    `| data | ${result.data.description} (${result.data.documentsRead ?? '?'} document(s) read) |`,
    `| calibration | ${result.data.sequences} sequences × ${result.data.seqLen} tokens = ${result.data.tokens} tokens${result.data.requestedSeqs ? ` (asked for ${result.data.requestedSeqs}; the data ran out)` : ''} |`,
    `| teacher loss | ${fmt(result.teacherLoss.mean)} ± ${fmt(result.teacherLoss.std)} nats/token (mean ± std across sequences) |`,
    `| compute | ${result.settings.backend} backend, ${result.settings.threads} thread(s); similarity ${(result.timing.similarityMs / 1000).toFixed(1)} s (${result.timing.similarityTokensPerSecond.toFixed(0)} tokens/s), criticality ${(result.timing.criticalityMs / 1000).toFixed(1)} s |`,
    '',
  );
  out.push(
    '## What is measured', '',
    'For every pair of layers and every query head, over the post-softmax attention matrices of each calibration sequence:',
    '- **cosine**: cosine similarity of the two flattened causal attention matrices (1 = the layers attend identically);',
    '- **JS**: Jensen–Shannon divergence between corresponding rows (each query position\'s attention distribution), natural',
    '  log, averaged over rows (0 = identical, ln 2 ≈ 0.693 = disjoint).',
    '',
    'Head-averaged values are means over the query heads (with grouped-query attention, query heads are compared one to one).',
    'Each sequence gives one value per statistic; tables show the mean (± std) across sequences.',
    '',
  );
  out.push('## Layer × layer', '', img(files, 'cosine', 'cosine heatmap'), img(files, 'js', 'JS heatmap'));
  const pairs: [number, number][] = [];
  for (let i = 0; i < L; i++) for (let j = i + 1; j < L; j++) pairs.push([i, j]);
  pairs.sort((a, b) => cos(b[0], b[1]) - cos(a[0], a[1]));
  out.push('Most similar layer pairs:', '', '| layers | cosine (± std) | JS (nats) |', '|---|---:|---:|');
  for (const [i, j] of pairs.slice(0, Math.min(8, pairs.length))) out.push(`| L${i} – L${j} | ${fmt(cos(i, j))} ± ${fmt(cosSd(i, j))} | ${fmt(js(i, j), 4)} |`);
  out.push('');
  out.push('Adjacent layers (the candidates for sharing with the layer just before):', '', '| layer | cosine with previous | JS with previous |', '|---|---:|---:|');
  for (let l = 1; l < L; l++) out.push(`| L${l} | ${fmt(cos(l - 1, l))} | ${fmt(js(l - 1, l), 4)} |`);
  out.push('');
  out.push('## Per head', '', img(files, 'cosine-per-head', 'cosine per head'), img(files, 'js-per-head', 'JS per head'));
  if (files.charts['head-pairs']) out.push(img(files, 'head-pairs', 'head-pair cosine'));
  else if (s.headPairs) out.push(`(The ${L * H}×${L * H} head-pair matrix is in similarity.json; it is drawn only up to ${MAX_HEAD_PAIR_CHART}×${MAX_HEAD_PAIR_CHART}.)`, '');
  const crit = result.criticality;
  out.push('## Criticality', '');
  if (crit) {
    out.push(
      `Loss rise (nats/token, on ${crit.sequences} sequence(s); teacher ${fmt(crit.baseLoss)}) when a layer's attention is replaced by its most similar earlier layer's:`, '',
      img(files, 'criticality', 'criticality'),
      '| layer | anchor | cosine | student loss | Δ loss |', '|---|---:|---:|---:|---:|',
    );
    for (const c of crit.layers) out.push(`| L${c.layer} | ${c.anchor === null ? '–' : `L${c.anchor}`} | ${fmt(c.similarity)} | ${fmt(c.loss)} | ${fmt(c.delta, 4)} |`);
    out.push('');
  } else {
    out.push('Not measured (`--criticality-seqs 0`); the budget plan ranks layers by 1 − cosine instead.', '');
  }
  out.push('## Proposed plans', '', 'Every plan keeps the first and the last layer; shared layers reuse their anchor\'s attention probabilities and drop their own q/k projections and K cache.', '');
  out.push('| strategy | groups (anchor ← shared) | mean cosine | predicted Δ loss | attention FLOPs | K cache | attention params | file |', '|---|---|---:|---:|---:|---:|---:|---|');
  for (const k of STRATEGIES) {
    const o = result.plans[k];
    const groups = o.plan.groups.length ? o.plan.groups.map((g) => `L${g.anchor} ← ${g.shared.map((x) => `L${x}`).join(', ')}`).join('; ') : '(nothing shared)';
    out.push(`| ${k} | ${groups} | ${fmt(o.meanSimilarity)} | ${o.predictedLossDelta === null ? 'n/a' : fmt(o.predictedLossDelta, 4)} | ${pct(o.removed.flops)} | ${pct(o.removed.kcache)} | ${pct(o.removed.params)} | [${path.basename(files.plans[k])}](${path.basename(files.plans[k])}) |`);
  }
  out.push('');
  for (const k of STRATEGIES) out.push(`- **${k}**: ${result.plans[k].why}.`);
  out.push(
    '',
    '"Predicted Δ loss" adds, over shared layers, the measured criticality plus the cosine lost where a layer reuses a less similar anchor than the one it was measured with (a rough additive proxy; measure the student to be sure).',
    `Removed fractions follow the cost model of \`sharing/cost.ts\` at T = ${result.data.seqLen} (FLOPs: q/k projections + QKᵀ + softmax of the shared layers over all attention-block FLOPs).`,
    '',
    'Apply a plan (and edit it first if you like — it is plain JSON):',
    '',
    '```sh',
    `echoatt share --plan ${path.basename(files.plans.echoatt)} --out student`,
    '```',
    '',
  );
  const mem = s.memory;
  out.push(
    '## Streaming', '',
    `Attention maps are held for at most ${mem.layersPerBlock} layer(s) of one sequence at a time (plus the layer being compared): bound ${mib(mem.boundBytes)}, peak held ${mib(mem.peakHeldBytes)}; ${mem.passes} forward pass(es) per sequence. Memory does not grow with the number of sequences.`,
    '',
  );
  return out.join('\n');
}
