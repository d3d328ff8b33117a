/**
 * Plan strategies: turn similarity (and criticality) statistics into a {@link SharingPlan}.
 *
 * All strategies share only INNER layers (never layer 0 and never the last layer), give every shared layer an anchor
 * that comes before it and computes its own attention, and return plans checked with `validatePlan`.
 * "Similarity" below is the head-averaged mean cosine `sim(a, l)` between the anchor's and the layer's attention.
 *
 * - `echoatt` (EchoAtt): contiguous blocks of inner layers; a block reuses the layer just before it (its anchor).
 *   With a `threshold`, layers are scanned in order and a layer joins the open block while `sim(anchor, l) ≥
 *   threshold` (a block opens at `l` with anchor `l − 1` when `l − 1` is not shared and `sim(l − 1, l) ≥ threshold`).
 *   With `k`, exactly `k` layers are shared in the blocks that maximise the total `Σ sim(anchor, l)` (exact dynamic
 *   programme over block boundaries).
 * - `span` (Shared Attention): ONE contiguous span `[s, e]` reusing layer `s − 1`, scored by the mean of
 *   `sim(s − 1, l)` over the span: with `length`, the best span of that length; otherwise the longest span whose mean
 *   reaches `threshold` (ties: higher mean).
 * - `budget`: share the fewest, least harmful layers that remove at least a target fraction of a resource (see
 *   {@link budgetFraction}). A plan's predicted loss is the sum of its shared layers' {@link predictedLoss}
 *   (criticality, i.e. the measured loss rise when the layer reuses its most similar earlier layer, plus a penalty
 *   when it must use a less similar anchor; `1 − similarity` when criticality was not measured). Greedy: add the
 *   inner layer that keeps the predicted loss lowest (every shared layer re-anchored to its best unshared earlier
 *   layer) until the target is met.
 */
import type { LlamaConfig } from '../models/config.js';
import { makePlan, validatePlan, type PlanGroup, type SharingPlan } from '../models/sharing-plan.js';
import { attentionParams, sharingCost, type SharingCost } from '../sharing/cost.js';
import { OptionError } from '../errors.js';

/** The heuristics of this file, and `search` (measured; `search.ts`). */
export type StrategyName = 'echoatt' | 'span' | 'budget' | 'search';
export const STRATEGIES: readonly StrategyName[] = ['echoatt', 'span', 'budget', 'search'];
export type HeuristicName = Exclude<StrategyName, 'search'>;

/** Resource a `budget` plan removes a fraction of. */
export type BudgetResource = 'flops' | 'kcache' | 'params';

/** What the strategies read. */
export interface StrategyInput {
  config: LlamaConfig;
  /** Context length for the FLOP count (the calibration T). */
  seqLen: number;
  /** Head-averaged mean cosine, `L × L` row-major. */
  similarity: Float64Array;
  /** Per layer: loss rise when it reuses `criticalAnchor[l]` (null where not measured). */
  criticality?: readonly (number | null)[];
  /** Per layer: the anchor criticality was measured with (most similar earlier layer). */
  criticalAnchor?: readonly (number | null)[];
}

export interface ResourceFractions {
  flops: number;
  kcache: number;
  params: number;
}

export interface StrategyOutcome {
  strategy: StrategyName;
  plan: SharingPlan;
  /** Mean `sim(anchor, l)` over shared layers (null if none). */
  meanSimilarity: number | null;
  /** Sum over shared layers of {@link predictedLoss} (null when criticality was not measured). */
  predictedLossDelta: number | null;
  /** Fractions removed, see {@link budgetFraction}. */
  removed: ResourceFractions;
  cost: SharingCost;
  /** One-line explanation of how the plan was chosen. */
  why: string;
}

export interface EchoattOptions {
  threshold?: number;
  k?: number;
}
export interface SpanOptions {
  threshold?: number;
  length?: number;
}
export interface BudgetOptions {
  fraction: number;
  resource?: BudgetResource;
}

export const DEFAULT_THRESHOLD = 0.5;

