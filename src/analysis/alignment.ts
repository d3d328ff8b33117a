/**
 * Head alignment for layer-wise sharing (after LiSA, arXiv 2408.01890: heads must be re-aligned between layers before
 * one layer can use another's attention). For a shared layer `l` reading anchor `a`, query head `h` of `l` reads the
 * anchor head whose probabilities are most similar to its own on the calibration text: `π(h) = argmax_h'
 * cos(P_l^h, P_a^h')`, from the analysis's head-pair cosine. Several heads may read one anchor head (many-to-one).
 * The shared layer's values keep their own grouping (head `h` reads V head `⌊h / G⌋` of layer `l`), so this is
 * GQA-safe.
 *
 * @example
 * ```ts
 * alignHeads(analysis.similarity.headPairs, cfg.numHeads, 5, 2); // e.g. [1, 1, 3, 0, 4, 4], or null if identity
 * ```
 */
import { makePlan, type SharingPlan } from '../models/sharing-plan.js';
import type { MatrixStat } from './similarity.js';

/** The anchor head each query head of `layer` should read from `anchor`, or null when that is head h for every h. */
export function alignHeads(headPairs: MatrixStat, numHeads: number, layer: number, anchor: number): number[] | null {
  const n = headPairs.n;
  const cos = (h: number, g: number) => headPairs.mean[(layer * numHeads + h) * n + anchor * numHeads + g];
  const map = Array.from({ length: numHeads }, (_, h) => {
    let best = h; // ties keep the head's own index
    for (let g = 0; g < numHeads; g++) if (cos(h, g) > cos(h, best)) best = g;
    return best;
  });
  return map.every((g, h) => g === h) ? null : map;
}

/** `plan` with every shared layer head-aligned to its anchor (existing head maps are replaced). */
export function alignPlan(plan: SharingPlan, headPairs: MatrixStat, numHeads: number): SharingPlan {
  const groups = plan.groups.map((g) => {
    const heads: Record<string, number[]> = {};
    for (const l of g.shared) {
      const map = alignHeads(headPairs, numHeads, l, g.anchor);
      if (map) heads[String(l)] = map;
    }
    return Object.keys(heads).length ? { anchor: g.anchor, shared: g.shared, heads } : { anchor: g.anchor, shared: g.shared };
  });
  return makePlan(plan.strategy, groups, plan.note);
}
