/**
 * DirectShare (arXiv 2402.11819): share attention weights across layers at head granularity, choosing the pairs by
 * how alike their weights are — no training.
 *
 * 1. Every unit (a K/V group with its query heads; one head for MHA — see `models/head-map.ts`) of every layer
 *    `l ≥ 1` is compared with every unit of every earlier layer by the cosine similarity of its flattened weights:
 *    strategy `qk` (default) concatenates `[W_q ; W_k]`, and `q`, `k`, `v`, `qkv` select other parts.
 * 2. Each unit keeps its best match. All units are ranked by that score (one global ranking, not a per-layer
 *    threshold) and the top `round(share_rate × L × U)` are shared.
 * 3. Shared weights are stored once, so nothing may chain: where the plain ranking would share a unit with a unit
 *    that is itself shared, {@link selectHeadSharing} uses the best match among the units still stored (details
 *    there); the map records the cosine with the weights really used.
 *
 * The result is a model whose config records the head map (layers of kind `headShared`): each shared unit reads the stored copy's q/k/v rows and o_proj
 * columns (views, no copy). **Head-wise sharing saves weight memory only: every head still computes its own keys and
 * values, so the KV cache and the FLOPs are unchanged.**
 *
 * @example
 * ```ts
 * const { model, report } = directShare(teacher, { shareRate: 0.3, strategy: 'qk' });
 * console.log(formatHeadShareReport(report));
 * saveHeadSharedModel('out/ds30', model, checkpoint.tokenizerPath);
 * ```
 */
import path from 'node:path';
import type { LlamaModel } from '../models/llama.js';
import { requireF32 } from '../tensor/weight.js';
import { makeHeadMap, type HeadMap, type HeadShareEntry } from '../models/head-map.js';
import { withHeadMap } from '../models/surgery.js';
import type { LlamaConfig } from '../models/config.js';
import { OptionError, HeadMapError } from '../errors.js';

export { type HeadMap, type HeadShareEntry };

export const HEAD_SHARE_STRATEGIES = ['q', 'k', 'v', 'qk', 'qkv'] as const;
export type HeadShareStrategy = (typeof HEAD_SHARE_STRATEGIES)[number];

/** The weight-memory-only caveat, printed by the CLI and carried in every report. */
export const HEAD_SHARE_SAVES_NOTE =
  'head-wise sharing saves weight memory only: every head still computes its own queries, keys and values, ' +
  'so the KV cache and the FLOPs are unchanged';

export interface DirectShareOptions {
  /** Fraction of all `L × U` units to share, in `[0, 1)`; at most `(L−1)/L` (layer 0 has nothing earlier). */
  shareRate: number;
  /** Which weights the similarity compares (default `qk`). */
  strategy?: HeadShareStrategy;
}

/** Options after validation, with the number of units they ask for. */
export interface ResolvedHeadShareOptions {
  shareRate: number;
  strategy: HeadShareStrategy;
  /** `round(shareRate × L × U)`. */
  count: number;
}

/**
 * Validate DirectShare options against a model's shape; every problem is an {@link OptionError} naming the option
 * (the CLI flag spelling). Accepts only real numbers for the rate: a string such as `'0.3'` is rejected, not coerced.
 */
export function validateHeadShareOptions(opts: { shareRate?: unknown; strategy?: unknown }, cfg: Pick<LlamaConfig, 'numLayers' | 'numKvHeads' | 'attention'>): ResolvedHeadShareOptions {
  const r = opts.shareRate;
  if (typeof r !== 'number') throw new OptionError('--share-rate', `expected a number in [0, 1), got ${r === undefined ? 'nothing' : `${typeof r} ${JSON.stringify(r)}`}`);
  if (!Number.isFinite(r) || r < 0 || r >= 1) throw new OptionError('--share-rate', `expected a number in [0, 1), got ${r}`);
  const strategy = opts.strategy ?? 'qk';
  if (typeof strategy !== 'string' || !(HEAD_SHARE_STRATEGIES as readonly string[]).includes(strategy)) {
    throw new OptionError('--strategy', `expected one of ${HEAD_SHARE_STRATEGIES.join(', ')}, got ${JSON.stringify(strategy)}`);
  }
  const L = cfg.numLayers;
  const U = cfg.numKvHeads;
  const count = Math.round(r * L * U);
  const max = shareableUnits(cfg);
  if (count > max) {
    throw new OptionError(
      '--share-rate',
      `${r} × ${L} layers × ${U} units asks for ${count} shared units, but only ${max} can be shared (layer 0 has no earlier layer` +
        `${cfg.attention.some((k) => k.kind === 'echo') ? '; layers that echo an anchor have no q/k to share' : ''}); use at most ${(max / (L * U)).toFixed(4)}`,
    );
  }
  return { shareRate: r, strategy: strategy as HeadShareStrategy, count };
}

