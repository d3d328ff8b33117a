/**
 * The whole method in one call: analyze (similarity + measured plan search) → share → distill → evaluate → report.
 * The teacher is loaded once and every stage gets models, not paths.
 *
 * Each stage writes into its own folder under `out` and finishes by writing `<stage>/stage.json` atomically; a rerun
 * with `resume` and the same settings skips finished stages and resumes an interrupted distillation from its last
 * checkpoint.
 * A previous run's results are never overwritten unless `force` is set.
 *
 * @example
 * ```ts
 * const summary = await runPipeline({ out: 'runs/gutenberg16' });
 * console.log(summary.headline, summary.files.html);
 * ```
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadModel, modelName, saveModel, type LoadedModel } from '../models/load.js';
import type { LlamaModel } from '../models/llama.js';
import { parsePlan, type SharingPlan } from '../models/sharing-plan.js';
import { analyze } from '../analysis/analyze.js';
import { writeReport as writeAnalysisReport, analysisSummary, type AnalysisSummary } from '../analysis/report.js';
import { buildStudent } from '../sharing/student.js';
import { distill } from '../distill/distill.js';
import type { DistillResult } from '../distill/options.js';
import { getBackend } from '../backend/index.js';
import { checkThreads } from '../backend/threads.js';
import { InterruptedError, PlanError } from '../errors.js';
import { writeFileAtomic } from '../report/plot.js';
import { PipelineRun } from './stages.js';
import { resolvePipelineSettings, type PipelineOptions, type PipelineSettings } from './settings.js';
import { evaluateStage } from './evaluate-stage.js';
import { pipelineSummary, type PipelineSummary } from './summary.js';
import { writePipelineReport } from './report.js';

export type { PipelineOptions, PipelineSummary };
export { resolvePipelineSettings };

interface AnalyzeRecord {
  summary: AnalysisSummary;
  plan: unknown;
  why: string;
}

type DistillRecord = Pick<DistillResult, 'step' | 'steps' | 'tokensPerSec' | 'trainableParams' | 'lastLoss' | 'evalBefore' | 'evalAfter' | 'studentDir' | 'plotFiles'>;

/** Run (or resume) the pipeline. */
export async function runPipeline(opts: PipelineOptions): Promise<PipelineSummary> {
  const s = resolvePipelineSettings(opts);
  if (opts.threads !== undefined) getBackend().setThreads(checkThreads(opts.threads, '--threads'));
  const run = new PipelineRun(path.resolve(opts.out), JSON.stringify(s), opts.onStage ?? (() => {}));
  run.prepare({ force: opts.force, resume: opts.resume, inputs: [s.model, s.data, s.distillData, s.ppl] });
  try {
    return await stages(run, s, opts);
  } finally {
    run.close();
  }
}

async function stages(run: PipelineRun, s: PipelineSettings, opts: PipelineOptions): Promise<PipelineSummary> {
  const teacher = loadModel(s.model);
  const a = await analyzeStage(run, s, teacher, opts);
  const plan = parsePlan(a.plan, path.join(run.out, 'analyze', 'stage.json'));
  const free = shareStage(run, teacher, plan);
  const d = await distillStage(run, s, teacher, plan, opts);
  const students = [{ name: 'training-free student', model: free }, ...(d ? [{ name: 'distilled student', model: d.model }] : [])];
  const evaluation = await evaluateStage(run, s, teacher, students, opts);
  run.note('report', 'start');
  const summary = pipelineSummary(s, teacher.model, plan, a, d?.record ?? null, evaluation, run.skipped);
  const files = await writePipelineReport(run.out, summary);
  const full: PipelineSummary = { ...summary, files };
  writeFileAtomic(files.json, `${JSON.stringify(full, null, 2)}\n`);
  run.finish('report', { files });
  return full;
}

