/**
 * `summary.json` of a pipeline run and its headline sentence: held-out perplexity of the teacher, the training-free
 * and the distilled student; what the plan removes; the measured speed ratios; the plan with its search ranking.
 */
import type { LlamaModel } from '../models/llama.js';
import type { SharingPlan } from '../models/sharing-plan.js';
import type { AnalysisSummary } from '../analysis/report.js';
import { sharingCost, type SharingCost } from '../sharing/cost.js';
import { speedRatio } from '../eval/speed.js';
import type { EvalSet } from '../distill/options.js';
import type { EvaluationResult } from './evaluate-stage.js';
import type { PipelineSettings } from './settings.js';

export interface PipelineReportFiles {
  html: string;
  md: string;
  json: string;
}

export interface DistillSummary {
  step: number;
  steps: number;
  tokensPerSec: number;
  trainableParams: number;
  lastLoss?: number;
  evalBefore?: EvalSet[];
  evalAfter?: EvalSet[];
  plotFiles?: { svg: string; png: string };
}

export interface PipelineSummary {
  format: 'echoatt-pipeline/2';
  /** The result in one sentence. */
  headline: string;
  settings: PipelineSettings;
  teacher: { path: string; parameters: number; layers: number };
  plan: SharingPlan;
  planWhy: string;
  /** The measured search behind the plan: choice, runners-up, curve, singles, cost (null for heuristic plans). */
  search: AnalysisSummary['search'];
  cost: SharingCost;
  heldOut: { source: string; windows: number; seqLen: number; models: { name: string; loss: number; perplexity: number; vsTeacher: number }[] };
  /** `ratios`: each student's speed over the teacher's, median of the per-round ratios, with their range. */
  speed: EvaluationResult['speed'] & { ratios: { name: string; prefill: number; decode: number; range: { prefill: number[]; decode: number[] } }[] };
  zeroShot: EvaluationResult['zeroShot'];
  distill: DistillSummary | null;
  analysis: AnalysisSummary;
  stagesSkipped: string[];
  files?: PipelineReportFiles;
}

const pct = (part: number, whole: number) => (whole ? `${((100 * part) / whole).toFixed(1)}%` : '–');
const signed = (x: number) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)}%`;

export function pipelineSummary(
  s: PipelineSettings, teacher: LlamaModel, plan: SharingPlan, a: { summary: AnalysisSummary; why: string }, distill: DistillSummary | null,
  e: EvaluationResult, skipped: string[],
): Omit<PipelineSummary, 'files'> {
  const cost = sharingCost(teacher.config, plan, Math.min(256, teacher.config.maxPositions));
  const t = e.heldOut[0];
  const heldOut = {
    source: t.source, windows: t.windows, seqLen: t.seqLen,
    models: e.heldOut.map((m) => ({ name: m.name, loss: m.loss, perplexity: m.perplexity, vsTeacher: m.perplexity / t.perplexity - 1 })),
  };
  // Median of the per-round ratios (each round runs every model back to back): robust to a shared machine's drift.
  const ratios = e.speed.models.slice(1).map((m, i) => {
    const r = speedRatio(e.speed, i + 1);
    return { name: m.name, prefill: r.prefill.median, decode: r.decode.median, range: { prefill: [r.prefill.min, r.prefill.max], decode: [r.decode.min, r.decode.max] } };
  });
  const out = {
    format: 'echoatt-pipeline/2' as const, headline: '', settings: s,
    teacher: { path: s.model, parameters: teacher.parameterCount(), layers: teacher.config.numLayers },
    plan, planWhy: a.why, search: a.summary.search, cost, heldOut, speed: { ...e.speed, ratios }, zeroShot: e.zeroShot, distill,
    analysis: a.summary, stagesSkipped: skipped,
  };
  out.headline = headline(out);
  return out;
}

/** One sentence with the result a reader wants first. */
function headline(r: Omit<PipelineSummary, 'files' | 'headline'>): string {
  const c = r.cost;
  const ppl = r.heldOut.models.map((m) => (m.name === 'teacher' ? `teacher ${m.perplexity.toFixed(2)}` : `${m.name} ${m.perplexity.toFixed(2)} (${signed(m.vsTeacher)})`));
  const speed = r.speed.ratios.at(-1);
  return [
    `Sharing ${c.sharedLayers.length} of ${r.teacher.layers} layers' attention removes ${pct(c.attentionFlops.removed, c.attentionFlops.total)} of attention FLOPs, ` +
      `${pct(c.kvCacheBytesPerToken.removedK, c.kvCacheBytesPerToken.total)} of the KV cache and ${pct(c.params.removed, c.params.total)} of parameters.`,
    `Held-out perplexity (${r.heldOut.windows} windows of ${r.heldOut.seqLen} tokens of text the teacher never saw): ${ppl.join(', ')}.`,
    ...(speed ? [`Measured on this machine (median of ${r.speed.settings.rounds} alternating rounds), the ${speed.name} prefills ${r.speed.settings.prefill} tokens ` +
      `${speed.prefill.toFixed(2)}× and decodes ${speed.decode.toFixed(2)}× as fast as the teacher.`] : []),
  ].join(' ');
}