/** Layers whose units can take part in head sharing: those computing their own attention (echo and dropped layers have no q/k). */
function eligibleLayers(cfg: Pick<LlamaConfig, 'attention'>): number[] {
  return cfg.attention.flatMap((k, l) => (k.kind === 'echo' || k.kind === 'dropped' ? [] : [l]));
}

/** Units that have an eligible earlier layer to share with. */
function shareableUnits(cfg: Pick<LlamaConfig, 'numKvHeads' | 'attention'>): number {
  return Math.max(0, eligibleLayers(cfg).length - 1) * cfg.numKvHeads;
}

function refuseHeadShared(model: LlamaModel, where: string): void {
  if (model.headMap) throw new HeadMapError(where, 'the model is already head-shared; start from its original weights');
}

/** Cosine similarities between units; see {@link headSimilarity}. */
export interface HeadSimilarity {
  strategy: HeadShareStrategy;
  numLayers: number;
  /** Units per layer (K/V groups). */
  units: number;
  /** `(L·U) × (L·U)` row-major: entry `[(l·U+g), (l'·U+g')]` for `l' < l` is the cosine; other entries NaN. */
  cosine: Float32Array;
  /** For every unit of layers ≥ 1 (layer-major), its best earlier match. */
  best: HeadShareEntry[];
}

/**
 * Cosine similarity of every unit of every layer with every unit of every earlier layer, and each unit's best match.
 * Layers that echo an anchor's attention (a layer-wise student) have no q/k and take no part: their entries stay NaN.
 * Computed with one small GEMM per layer pair and weight part, straight from the weight arrays (no feature copy):
 * the rows of one unit are contiguous in q_proj (`G·D` rows) and in k_proj / v_proj (`D` rows). Biases are not
 * compared. RoPE row order does not matter (it permutes rows the same way in every head).
 */
export function headSimilarity(model: LlamaModel, strategy: HeadShareStrategy = 'qk'): HeadSimilarity {
  refuseHeadShared(model, 'headSimilarity');
  if (!(HEAD_SHARE_STRATEGIES as readonly string[]).includes(strategy)) throw new OptionError('--strategy', `expected one of ${HEAD_SHARE_STRATEGIES.join(', ')}, got ${JSON.stringify(strategy)}`);
  const c = model.config;
  const be = model.backend;
  const { numLayers: L, numKvHeads: U, numHeads: H, headDim: D, hiddenSize: dim } = c;
  const G = H / U;
  const parts = [...strategy] as ('q' | 'k' | 'v')[];
  const eligible = eligibleLayers(c);
  const arr = (l: number, p: 'q' | 'k' | 'v') => {
    const lp = model.params.layers[l];
    const w = p === 'q' ? lp.wq : p === 'k' ? lp.wk : lp.wv;
    if (!w) throw new HeadMapError('headSimilarity', `layer ${l} has no ${p}_proj`);
    return requireF32(w, 'head similarity');
  };
  const unitLen = (p: 'q' | 'k' | 'v') => (p === 'q' ? G : 1) * D * dim;
  // Squared norms per unit (f64).
  const norm2 = new Float64Array(L * U);
  for (const l of eligible) {
    for (const p of parts) {
      const w = arr(l, p);
      const len = unitLen(p);
      for (let g = 0; g < U; g++) {
        let s = 0;
        for (let i = g * len; i < (g + 1) * len; i++) s += w[i] * w[i];
        norm2[l * U + g] += s;
      }
    }
  }
  const N = L * U;
  const cosine = new Float32Array(N * N).fill(NaN);
  const dots = new Float32Array(U * U);
  const best: HeadShareEntry[] = [];
  for (const l of eligible.slice(1)) {
    const bestScore = new Float64Array(U).fill(-Infinity);
    const bestSrc = Array.from({ length: U }, () => [0, 0]);
    for (const s of eligible.filter((e) => e < l)) {
      parts.forEach((p, i) => {
        const len = unitLen(p);
        be.gemm({ m: U, n: U, k: len, a: arr(l, p), b: arr(s, p), transB: true, c: dots, beta: i === 0 ? 0 : 1 });
      });
      for (let g = 0; g < U; g++) {
        for (let h = 0; h < U; h++) {
          const na = norm2[l * U + g];
          const nb = norm2[s * U + h];
          let cs: number;
          if (na === 0 && nb === 0) cs = 1;
          else if (na === 0 || nb === 0) cs = 0;
          else cs = Math.max(-1, Math.min(1, dots[g * U + h] / Math.sqrt(na * nb)));
          cosine[(l * U + g) * N + s * U + h] = cs;
          if (cs > bestScore[g]) {
            bestScore[g] = cs;
            bestSrc[g] = [s, h];
          }
        }
      }
    }
    for (let g = 0; g < U; g++) best.push({ layer: l, group: g, source_layer: bestSrc[g][0], source_group: bestSrc[g][1], cosine: bestScore[g] });
  }
  return { strategy, numLayers: L, units: U, cosine, best };
}