/**
 * The cost model of the `budget` strategy, on top of `sharing/cost.ts` (a shared layer drops its q_proj and k_proj
 * parameters, its K cache, and its q/k projection, QKᵀ and softmax FLOPs):
 * - `flops`: removed / total attention-block FLOPs per token at context `seqLen` (q, k, v, o projections, QKᵀ,
 *   softmax, P·V of all layers);
 * - `kcache`: removed / total K-cache bytes (the V cache stays; for a uniform model this is shared layers / L);
 * - `params`: removed / total attention projection parameters ({@link attentionParams}).
 */
export function budgetFraction(cost: SharingCost, cfg: LlamaConfig): ResourceFractions {
  const kTotal = cost.kvCacheBytesPerToken.total / 2;
  return {
    flops: cost.attentionFlops.total ? cost.attentionFlops.removed / cost.attentionFlops.total : 0,
    kcache: kTotal ? cost.kvCacheBytesPerToken.removedK / kTotal : 0,
    params: cost.params.removed / attentionParams(cfg),
  };
}

function groupsFromAnchors(anchorOf: Map<number, number>): PlanGroup[] {
  const by = new Map<number, number[]>();
  for (const [s, a] of [...anchorOf].sort((x, y) => x[0] - y[0])) {
    if (!by.has(a)) by.set(a, []);
    by.get(a)!.push(s);
  }
  return [...by].sort((x, y) => x[0] - y[0]).map(([anchor, shared]) => ({ anchor, shared }));
}

function outcome(input: StrategyInput, strategy: StrategyName, groups: PlanGroup[], why: string): StrategyOutcome {
  const L = input.config.numLayers;
  const plan = makePlan(strategy, groups, why);
  validatePlan(plan, L, `${strategy} plan`);
  let sum = 0;
  let n = 0;
  let predicted = 0;
  for (const g of plan.groups) {
    for (const s of g.shared) {
      sum += input.similarity[g.anchor * L + s];
      n++;
      predicted += predictedLoss(input, s, g.anchor) ?? 0;
    }
  }
  const cost = sharingCost(input.config, plan, input.seqLen);
  return {
    strategy,
    plan,
    meanSimilarity: n ? sum / n : null,
    predictedLossDelta: input.criticality ? predicted : null,
    removed: budgetFraction(cost, input.config),
    cost,
    why,
  };
}

function checkSimilarity(input: StrategyInput): number {
  const L = input.config.numLayers;
  if (input.similarity.length !== L * L) throw new OptionError('similarity', `expected ${L}×${L} values, got ${input.similarity.length}`);
  return L;
}

