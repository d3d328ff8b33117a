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
import { barChart, heatmap, heatmapGrid, lineChart, writeChart, writeFileAtomic } from '../report/plot.js';
import { toRows, type MatrixStat } from './similarity.js';
import { type StrategyName, type StrategyOutcome } from './strategies.js';
import { planNames, type AnalysisResult } from './analyze.js';
import { reportMarkdown } from './report-md.js';
import { depthSummary, searchJson } from './summaries.js';

import { MAX_HEAD_PAIR_CHART, type ReportFiles } from './report-md.js';

export { MAX_HEAD_PAIR_CHART, type ReportFiles };


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
  plans: Partial<Record<StrategyName, {
    groups: { anchor: number; shared: number[]; heads?: Record<string, readonly number[]> }[];
    meanSimilarity: number | null;
    predictedLossDelta: number | null;
    removed: StrategyOutcome['removed'];
    why: string;
  }>>;
  /** Inner layers against outer ones, and each layer's best match (see `summaries.ts`). */
  depth: ReturnType<typeof depthSummary>;
  search: ReturnType<typeof searchJson> | null;
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
    groups: o.plan.groups.map((g) => ({ anchor: g.anchor, shared: [...g.shared], ...(g.heads ? { heads: g.heads } : {}) })),
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
    plans: Object.fromEntries(planNames(result).map((k) => [k, planSummary(result.plans[k]!)])) as AnalysisSummary['plans'],
    depth: depthSummary(result),
    search: result.search ? searchJson(result.search) : null,
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
    plans: Object.fromEntries(planNames(result).map((k) => [k, planSummary(result.plans[k]!)])),
    depth: depthSummary(result),
    search: result.search ? searchJson(result.search) : null,
    memory: s.memory,
    timing: result.timing,
  };
}

const fmt = (v: number | null | undefined, d = 3) => (v === null || v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(d));

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

  await searchCharts(result, sub, put);
  const plans: ReportFiles['plans'] = {};
  for (const k of planNames(result)) {
    const file = path.join(outDir, `plan-${k}.json`);
    writeFileAtomic(file, `${JSON.stringify(result.plans[k]!.plan, null, 2)}\n`);
    plans[k] = file;
  }
  const similarityFile = path.join(outDir, 'similarity.json');
  writeFileAtomic(similarityFile, `${JSON.stringify(similarityJson(result), null, 1)}\n`);
  const reportFile = path.join(outDir, 'report.md');
  const files: ReportFiles = { dir: outDir, similarityJson: similarityFile, reportMd: reportFile, plans, charts };
  writeFileAtomic(reportFile, reportMarkdown(result, files, opts.command));
  return files;
}

/** The search's curve (k shared layers → Δ loss) and the matrix of single-share costs. */
async function searchCharts(result: AnalysisResult, sub: string, put: (name: string, chart: Promise<Parameters<typeof writeChart>[0]>) => Promise<void>): Promise<void> {
  const r = result.search;
  if (!r) return;
  const L = result.model.numLayers;
  await put('search-curve', lineChart([{ name: 'searched plan', x: r.path.map((t) => t.step), y: r.path.map((t) => t.delta) }], {
    title: 'Measured search: calibration loss rise by number of shared layers', subtitle: `${sub} · ${r.align === 'cosine' ? 'heads aligned' : 'heads unaligned'}`,
    xTitle: 'shared layers', yTitle: 'Δ loss (nats/token)', xInteger: true,
  }));
  const m = new Float64Array(L * L).fill(NaN);
  for (const t of r.singles) m[t.moves[0].layer * L + t.moves[0].anchor] = t.delta;
  const layers = Array.from({ length: L }, (_, i) => `L${i}`);
  await put('single-shares', heatmap({ rows: L, cols: L, data: m }, layers, 'Measured cost of sharing one layer (row) with one anchor (column)', {
    subtitle: `${sub} · Δ loss, nats/token`, colorTitle: 'Δ loss', reverse: true, format: '.3f',
  }));
}
