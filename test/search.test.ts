/**
 * The measured plan search on stories260K: the cached evaluator equals full forward passes, head alignment picks the
 * most similar anchor head, and at a 30% FLOP budget the search finds a plan within 0.02 nats/token of the best of
 * every plan of that size, measured exhaustively.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { loadModel } from '../src/models/load.js';
import { sampleSequences } from '../src/models/generate.js';
import { withPlan } from '../src/models/surgery.js';
import { makePlan, type SharingPlan } from '../src/models/sharing-plan.js';
import { PlanEvaluator } from '../src/analysis/plan-eval.js';
import { searchPlans } from '../src/analysis/search.js';
import { alignHeads, alignPlan } from '../src/analysis/alignment.js';
import { analyze } from '../src/analysis/analyze.js';
import { evaluateLoss } from '../src/train/evaluate.js';
import { sharedDir } from './helpers.js';

const { model: teacher, tokenizer } = loadModel(path.join(sharedDir, 'models/stories260K/stories260K.bin'));
const calib = sampleSequences(teacher, { count: 8, length: 129, bosId: tokenizer.bosId!, seed: 3 });

/** Every plan sharing exactly `k` of 5 layers (anchors never shared). */
function allPlans(k: number): SharingPlan[] {
  const out: SharingPlan[] = [];
  const rec = (l: number, anchorOf: number[]) => {
    if (l === 5) {
      if (anchorOf.filter((a) => a >= 0).length !== k) return;
      const groups = new Map<number, number[]>();
      anchorOf.forEach((a, s) => a >= 0 && groups.set(a, [...(groups.get(a) ?? []), s]));
      out.push(makePlan('exhaustive', [...groups].map(([anchor, shared]) => ({ anchor, shared }))));
      return;
    }
    for (let a = -1; a < l; a++) if (a < 0 || anchorOf[a] < 0) rec(l + 1, [...anchorOf, a]);
  };
  rec(0, []);
  return out.filter((p) => p.groups.every((g) => !p.groups.some((h) => h.shared.includes(g.anchor))));
}

test('the evaluator\'s cached partial passes give the loss of a full forward pass of the student', () => {
  const ev = new PlanEvaluator(teacher, calib, { batch: 3 });
  const base = makePlan('m', [{ anchor: 0, shared: [1] }]);
  ev.rebase(base);
  for (const plan of [makePlan('m', [{ anchor: 0, shared: [1] }, { anchor: 2, shared: [3, 4] }]), makePlan('m', [{ anchor: 0, shared: [1, 4], heads: { 4: [7, 7, 0, 1, 2, 3, 4, 5] } }])]) {
    const direct = evaluateLoss(withPlan(teacher, plan), calib).loss;
    assert.ok(Math.abs(ev.loss(plan) - direct) < 1e-5, `${JSON.stringify(plan.groups)}: ${ev.loss(plan)} vs ${direct}`);
  }
  assert.ok(ev.passes < ev.evaluations, 'candidates ran partial passes');
});

test('at a 30% FLOP budget the search is within 0.02 nats/token of the exhaustive best; alignment follows the head-pair cosine', async () => {
  const analysis = await analyze(teacher, tokenizer, { data: { sequences: calib }, criticalitySeqs: 0, search: false });
  const hp = analysis.similarity.headPairs!;
  const H = teacher.config.numHeads;
  const map = alignHeads(hp, H, 3, 2) ?? Array.from({ length: H }, (_, h) => h);
  map.forEach((g, h) => {
    for (let x = 0; x < H; x++) assert.ok(hp.mean[(3 * H + h) * hp.n + 2 * H + g] >= hp.mean[(3 * H + h) * hp.n + 2 * H + x]);
  });
  for (const align of ['none', 'cosine'] as const) {
    const r = searchPlans(teacher, calib, { budget: 0.3, align, headPairs: hp });
    assert.ok(r.chosen.removed.flops >= 0.3 && r.runnersUp.every((t) => t.loss >= r.chosen.loss && t.removed.flops >= 0.3));
    const ev = new PlanEvaluator(teacher, calib);
    ev.rebase(null);
    const plans = allPlans(3).map((p) => (align === 'cosine' ? alignPlan(p, hp, H) : p));
    const best = Math.min(...plans.map((p) => ev.loss(p)));
    assert.ok(r.chosen.loss <= best + 0.02, `${align}: search ${r.chosen.loss.toFixed(4)} vs exhaustive best ${best.toFixed(4)} over ${plans.length} plans`);
    assert.ok(r.cost.evaluations < 40, `${r.cost.evaluations} plans measured`);
  }
});

test('the curve goes on to L − 1 shared layers: once only anchors are left, an anchor is folded into an earlier layer', () => {
  const short = calib.slice(0, 3).map((s) => s.subarray(0, 65));
  const r = searchPlans(teacher, short, { maxShared: 4, align: 'none', beam: 1, candidates: 4 });
  assert.deepEqual(r.path.map((t) => t.step), [1, 2, 3, 4]);
  assert.deepEqual(r.path[3].plan.groups.map((g) => [...g.shared].sort()), [[1, 2, 3, 4]]);
});