/** EchoAtt blocks by threshold (default {@link DEFAULT_THRESHOLD}) or the best `k`. */
export function echoattStrategy(input: StrategyInput, opts: EchoattOptions = {}): StrategyOutcome {
  const L = checkSimilarity(input);
  const sim = (a: number, b: number) => input.similarity[a * L + b];
  const inner = Math.max(0, L - 2);
  if (opts.k !== undefined) {
    const k = opts.k;
    if (!(Number.isInteger(k) && k >= 0 && k <= inner)) throw new OptionError('k', `expected an integer in [0, ${inner}] (inner layers), got ${k}`);
    // f[b][c]: best score with layer b not shared (an anchor candidate) and c layers shared among 1..b-1.
    const NEG = -Infinity;
    const f = Array.from({ length: L }, () => new Float64Array(k + 1).fill(NEG));
    const from = Array.from({ length: L }, () => new Int32Array(k + 1).fill(-1));
    f[0][0] = 0;
    for (let b = 1; b < L; b++) {
      for (let a = 0; a < b; a++) {
        const m = b - a - 1; // layers a+1..b-1 shared with anchor a
        let gain = 0;
        for (let s = a + 1; s < b; s++) gain += sim(a, s);
        for (let c = 0; c + m <= k; c++) {
          if (f[a][c] === NEG) continue;
          const v = f[a][c] + gain;
          if (v > f[b][c + m] + 1e-15) {
            f[b][c + m] = v;
            from[b][c + m] = a;
          }
        }
      }
    }
    const groups: PlanGroup[] = [];
    let b = L - 1;
    let c = k;
    while (b > 0) {
      const a = from[b][c];
      const shared = Array.from({ length: b - a - 1 }, (_, i) => a + 1 + i);
      if (shared.length) groups.unshift({ anchor: a, shared });
      c -= shared.length;
      b = a;
    }
    const total = f[L - 1][k];
    return outcome(input, 'echoatt', groups, `the ${k} inner layer(s) whose blocks have the highest total cosine with their anchor (${k ? (total / k).toFixed(3) : '-'} on average)`);
  }
  const thr = opts.threshold ?? DEFAULT_THRESHOLD;
  const groups: { anchor: number; shared: number[] }[] = [];
  let cur: { anchor: number; shared: number[] } | null = null;
  for (let l = 1; l <= L - 2; l++) {
    if (cur) {
      if (sim(cur.anchor, l) >= thr) {
        cur.shared.push(l);
        continue;
      }
      groups.push(cur);
      cur = null;
      continue; // l computes its own attention (its predecessor is shared, so it cannot open a block)
    }
    if (sim(l - 1, l) >= thr) cur = { anchor: l - 1, shared: [l] };
  }
  if (cur) groups.push(cur);
  let why = `contiguous blocks of inner layers whose attention has cosine ≥ ${thr} with the layer before the block`;
  if (!groups.length && L > 2) {
    let best = -Infinity;
    for (let l = 1; l <= L - 2; l++) best = Math.max(best, sim(l - 1, l));
    why = `no inner layer has cosine ≥ ${thr} with the layer before it (highest: ${best.toFixed(3)}); lower the threshold or ask for k layers`;
  }
  return outcome(input, 'echoatt', groups, why);
}

/** Shared Attention: one span reusing the layer just before it. */
export function spanStrategy(input: StrategyInput, opts: SpanOptions = {}): StrategyOutcome {
  const L = checkSimilarity(input);
  const sim = (a: number, b: number) => input.similarity[a * L + b];
  const inner = Math.max(0, L - 2);
  const mean = (s: number, e: number) => {
    let t = 0;
    for (let l = s; l <= e; l++) t += sim(s - 1, l);
    return t / (e - s + 1);
  };
  if (opts.length !== undefined) {
    const len = opts.length;
    if (!(Number.isInteger(len) && len >= 0 && len <= inner)) throw new OptionError('length', `expected an integer in [0, ${inner}] (inner layers), got ${len}`);
    if (len === 0) return outcome(input, 'span', [], 'span of length 0');
    let best = 1;
    let bestMean = -Infinity;
    for (let s = 1; s + len - 1 <= L - 2; s++) {
      const m = mean(s, s + len - 1);
      if (m > bestMean + 1e-15) {
        bestMean = m;
        best = s;
      }
    }
    const shared = Array.from({ length: len }, (_, i) => best + i);
    return outcome(input, 'span', [{ anchor: best - 1, shared }], `the span of ${len} inner layer(s) with the highest mean cosine (${bestMean.toFixed(3)}) with the layer before it`);
  }
  const thr = opts.threshold ?? DEFAULT_THRESHOLD;
  let best: [number, number] | null = null;
  let bestMean = -Infinity;
  for (let s = 1; s <= L - 2; s++) {
    for (let e = s; e <= L - 2; e++) {
      const m = mean(s, e);
      if (m < thr) continue;
      const len = e - s + 1;
      const bestLen = best ? best[1] - best[0] + 1 : 0;
      if (len > bestLen || (len === bestLen && m > bestMean + 1e-15)) {
        best = [s, e];
        bestMean = m;
      }
    }
  }
  if (!best) return outcome(input, 'span', [], `no span of inner layers reaches a mean cosine of ${thr} with the layer before it`);
  const [s, e] = best;
  return outcome(
    input, 'span', [{ anchor: s - 1, shared: Array.from({ length: e - s + 1 }, (_, i) => s + i) }],
    `the longest span of inner layers whose mean cosine with the layer before it is ≥ ${thr} (${bestMean.toFixed(3)})`,
  );
}

