/**
 * Plan search by measured loss: which layers to share, with which anchor and head map, chosen by the calibration
 * loss of the training-free students themselves rather than by a similarity heuristic.
 *
 * 1. **Singles**: every feasible move `l ← a` (layer `l` reuses anchor `a < l`) is measured on its own against the
 *    teacher. With `align: 'cosine'` each move carries a head map: query head `h` of `l` reads the anchor head most
 *    similar to it on the calibration text (`alignment.ts`).
 * 2. **Beam search** over adding one move at a time: from each of the `beam` best plans so far, the `candidates`
 *    feasible moves with the lowest single cost are tried on top of it and measured; the `beam` best children go on.
 *    A layer that is shared cannot be an anchor and vice versa; no layer is excluded by rule (first and last included).
 *    When only anchors are left unshared, a step folds one anchor and its layers into an earlier layer, so the curve
 *    goes on to L − 1 shared layers.
 * 3. **Choice**: among every plan measured, the one with the lowest loss that removes at least `budget` of the
 *    resource (attention FLOPs, K cache or parameters); the report lists the runners-up. The accepted plan of each
 *    step is also the curve "k shared layers → loss".
 *
 * Forward passes only; a candidate runs from its first new layer on (`plan-eval.ts`).
 *
 * @example
 * ```ts
 * const r = searchPlans(teacher, calib.sequences, { budget: 0.3, align: 'cosine', headPairs: analysis.similarity.headPairs });
 * r.chosen.plan; r.runnersUp.slice(0, 3); r.cost.forwardPasses;
 * ```
 */
import type { LlamaModel } from '../models/llama.js';
import { makePlan, type PlanGroup, type SharingPlan } from '../models/sharing-plan.js';
import { sharingCost } from '../sharing/cost.js';
import { OptionError } from '../errors.js';
import { PlanEvaluator } from './plan-eval.js';
import { alignHeads } from './alignment.js';
import { budgetFraction, type BudgetResource, type ResourceFractions } from './strategies.js';
import type { MatrixStat } from './similarity.js';

export type AlignMode = 'none' | 'cosine';

export interface SearchOptions {
  /** Stop criterion and choice: remove at least this fraction of `resource` (default: go to `maxShared`, choose the last step). */
  budget?: number;
  /** Default `flops` (attention FLOPs at `seqLen`). */
  resource?: BudgetResource;
  /** Search up to this many shared layers (default: until the budget is met; L − 1 without a budget). */
  maxShared?: number;
  /** Head alignment of each move (default `cosine` when `headPairs` is given, else `none`). */
  align?: AlignMode;
  /** The analysis's `(L·H)²` head-pair cosine (needed for `align: 'cosine'`). */
  headPairs?: MatrixStat;
  /** Moves tried on top of each kept plan per step (default 8). */
  candidates?: number;
  /** Plans kept per step (default 2). */
  beam?: number;
  /** Context length for the FLOPs accounting (default: the sequences' length). */
  seqLen?: number;
  /** Sequences per forward pass (default 8). */
  batch?: number;
  onProgress?: (p: { step: number; evaluations: number }) => void;
}

/** One move: layer `layer` echoes `anchor`, query head h reading anchor head `heads[h]` (identity when null). */
export interface Move {
  layer: number;
  anchor: number;
  heads: number[] | null;
}

/** A measured plan. */
export interface Trial {
  plan: SharingPlan;
  moves: Move[];
  /** Calibration loss (nats/token) and its rise over the teacher. */
  loss: number;
  delta: number;
  removed: ResourceFractions;
  /** Number of shared layers. */
  step: number;
}

export interface SearchResult {
  teacherLoss: number;
  align: AlignMode;
  resource: BudgetResource;
  budget: number | null;
  /** Every single move measured against the teacher, lowest cost first. */
  singles: Trial[];
  /** The best plan found with k shared layers, k = 1, 2, ... (the curve). */
  path: Trial[];
  /** Every plan measured with k shared layers (`byStep[k − 1]`), lowest loss first: the ranking at each size. */
  byStep: Trial[][];
  /** The chosen plan: lowest loss among measured plans meeting the budget. */
  chosen: Trial;
  /** Other plans meeting the budget, lowest loss first (at most 10). */
  runnersUp: Trial[];
  cost: { evaluations: number; forwardPasses: number; seconds: number; sequences: number; tokens: number };
}

const key = (moves: readonly Move[]) => moves.map((m) => `${m.layer}<${m.anchor}`).sort().join(',');

function planOf(moves: readonly Move[], strategy: string): SharingPlan {
  const byAnchor = new Map<number, PlanGroup & { shared: number[]; heads: Record<string, number[]> }>();
  for (const m of moves) {
    const g = byAnchor.get(m.anchor) ?? { anchor: m.anchor, shared: [], heads: {} };
    g.shared.push(m.layer);
    if (m.heads) g.heads[String(m.layer)] = m.heads;
    byAnchor.set(m.anchor, g);
  }
  const groups = [...byAnchor.values()].sort((a, b) => a.anchor - b.anchor).map((g) => (Object.keys(g.heads).length ? g : { anchor: g.anchor, shared: g.shared }));
  return makePlan(strategy, groups);
}

/** Moves that can be added to `moves`: `layer` neither shared nor an anchor yet, `anchor` not shared. */
function feasible(all: readonly Move[], moves: readonly Move[]): Move[] {
  const shared = new Set(moves.map((m) => m.layer));
  const anchors = new Set(moves.map((m) => m.anchor));
  return all.filter((m) => !shared.has(m.layer) && !anchors.has(m.layer) && !shared.has(m.anchor));
}