/** 1. Analysis and the plan (the stage keeps the JSON summary and the plan, not the raw typed-array statistics). */
async function analyzeStage(run: PipelineRun, s: PipelineSettings, t: LoadedModel, opts: PipelineOptions): Promise<AnalyzeRecord> {
  const prev = run.reuse<AnalyzeRecord>('analyze');
  if (prev) return prev;
  const result = await analyze(t.model, t.tokenizer, {
    data: s.data ?? undefined, encoding: s.textEncoding, seqs: s.analyzeSeqs, seqLen: Math.min(s.analyzeSeqLen, t.model.config.maxPositions), budget: s.budget,
    seed: s.seed, modelName: modelName(s.model), search: s.strategy === 'search' ? { align: s.align } : false,
    onProgress: (p) => opts.onProgress?.(`analyze (${p.phase})`, p.done, p.total),
  });
  const files = await writeAnalysisReport(result, run.dir('analyze'), { command: 'echoatt pipeline' });
  const outcome = result.plans[s.strategy];
  if (!outcome || outcome.plan.groups.every((g) => g.shared.length === 0)) {
    throw new PlanError('pipeline', `the '${s.strategy}' strategy shares nothing on this model (${outcome?.why ?? 'not computed'}); try --strategy search or a larger --budget`);
  }
  const rec: AnalyzeRecord = { summary: analysisSummary(result, files), plan: outcome.plan, why: outcome.why };
  run.finish('analyze', rec);
  return rec;
}

/** 2. The training-free student (rebuilt in memory when the stage is reused: it is the teacher's weights). */
function shareStage(run: PipelineRun, t: LoadedModel, plan: SharingPlan): LlamaModel {
  const student = buildStudent(t.model, plan);
  if (run.reuse('share')) return student;
  const dir = run.dir('share');
  writeFileAtomic(path.join(dir, 'plan.json'), `${JSON.stringify(plan, null, 2)}\n`);
  saveModel(path.join(dir, 'student'), student, t.checkpoint.tokenizerPath);
  run.finish('share', { studentDir: path.join(dir, 'student') });
  return student;
}

/** 3. Distillation (resumed from its checkpoint after an interruption); null when 0 steps. */
async function distillStage(
  run: PipelineRun, s: PipelineSettings, t: LoadedModel, plan: SharingPlan, opts: PipelineOptions,
): Promise<{ record: DistillRecord; model: LlamaModel } | null> {
  if (s.distillSteps === 0) return null;
  const dir = path.join(run.out, 'distill');
  const resume = fs.existsSync(path.join(dir, 'checkpoint.safetensors'));
  const prev = run.reuse<DistillRecord>('distill', resume ? 'resuming from its checkpoint' : undefined);
  if (prev) return { record: prev, model: loadModel(prev.studentDir, { backend: t.model.backend }).model };
  const res = await distill({
    teacher: t.model, tokenizer: t.checkpoint.tokenizerPath ?? t.tokenizer, plan,
    data: s.distillData ?? undefined, textEncoding: s.textEncoding, spreadData: true,
    generate: s.distillData ? undefined : { count: s.distillGenerate, length: Math.min(256, t.model.config.maxPositions) },
    steps: s.distillSteps, batch: s.distillBatch, seqLen: s.distillSeqLen, lr: s.distillLr, out: run.dir('distill'), resume, seed: s.seed,
    // Match the teacher's distribution (KL at T = 1) and train the layers sharing touches: the shared layers and their
    // anchors. Training every parameter on a sample of the training text fits that sample and gains less held out.
    loss: { alpha: 0, beta: 1, temperature: 1, gamma: 0 }, train: 'groups',
    handleSigint: true,
    onProgress: (p) => {
      if (p.phase === 'train') opts.onProgress?.('distill', p.step, p.steps);
      else if (p.phase === 'generate') opts.onProgress?.('distill (teacher samples)', p.done, p.total);
    },
  });
  if (res.interrupted) throw new InterruptedError(`pipeline: interrupted during distillation at step ${res.step}; rerun the same command with --resume to continue`);
  const { step, steps, tokensPerSec, trainableParams, lastLoss, evalBefore, evalAfter, studentDir, plotFiles } = res;
  const record: DistillRecord = { step, steps, tokensPerSec, trainableParams, lastLoss, evalBefore, evalAfter, studentDir, plotFiles };
  run.finish('distill', record);
  return { record, model: res.student };
}
