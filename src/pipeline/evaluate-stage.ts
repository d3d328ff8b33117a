/**
 * The pipeline's evaluation stage: teacher and students side by side on held-out text (perplexity on the same
 * windows), zero-shot tasks (lm-evaluation-harness scoring), and speed measured in one run, alternating the models.
 */
import type { LoadedModel } from '../models/load.js';
import type { LlamaModel } from '../models/llama.js';
import { evaluate, type EvalReport } from '../eval/evaluate.js';
import { reportJson } from '../eval/table.js';
import { heldOutPerplexity, heldOutWindows, type HeldOutResult } from '../eval/heldout.js';
import { compareSpeed, type SpeedComparison } from '../eval/speed.js';
import { writeFileAtomic } from '../report/plot.js';
import type { PipelineRun } from './stages.js';
import type { PipelineOptions, PipelineSettings } from './settings.js';
import path from 'node:path';

export interface EvaluationResult {
  /** Per model (teacher first): perplexity on the held-out windows. */
  heldOut: ({ name: string } & HeldOutResult)[];
  /** Zero-shot tasks (null when no task was asked for). */
  zeroShot: ReturnType<typeof reportJson> | null;
  speed: SpeedComparison;
}

export async function evaluateStage(
  run: PipelineRun, s: PipelineSettings, t: LoadedModel, students: readonly { name: string; model: LlamaModel }[], opts: PipelineOptions,
): Promise<EvaluationResult> {
  const prev = run.reuse<EvaluationResult>('evaluate');
  if (prev) return prev;
  const models = [{ name: 'teacher', model: t.model }, ...students];
  const seqLen = Math.min(256, t.model.config.maxPositions);
  const windows = await heldOutWindows(t.tokenizer, s.ppl, { windows: s.pplWindows, seqLen, encoding: s.textEncoding });
  const heldOut = models.map((m, i) => {
    opts.onProgress?.('evaluate (held-out perplexity)', i, models.length);
    return { name: m.name, ...heldOutPerplexity(m.model, windows) };
  });
  let zeroShot: EvaluationResult['zeroShot'] = null;
  if (s.tasks.length) {
    const report: EvalReport = await evaluate(models.map((m) => ({ name: m.name, model: m.model, tokenizer: t.tokenizer })), {
      tasks: s.tasks, limit: s.limit, onProgress: (e) => opts.onProgress?.(`evaluate ${e.model}: ${e.stage}`, e.done, e.total),
    });
    zeroShot = reportJson(report);
  }
  opts.onProgress?.('evaluate (speed)', 0, 1);
  const speed = compareSpeed(models, { prefill: seqLen, rounds: 11 });
  const result: EvaluationResult = { heldOut, zeroShot, speed };
  writeFileAtomic(path.join(run.dir('evaluate'), 'results.json'), `${JSON.stringify(result, null, 2)}\n`);
  run.finish('evaluate', result);
  return result;
}