/**
 * Plans with one more shared layer when no plain move is left: anchor `a` becomes a shared layer of an earlier
 * unshared layer `b`, and the layers that read `a` read `b` instead (with the head maps of their new pairs).
 */
function foldAnchors(all: readonly Move[], moves: readonly Move[]): Move[][] {
  const pick = (layer: number, anchor: number) => all.find((m) => m.layer === layer && m.anchor === anchor);
  const shared = new Set(moves.map((m) => m.layer));
  const out: Move[][] = [];
  for (const a of new Set(moves.map((m) => m.anchor))) {
    for (let b = 0; b < a; b++) {
      const fold = pick(a, b);
      if (shared.has(b) || !fold) continue;
      const repointed = moves.map((m) => (m.anchor === a ? pick(m.layer, b) : m));
      if (repointed.every((m): m is Move => m !== undefined)) out.push([...repointed, fold]);
    }
  }
  return out;
}

/** Run the search (see the module doc). */
export function searchPlans(teacher: LlamaModel, sequences: readonly Int32Array[], opts: SearchOptions = {}): SearchResult {
  const t0 = performance.now();
  const cfg = teacher.config;
  const L = cfg.numLayers;
  const align: AlignMode = opts.align ?? (opts.headPairs ? 'cosine' : 'none');
  if (align === 'cosine' && !opts.headPairs) throw new OptionError('--align', 'cosine alignment needs the head-pair similarity of the analysis');
  const resource = opts.resource ?? 'flops';
  const budget = opts.budget ?? null;
  if (budget !== null && !(budget > 0 && budget < 1)) throw new OptionError('--budget', `expected a fraction in (0, 1), got ${budget}`);
  const seqLen = opts.seqLen ?? sequences[0].length;
  const ev = new PlanEvaluator(teacher, sequences, { batch: opts.batch });
  const teacherLoss = ev.rebase(null);
  const trial = (moves: Move[]): Trial => {
    const plan = planOf(moves, align === 'cosine' ? 'search (aligned)' : 'search');
    const loss = ev.loss(plan);
    return { plan, moves, loss, delta: loss - teacherLoss, removed: budgetFraction(sharingCost(cfg, plan, seqLen), cfg), step: moves.length };
  };
  const eligible = (l: number) => teacher.attention[l].kind === 'own' && !teacher.headMap?.shared.some((e) => e.layer === l || e.source_layer === l);
  const all: Move[] = [];
  for (let l = 1; l < L; l++) {
    for (let a = 0; a < l; a++) {
      if (eligible(l) && eligible(a)) all.push({ layer: l, anchor: a, heads: align === 'cosine' ? alignHeads(opts.headPairs!, cfg.numHeads, l, a) : null });
    }
  }
  if (all.length === 0) throw new OptionError('search', 'no layer can be shared (the model has one layer, or every layer is already shared)');
  const singles = all.map((m) => trial([m])).sort((x, y) => x.loss - y.loss);
  const rank = new Map(singles.map((s, i) => [key(s.moves), i]));
  const measured = new Map<string, Trial>(singles.map((s) => [key(s.moves), s]));
  const beam = Math.max(1, opts.beam ?? 2);
  const perStep = Math.max(1, opts.candidates ?? 8);
  const maxShared = Math.min(opts.maxShared ?? L - 1, L - 1);
  const met = (t: Trial) => budget !== null && t.removed[resource] >= budget - 1e-12;
  let frontier = singles.slice(0, beam);
  const path: Trial[] = [singles[0]];
  for (let step = 2; step <= maxShared && !(opts.maxShared === undefined && path.some(met)); step++) {
    const children: Trial[] = [];
    for (const parent of frontier) {
      const moves = feasible(all, parent.moves).sort((x, y) => rank.get(key([x]))! - rank.get(key([y]))!).slice(0, perStep);
      // Once every unshared layer is an anchor, go on by folding one anchor (with its layers) into an earlier one.
      const next = moves.length ? moves.map((m) => [...parent.moves, m]) : foldAnchors(all, parent.moves).slice(0, perStep);
      if (next.length) ev.rebase(parent.plan);
      for (const ms of next) {
        const k = key(ms);
        if (!measured.has(k)) measured.set(k, trial(ms));
        children.push(measured.get(k)!);
      }
    }
    if (children.length === 0) break;
    frontier = [...new Map(children.map((c) => [key(c.moves), c])).values()].sort((x, y) => x.loss - y.loss).slice(0, beam);
    path.push(frontier[0]);
    opts.onProgress?.({ step, evaluations: ev.evaluations });
  }
  const pool = [...measured.values()].filter((t) => (budget === null ? t.step === path.at(-1)!.step : met(t))).sort((x, y) => x.loss - y.loss);
  const chosen = pool[0] ?? path.at(-1)!;
  const byStep = path.map((_, i) => [...measured.values()].filter((t) => t.step === i + 1).sort((x, y) => x.loss - y.loss));
  return {
    teacherLoss, align, resource, budget, singles, path, byStep, chosen, runnersUp: pool.slice(1, 11),
    cost: { evaluations: ev.evaluations, forwardPasses: ev.passes, seconds: (performance.now() - t0) / 1000, sequences: sequences.length, tokens: sequences.length * (sequences[0].length - 1) },
  };
}