/** The shared units chosen from a similarity, and how the choice went. */
export interface HeadSelection {
  map: HeadMap;
  /** Best-match score of every candidate unit (layers ≥ 1), with whether it was shared. */
  candidates: { layer: number; group: number; cosine: number; shared: boolean }[];
  /** Lowest best-match score among the shared units (NaN when none). */
  threshold: number;
  /** Shared units whose best match was itself shared and that now point at that match's stored copy. */
  redirected: number;
}

/**
 * Global ranking: repeatedly share the unit with the highest cosine to a still-stored unit of an earlier layer, until
 * `count` units are shared (ties: earlier layer, lower group first). Without conflicts this is exactly "rank every
 * unit by its best match and share the top `count`". It differs only where the plain ranking would chain: a unit
 * whose best match has already been shared takes its best match among the units still stored, and a unit that
 * already serves as some unit's source is not shared itself (its weights must stay stored) — unless no other unit is
 * left, in which case it is shared too and its dependents are redirected to its own source (counted in `redirected`).
 * Every recorded cosine is the similarity with the weights actually used.
 */
export function selectHeadSharing(sim: HeadSimilarity, count: number, cfg: Pick<LlamaConfig, 'numLayers' | 'numHeads' | 'numKvHeads'>): HeadSelection {
  const U = sim.units;
  const N = sim.numLayers * U;
  const nCand = sim.best.length;
  if (!Number.isInteger(count) || count < 0 || count > nCand) throw new OptionError('count', `expected an integer in [0, ${nCand}], got ${count}`);
  const cos = (u: number, s: number) => sim.cosine[u * N + s];
  const sourceOf = new Int32Array(N).fill(-1); // shared unit → stored source
  const dependents = new Map<number, number[]>(); // stored source → shared units using it
  const bestS = new Int32Array(N).fill(-1);
  const bestOf = (u: number): number => {
    if (bestS[u] >= 0 && sourceOf[bestS[u]] < 0) return bestS[u];
    const lim = Math.floor(u / U) * U; // units of earlier layers: ids below the layer's first
    let b = -1;
    for (let s = 0; s < lim; s++) if (sourceOf[s] < 0 && !Number.isNaN(cos(u, s)) && (b < 0 || cos(u, s) > cos(u, b))) b = s;
    return (bestS[u] = b);
  };
  let redirected = 0;
  let strict = true;
  for (let k = 0; k < count; ) {
    let pick = -1;
    for (let u = U; u < N; u++) {
      if (sourceOf[u] >= 0 || (strict && dependents.has(u))) continue;
      const b = bestOf(u);
      if (b >= 0 && (pick < 0 || cos(u, b) > cos(pick, bestOf(pick)))) pick = u;
    }
    if (pick < 0) {
      if (!strict) break; // cannot happen: layer-0 units are always stored
      strict = false;
      continue;
    }
    const src = bestOf(pick);
    sourceOf[pick] = src;
    const deps = dependents.get(pick) ?? [];
    dependents.delete(pick);
    for (const d of deps) sourceOf[d] = src;
    redirected += deps.length;
    dependents.set(src, [...(dependents.get(src) ?? []), pick, ...deps]);
    k++;
  }
  const shared: HeadShareEntry[] = [];
  for (let u = U; u < N; u++) {
    if (sourceOf[u] < 0) continue;
    const s = sourceOf[u];
    shared.push({ layer: Math.floor(u / U), group: u % U, source_layer: Math.floor(s / U), source_group: s % U, cosine: cos(u, s) });
  }
  const map = makeHeadMap(sim.strategy, shared, cfg);
  const usedCos = shared.map((e) => e.cosine!);
  return {
    map,
    candidates: sim.best.map((e) => ({ layer: e.layer, group: e.group, cosine: e.cosine!, shared: sourceOf[e.layer * U + e.group] >= 0 })),
    threshold: usedCos.length ? Math.min(...usedCos) : NaN,
    redirected,
  };
}