/**
 * Predicted loss rise when layer `s` reuses anchor `a`: its measured criticality when `a` is the anchor it was
 * measured with, plus the cosine it loses when `a` is a less similar layer (`sim(a*, s) − sim(a, s)`, a heuristic
 * penalty of 1 nat per unit of cosine). Without criticality the base is `1 − sim(a*, s)`, so the prediction is
 * `1 − sim(a, s)`. Null if `s` has no earlier layer.
 */
export function predictedLoss(input: StrategyInput, s: number, a: number): number | null {
  const L = input.config.numLayers;
  const sim = (x: number, y: number) => input.similarity[x * L + y];
  const measured = input.criticalAnchor?.[s] ?? null;
  const crit = input.criticality?.[s] ?? null;
  if (measured === null || crit === null) return s > 0 ? 1 - sim(a, s) : null;
  return crit + Math.max(0, sim(measured, s) - sim(a, s));
}

/** The best available anchor for `s`: its measured anchor if not shared, else the most similar earlier unshared layer. */
function bestAnchor(input: StrategyInput, s: number, shared: ReadonlySet<number>): number {
  const L = input.config.numLayers;
  const m = input.criticalAnchor?.[s] ?? null;
  if (m !== null && !shared.has(m)) return m;
  let best = -1;
  for (let a = 0; a < s; a++) {
    if (shared.has(a)) continue;
    if (best < 0 || input.similarity[a * L + s] > input.similarity[best * L + s]) best = a;
  }
  return best; // layer 0 is never shared, so there is always one
}

/** Remove at least `fraction` of a resource with the least predicted loss. */
export function budgetStrategy(input: StrategyInput, opts: BudgetOptions): StrategyOutcome {
  const L = checkSimilarity(input);
  const resource = opts.resource ?? 'flops';
  const F = opts.fraction;
  if (!(F >= 0 && F <= 1)) throw new OptionError('--budget', `expected a fraction in [0, 1], got ${F}`);
  const assign = (set: ReadonlySet<number>) => {
    const m = new Map<number, number>();
    let loss = 0;
    for (const s of [...set].sort((x, y) => x - y)) {
      const a = bestAnchor(input, s, set);
      m.set(s, a);
      loss += predictedLoss(input, s, a) ?? 0;
    }
    return { m, loss };
  };
  const fractionOf = (m: Map<number, number>) => budgetFraction(sharingCost(input.config, makePlan('budget', groupsFromAnchors(m)), input.seqLen), input.config)[resource];
  let shared = new Set<number>();
  let chosen = new Map<number, number>();
  let reached = F === 0;
  while (!reached) {
    let best: { set: Set<number>; m: Map<number, number>; loss: number } | null = null;
    for (let s = 1; s <= L - 2; s++) {
      if (shared.has(s)) continue;
      const set = new Set(shared).add(s);
      const { m, loss } = assign(set);
      if (!best || loss < best.loss - 1e-12) best = { set, m, loss };
    }
    if (!best) break;
    shared = best.set;
    chosen = best.m;
    reached = fractionOf(chosen) >= F - 1e-12;
  }
  const measure = input.criticality ? 'measured criticality' : '1 − cosine (criticality not measured)';
  const name = { flops: 'attention FLOPs', kcache: 'K cache', params: 'attention parameters' }[resource];
  const why = reached
    ? `removes ≥ ${(100 * F).toFixed(1)}% of ${name} with the least predicted loss (greedy, by ${measure})`
    : `target ${(100 * F).toFixed(1)}% of ${name} not reachable with inner layers only; shares every inner layer`;
  return outcome(input, 'budget', groupsFromAnchors(chosen), why);
}

/** Run the three heuristic strategies. */
export function allStrategies(
  input: StrategyInput,
  opts: { echoatt?: EchoattOptions; span?: SpanOptions; budget: BudgetOptions },
): Record<HeuristicName, StrategyOutcome> {
  return {
    echoatt: echoattStrategy(input, opts.echoatt),
    span: spanStrategy(input, opts.span),
    budget: budgetStrategy(input, opts.budget),
  };
}
