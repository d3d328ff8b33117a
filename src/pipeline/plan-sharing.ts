/**
 * Choose the sharing plan from an analysis.
 *
 * @example
 * ```ts
 * const analysis = await analyze(model, tokenizer, { budget: 0.3 });
 * const { plan, why } = planSharing(analysis, 'budget');
 * ```
 */
import type { AnalysisResult } from '../analysis/analyze.js';
import type { StrategyName } from '../analysis/strategies.js';
import { type SharingPlan } from '../models/sharing-plan.js';
import { PlanError } from '../errors.js';

export function planSharing(analysis: AnalysisResult, strategy: StrategyName = 'budget'): { plan: SharingPlan; why: string } {
  const outcome = analysis.plans[strategy];
  if (!outcome) throw new PlanError('planSharing', `the analysis has no '${strategy}' plan`);
  if (outcome.plan.groups.every((g) => g.shared.length === 0)) {
    throw new PlanError(
      'planSharing',
      `the '${strategy}' strategy shares nothing on this model (${outcome.why}); try --strategy budget, a larger --budget, or echoatt analyze --threshold/-k`,
    );
  }
  return { plan: outcome.plan, why: outcome.why };
}