/** What a head-wise sharing did; see {@link formatHeadShareReport}. */
export interface HeadShareReport {
  method: 'DirectShare' | 'PostShare';
  strategy: HeadShareStrategy;
  shareRate: number;
  unit: 'kv_group';
  queryHeadsPerUnit: number;
  units: { total: number; shareable: number; shared: number; redirected: number };
  params: { before: number; after: number; saved: number; attentionBefore: number; attentionAfter: number };
  /** Weight bytes saved: as stored by echoatt (f32), and at the original checkpoint's dtype when known. */
  bytesSaved: { f32: number; atDtype?: { dtype: string; bytes: number } };
  /** `sourceCounts[l][s]`: shared units of layer `l` whose weights are stored in layer `s`. */
  sourceCounts: number[][];
  /** Best-match cosine of every candidate unit (layers ≥ 1) and whether it was shared. */
  candidates: { layer: number; group: number; cosine: number; shared: boolean }[];
  threshold: number;
  note: string;
}

const DTYPE_BYTES: Record<string, number> = { float32: 4, float16: 2, bfloat16: 2 };

/** Summarise a sharing of `original` into `shared`. */
export function headShareReport(
  original: LlamaModel, shared: LlamaModel, selection: HeadSelection, opts: { shareRate: number; strategy: HeadShareStrategy; method?: 'DirectShare' | 'PostShare' },
): HeadShareReport {
  const c = original.config;
  const { numLayers: L, numKvHeads: U, numHeads: H } = c;
  const attn = (m: LlamaModel) => m.params.layers.reduce((s, lp) => s + [lp.wq, lp.wk, lp.wv, lp.wo, lp.bq, lp.bk, lp.bv].reduce((t, a) => t + (a?.length ?? 0), 0), 0);
  const map = shared.headMap;
  if (!map) throw new HeadMapError('headShareReport', 'the shared model has no head map');
  const before = original.parameterCount();
  const after = shared.parameterCount();
  const sourceCounts = Array.from({ length: L }, () => new Array<number>(L).fill(0));
  for (const e of map.shared) sourceCounts[e.layer][e.source_layer]++;
  const dtypeBytes = c.torchDtype ? DTYPE_BYTES[c.torchDtype] : undefined;
  return {
    method: opts.method ?? 'DirectShare',
    strategy: opts.strategy,
    shareRate: opts.shareRate,
    unit: 'kv_group',
    queryHeadsPerUnit: H / U,
    units: { total: L * U, shareable: shareableUnits(c), shared: map.shared.length, redirected: selection.redirected },
    params: { before, after, saved: before - after, attentionBefore: attn(original), attentionAfter: attn(shared) },
    bytesSaved: { f32: 4 * (before - after), ...(dtypeBytes ? { atDtype: { dtype: c.torchDtype!, bytes: dtypeBytes * (before - after) } } : {}) },
    sourceCounts,
    candidates: selection.candidates,
    threshold: selection.threshold,
    note: HEAD_SHARE_SAVES_NOTE,
  };
}

/** Result of {@link directShare}. */
export interface DirectShareResult {
  model: LlamaModel;
  map: HeadMap;
  similarity: HeadSimilarity;
  report: HeadShareReport;
}

/** DirectShare: similarity, global ranking, and the head-shared model (the original is left untouched). */
export function directShare(original: LlamaModel, opts: DirectShareOptions): DirectShareResult {
  refuseHeadShared(original, 'directShare');
  const o = validateHeadShareOptions(opts, original.config);
  const similarity = headSimilarity(original, o.strategy);
  const selection = selectHeadSharing(similarity, o.count, original.config);
  const model = withHeadMap(original, selection.map);
  const report = headShareReport(original, model, selection, { shareRate: o.shareRate, strategy: o.strategy });
  return { model, map: selection.map, similarity, report };
}

