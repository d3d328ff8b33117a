/**
 * Plain-number summaries of an analysis for reports and JSON: how alike inner and outer layers attend, each layer's
 * best match (head-averaged and with heads re-aligned), how well cosine predicts the measured cost of a share, and
 * the search's choice, runners-up and curve.
 */
import type { AnalysisResult } from './analyze.js';
import type { SearchResult, Trial } from './search.js';

const r4 = (v: number) => (Number.isFinite(v) ? Number(v.toFixed(4)) : null);

function meanOf(xs: readonly number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;
}

/** Spearman rank correlation (average ranks for ties). */
export function spearman(a: readonly number[], b: readonly number[]): number {
  const rank = (xs: readonly number[]) => {
    const idx = xs.map((x, i) => [x, i] as const).sort((p, q) => p[0] - q[0]);
    const r = new Array<number>(xs.length);
    for (let i = 0; i < idx.length; ) {
      let j = i;
      while (j + 1 < idx.length && idx[j + 1][0] === idx[i][0]) j++;
      for (let k = i; k <= j; k++) r[idx[k][1]] = (i + j) / 2;
      i = j + 1;
    }
    return r;
  };
  const [ra, rb] = [rank(a), rank(b)];
  const [ma, mb] = [meanOf(ra), meanOf(rb)];
  let num = 0;
  let da = 0;
  let db = 0;
  for (let i = 0; i < ra.length; i++) {
    num += (ra[i] - ma) * (rb[i] - mb);
    da += (ra[i] - ma) ** 2;
    db += (rb[i] - mb) ** 2;
  }
  return da && db ? num / Math.sqrt(da * db) : NaN;
}

/**
 * Inner vs outer layers and per-layer best matches. "Inner" pairs are adjacent layers `(l−1, l)` with neither the
 * first nor the last layer; "outer" pairs are `(0, 1)` and `(L−2, L−1)`. Thirds split the layers into first, middle
 * and last third and average the cosine of the pairs inside each.
 */
export function depthSummary(result: AnalysisResult) {
  const s = result.similarity;
  const L = s.numLayers;
  const H = s.numHeads;
  const cos = (i: number, j: number) => s.cosine.mean[i * L + j];
  const inner = Array.from({ length: Math.max(0, L - 3) }, (_, k) => cos(k + 1, k + 2));
  const outer = L >= 3 ? [cos(0, 1), cos(L - 2, L - 1)] : [];
  const third = (lo: number, hi: number) => {
    const v: number[] = [];
    for (let i = lo; i < hi; i++) for (let j = i + 1; j < hi; j++) v.push(cos(i, j));
    return r4(meanOf(v));
  };
  const t = Math.ceil(L / 3);
  const layers = Array.from({ length: L }, (_, l) => {
    const earlier = Array.from({ length: l }, (_, a) => a).sort((a, b) => cos(l, b) - cos(l, a))[0];
    const hp = s.headPairs;
    // Head-aligned: each head's best head in the best earlier layer, versus the same head there.
    const aligned = hp && earlier !== undefined
      ? meanOf(Array.from({ length: H }, (_, h) => Math.max(...Array.from({ length: H }, (_, g) => hp.mean[(l * H + h) * hp.n + earlier * H + g]))))
      : NaN;
    return { layer: l, bestEarlier: earlier ?? null, cosine: earlier === undefined ? null : r4(cos(l, earlier)), alignedCosine: r4(aligned) };
  });
  const singles = result.search?.singles ?? [];
  const rho = singles.length > 2 ? spearman(singles.map((x) => cos(x.moves[0].layer, x.moves[0].anchor)), singles.map((x) => x.delta)) : NaN;
  return {
    adjacentInner: r4(meanOf(inner)), adjacentOuter: r4(meanOf(outer)),
    thirds: { first: third(0, t), middle: third(t, L - t), last: third(L - t, L) },
    layers,
    /** Spearman between a single share's cosine and its measured cost: negative means "more alike, cheaper". */
    cosineVsMeasuredCost: r4(rho),
  };
}

function trialJson(t: Trial) {
  return {
    shared: t.moves.map((m) => ({ layer: m.layer, anchor: m.anchor, ...(m.heads ? { heads: m.heads } : {}) })),
    loss: r4(t.loss), delta: r4(t.delta), removed: { flops: r4(t.removed.flops), kcache: r4(t.removed.kcache), params: r4(t.removed.params) },
  };
}

/** The search as JSON: the choice, runners-up, the curve, every single share and what it cost. */
export function searchJson(r: SearchResult) {
  return {
    teacherLoss: r4(r.teacherLoss), align: r.align, resource: r.resource, budget: r.budget,
    chosen: { ...trialJson(r.chosen), plan: r.chosen.plan },
    runnersUp: r.runnersUp.map(trialJson),
    path: r.path.map(trialJson),
    singles: r.singles.map(trialJson),
    cost: { ...r.cost, forwardPasses: r4(r.cost.forwardPasses), seconds: r4(r.cost.seconds) },
  };
}

/** `2←1[0,0,2,…]; 5←0` for tables. */
export function movesText(t: Trial): string {
  return [...t.moves].sort((a, b) => a.layer - b.layer).map((m) => `${m.layer}←${m.anchor}${m.heads ? `[${m.heads.join(m.heads.length > 10 ? ',' : '')}]` : ''}`).join(' ');
}