/** Plain-text summary, including the weight-memory-only caveat. */
export function formatHeadShareReport(r: HeadShareReport): string {
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(b < 2 ** 20 ? 3 : 1)} MiB`;
  const pct = (a: number, b: number) => (b ? `${((100 * a) / b).toFixed(1)}%` : '0%');
  const lines = [
    `${r.method} (strategy ${r.strategy}, share rate ${r.shareRate}): shared ${r.units.shared} of ${r.units.total} units ` +
      `(${r.units.shareable} shareable; a unit is one K/V head with its ${r.queryHeadsPerUnit} query head${r.queryHeadsPerUnit > 1 ? 's' : ''})`,
    `  parameters: ${r.params.before} -> ${r.params.after} (saved ${r.params.saved}, ${pct(r.params.saved, r.params.before)} of the model, ` +
      `${pct(r.params.attentionBefore - r.params.attentionAfter, r.params.attentionBefore)} of attention weights)`,
    `  weight bytes saved: ${mib(r.bytesSaved.f32)} as f32${r.bytesSaved.atDtype ? `, ${mib(r.bytesSaved.atDtype.bytes)} at ${r.bytesSaved.atDtype.dtype}` : ''}`,
    `  lowest shared best-match cosine: ${Number.isNaN(r.threshold) ? 'n/a' : r.threshold.toFixed(4)}` +
      (r.units.redirected ? `; ${r.units.redirected} unit(s) redirected to their match's stored copy` : ''),
    '  where shared units take their weights from (row: layer, columns: source layers):',
    ...r.sourceCounts.flatMap((row, l) => (row.some((x) => x) ? [`    layer ${l}: ${row.map((x, s) => (x ? `L${s}×${x}` : '')).filter(Boolean).join(' ')}`] : [])),
    `  note: ${r.note}`,
  ];
  return lines.join('\n');
}

/**
 * Write the report's figures into `dir`: `headshare-sources` (layer × source-layer heat map of shared units) and
 * `headshare-similarity` (histogram of every candidate's best-match cosine, shared vs kept), each as SVG + PNG, plus
 * `headshare-report.json`. Returns the written paths.
 */
export async function writeHeadShareFigures(r: HeadShareReport, dir: string): Promise<string[]> {
  const { heatmap, barChart, writeChart, writeFileAtomic } = await import('../report/plot.js');
  const L = r.sourceCounts.length;
  const labels = Array.from({ length: L }, (_, i) => `L${i}`);
  const written: string[] = [];
  const sub = `${r.method}, strategy ${r.strategy}, share rate ${r.shareRate}: ${r.units.shared}/${r.units.total} units`;
  const hm = await heatmap(r.sourceCounts, { x: labels, y: labels }, 'Where shared heads take their weights from', {
    xTitle: 'source layer (stored copy)', yTitle: 'shared layer', colorTitle: 'units', format: 'd', scheme: 'blues', subtitle: sub,
  });
  const a = writeChart(hm, path.join(dir, 'headshare-sources'));
  written.push(a.svg, a.png);
  const bins = 20;
  const lo = Math.min(0, ...r.candidates.map((x) => x.cosine));
  const width = (1 - lo) / bins;
  const bars: { label: string; value: number; group: string }[] = [];
  for (const group of ['kept', 'shared'] as const) {
    const counts = new Array<number>(bins).fill(0);
    for (const x of r.candidates) if (x.shared === (group === 'shared')) counts[Math.min(bins - 1, Math.max(0, Math.floor((x.cosine - lo) / width)))]++;
    counts.forEach((v, i) => bars.push({ label: (lo + (i + 0.5) * width).toFixed(2), value: v, group }));
  }
  const bc = await barChart(bars, {
    title: 'Best-match cosine similarity of every candidate unit', xTitle: 'cosine (bin centre)', yTitle: 'units',
    subtitle: `${sub}; threshold ${Number.isNaN(r.threshold) ? 'n/a' : r.threshold.toFixed(3)}`,
  });
  const b = writeChart(bc, path.join(dir, 'headshare-similarity'));
  written.push(b.svg, b.png);
  const json = path.join(dir, 'headshare-report.json');
  writeFileAtomic(json, `${JSON.stringify(r, null, 2)}\n`);
  written.push(json);
  return written;
}
