/**
 * The whole method in one call: analyze → plan → share → (distill) → evaluate → report.
 *
 * Each stage writes into its own folder under `out` and finishes by writing `<stage>/stage.json` atomically; a rerun
 * with the same settings skips finished stages and resumes an interrupted distillation from its last checkpoint.
 * A previous run's results are never overwritten unless `force` is set.
 *
 * @example
 * ```ts
 * const summary = await runPipeline({ out: 'runs/stories', budget: 0.3, distillSteps: 200 });
 * console.log(summary.plan.groups, summary.files.html);
 * ```
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadModel, saveModel } from '../models/load.js';
import { analyze } from '../analysis/analyze.js';
import { writeReport as writeAnalysisReport, analysisSummary, type AnalysisSummary } from '../analysis/report.js';
import type { StrategyName } from '../analysis/strategies.js';
import { buildStudent } from '../sharing/student.js';
import { sharingCost, type SharingCost } from '../sharing/cost.js';
import { parsePlan, type SharingPlan } from '../models/sharing-plan.js';
import { distill } from '../distill/distill.js';
import { evaluate, type EvalReport } from '../eval/evaluate.js';
import { reportJson, tableRows } from '../eval/table.js';
import { writeFileAtomic } from '../report/plot.js';
import { OptionError } from '../errors.js';
import { SHARED_DIR } from '../paths.js';
import { planSharing } from './plan-sharing.js';
import { writePipelineReport, type PipelineReportFiles } from './report.js';
import { type DistillResult } from '../distill/options.js';

export interface PipelineOptions {
  /** Output directory. */
  out: string;
  /** Teacher model (default: stories260K from ../shared). */
  model?: string;
  /** Calibration text for the analysis (default: the Gutenberg corpus). */
  data?: string;
  /** Fraction of attention FLOPs the plan removes (budget strategy). Default 0.3. */
  budget?: number;
  /** Plan strategy. Default `budget`. */
  strategy?: StrategyName;
  analyzeSeqs?: number;
  analyzeSeqLen?: number;
  /** Distillation steps; 0 skips distillation. Default 150. */
  distillSteps?: number;
  /** Training text for distillation; default: teacher-generated samples (EchoAtt's first stage). */
  distillData?: string;
  /** Teacher samples to generate when no distillation data is given. Default 160. */
  distillGenerate?: number;
  /** Distillation batch (sequences) and sequence length. Defaults 8 and 128. */
  distillBatch?: number;
  distillSeqLen?: number;
  /** Zero-shot tasks. Default: all built-in tasks. */
  tasks?: string[];
  /** Items per task. Default 100. */
  limit?: number;
  /** Perplexity corpus. Default WikiText-2 test. */
  ppl?: string;
  /** Cap on perplexity tokens. Default 16384. */
  pplTokens?: number;
  /** Overwrite a previous run. */
  force?: boolean;
  seed?: number;
  onStage?: (stage: string, state: 'start' | 'skip' | 'done', detail?: string) => void;
  onProgress?: (stage: string, done: number, total: number) => void;
}

export interface PipelineSummary {
  format: 'echoatt-pipeline/1';
  settings: Record<string, unknown>;
  teacher: { path: string; parameters: number; layers: number };
  plan: SharingPlan;
  planWhy: string;
  cost: SharingCost;
  analysis: AnalysisSummary;
  distill: Pick<DistillResult, 'step' | 'steps' | 'tokensPerSec' | 'trainableParams' | 'lastLoss' | 'evalBefore' | 'evalAfter'> | null;
  evaluation: ReturnType<typeof reportJson>;
  stagesSkipped: string[];
  files: PipelineReportFiles;
}

const STAGES = ['analyze', 'share', 'distill', 'evaluate', 'report'] as const;
type Stage = (typeof STAGES)[number];

interface StageRecord {
  stage: Stage;
  fingerprint: string;
  finishedAt: string;
  result: unknown;
}


/** Settings with defaults filled in; their JSON is the run's fingerprint. */
export function resolvePipelineSettings(o: PipelineOptions) {
  const shared = SHARED_DIR;
  const s = {
    model: path.resolve(o.model ?? path.join(shared, 'models/stories260K/stories260K.bin')),
    data: o.data ? path.resolve(o.data) : null,
    budget: o.budget ?? 0.3,
    strategy: o.strategy ?? ('budget' as StrategyName),
    analyzeSeqs: o.analyzeSeqs ?? 16,
    analyzeSeqLen: o.analyzeSeqLen ?? 256,
    distillSteps: o.distillSteps ?? 150,
    distillData: o.distillData ? path.resolve(o.distillData) : null,
    distillGenerate: o.distillGenerate ?? 160,
    distillBatch: o.distillBatch ?? 8,
    distillSeqLen: o.distillSeqLen ?? 128,
    tasks: o.tasks ?? ['hellaswag', 'piqa', 'arc_easy', 'arc_challenge', 'boolq', 'openbookqa', 'winogrande', 'lambada_openai'],
    limit: o.limit ?? 100,
    ppl: path.resolve(o.ppl ?? path.join(shared, 'data/wikitext2/wiki.test.raw')),
    pplTokens: o.pplTokens ?? 16384,
    seed: o.seed ?? 1,
  };
  if (!(s.budget > 0 && s.budget < 1)) throw new OptionError('--budget', `expected a fraction in (0, 1), got ${s.budget}`);
  if (!['echoatt', 'span', 'budget'].includes(s.strategy)) throw new OptionError('--strategy', `expected echoatt, span or budget, got '${s.strategy}'`);
  for (const [k, v] of [['--distill-steps', s.distillSteps], ['--limit', s.limit], ['--seqs', s.analyzeSeqs], ['--seq-len', s.analyzeSeqLen]] as const) {
    if (!(Number.isInteger(v) && v >= 0)) throw new OptionError(k, `expected a non-negative integer, got ${v}`);
  }
  return s;
}

type Settings = ReturnType<typeof resolvePipelineSettings>;

/** Refuse to clobber a different or finished previous run unless forced; clear it when forced. */
function prepareOut(out: string, fingerprint: string, force: boolean): void {
  const marker = path.join(out, 'pipeline.json');
  if (fs.existsSync(out) && fs.readdirSync(out).length > 0) {
    if (force) {
      fs.rmSync(out, { recursive: true, force: true });
    } else if (!fs.existsSync(marker)) {
      throw new OptionError('--out', `${out} exists and is not an echoatt pipeline run; choose another folder or pass --force to replace it`);
    } else {
      const prev = JSON.parse(fs.readFileSync(marker, 'utf8')) as { fingerprint: string };
      if (prev.fingerprint !== fingerprint) {
        throw new OptionError('--out', `${out} holds a run with different settings; pass --force to replace it, or use another folder`);
      }
      if (fs.existsSync(path.join(out, 'report', 'stage.json'))) {
        throw new OptionError('--out', `${out} already holds a complete run with these settings (see ${path.join(out, 'report.html')}); pass --force to run it again`);
      }
    }
  }
  fs.mkdirSync(out, { recursive: true });
  writeFileAtomic(marker, `${JSON.stringify({ format: 'echoatt-pipeline/1', fingerprint }, null, 2)}\n`);
}

function readStage(out: string, stage: Stage, fingerprint: string): StageRecord | null {
  const f = path.join(out, stage, 'stage.json');
  if (!fs.existsSync(f)) return null;
  const rec = JSON.parse(fs.readFileSync(f, 'utf8')) as StageRecord;
  return rec.fingerprint === fingerprint ? rec : null;
}

function finishStage(out: string, stage: Stage, fingerprint: string, result: unknown): void {
  const rec: StageRecord = { stage, fingerprint, finishedAt: new Date().toISOString(), result };
  writeFileAtomic(path.join(out, stage, 'stage.json'), `${JSON.stringify(rec, null, 2)}\n`);
}

/** Run (or resume) the pipeline. */
export async function runPipeline(opts: PipelineOptions): Promise<PipelineSummary> {
  const s: Settings = resolvePipelineSettings(opts);
  const out = path.resolve(opts.out);
  const fingerprint = JSON.stringify(s);
  prepareOut(out, fingerprint, opts.force ?? false);
  const skipped: string[] = [];
  const note = opts.onStage ?? (() => {});
  const stageDir = (st: Stage) => {
    const d = path.join(out, st);
    fs.mkdirSync(d, { recursive: true });
    return d;
  };

  const { model: teacher, tokenizer, checkpoint } = loadModel(s.model);
  const tokenizerPath = checkpoint.tokenizerPath;

  // 1. analyze (the stage record keeps the JSON summary and the chosen plan, not the raw typed-array statistics)
  let analysis: AnalysisSummary;
  let plan: SharingPlan;
  let why: string;
  const aRec = readStage(out, 'analyze', fingerprint);
  if (aRec) {
    const r = aRec.result as { summary: AnalysisSummary; plan: unknown; why: string };
    analysis = r.summary;
    plan = parsePlan(r.plan, path.join(out, 'analyze', 'stage.json'));
    why = r.why;
    skipped.push('analyze');
    note('analyze', 'skip');
  } else {
    note('analyze', 'start');
    const result = await analyze(teacher, tokenizer, {
      data: s.data ?? undefined,
      seqs: s.analyzeSeqs,
      seqLen: Math.min(s.analyzeSeqLen, teacher.config.maxPositions),
      budget: s.budget,
      modelName: path.basename(s.model).replace(/\.bin$/, ''),
      onProgress: (p) => opts.onProgress?.('analyze', p.done, p.total),
    });
    const files = await writeAnalysisReport(result, stageDir('analyze'), { command: 'echoatt pipeline' });
    analysis = analysisSummary(result, files);
    ({ plan, why } = planSharing(result, s.strategy));
    finishStage(out, 'analyze', fingerprint, { summary: analysis, plan, why });
    note('analyze', 'done');
  }
  const cost = sharingCost(teacher.config, plan, teacher.config.maxPositions);

  // 2. share (training-free student)
  const freeDir = path.join(out, 'share', 'student');
  if (readStage(out, 'share', fingerprint)) {
    skipped.push('share');
    note('share', 'skip');
  } else {
    note('share', 'start');
    stageDir('share');
    writeFileAtomic(path.join(out, 'share', 'plan.json'), `${JSON.stringify(plan, null, 2)}\n`);
    saveModel(freeDir, buildStudent(teacher, plan), tokenizerPath);
    finishStage(out, 'share', fingerprint, { cost });
    note('share', 'done');
  }

  // 3. distill
  let distilled: DistillResult | null = null;
  if (s.distillSteps > 0) {
    const dRec = readStage(out, 'distill', fingerprint);
    if (dRec) {
      distilled = dRec.result as DistillResult;
      skipped.push('distill');
      note('distill', 'skip');
    } else {
      const dir = stageDir('distill');
      const resume = fs.existsSync(path.join(dir, 'checkpoint.safetensors'));
      note('distill', 'start', resume ? 'resuming from its checkpoint' : undefined);
      distilled = await distill({
        teacher: s.model,
        plan,
        data: s.distillData ?? undefined,
        generate: s.distillData ? undefined : { count: s.distillGenerate, length: Math.min(256, teacher.config.maxPositions) },
        steps: s.distillSteps,
        batch: s.distillBatch,
        seqLen: s.distillSeqLen,
        out: dir,
        resume,
        seed: s.seed,
        evalGenerate: 16,
        handleSigint: true,
        onProgress: (p) => {
          if (p.phase === 'train') opts.onProgress?.('distill', p.step, p.steps);
          else if (p.phase === 'generate') opts.onProgress?.('distill (teacher samples)', p.done, p.total);
        },
      });
      if (distilled.interrupted) {
        throw new OptionError('pipeline', `interrupted during distillation at step ${distilled.step}; rerun the same command to resume`);
      }
      finishStage(out, 'distill', fingerprint, distilled);
      note('distill', 'done');
    }
  }

  // 4. evaluate
  let evaluation: EvalReport;
  const eRec = readStage(out, 'evaluate', fingerprint);
  if (eRec) {
    evaluation = eRec.result as EvalReport;
    skipped.push('evaluate');
    note('evaluate', 'skip');
  } else {
    note('evaluate', 'start');
    const models: { name: string; path: string }[] = [
      { name: 'teacher', path: s.model },
      { name: 'training-free student', path: freeDir },
    ];
    if (distilled) models.push({ name: 'distilled student', path: distilled.studentDir });
    evaluation = await evaluate(models, {
      tasks: s.tasks,
      limit: s.limit,
      ppl: { path: s.ppl, modes: ['chunks'], maxTokens: s.pplTokens, wordByte: false },
      speed: { contexts: [Math.min(128, teacher.config.maxPositions >> 1), Math.min(512, teacher.config.maxPositions - 64)] },
      onProgress: (e) => opts.onProgress?.(`evaluate ${e.model}: ${e.stage}`, e.done, e.total),
    });
    stageDir('evaluate');
    writeFileAtomic(path.join(out, 'evaluate', 'results.json'), `${JSON.stringify(reportJson(evaluation), null, 2)}\n`);
    finishStage(out, 'evaluate', fingerprint, evaluation);
    note('evaluate', 'done');
  }

  // 5. report
  note('report', 'start');
  const summaryBase = {
    format: 'echoatt-pipeline/1' as const,
    settings: s,
    teacher: { path: s.model, parameters: teacher.parameterCount(), layers: teacher.config.numLayers },
    plan,
    planWhy: why,
    cost,
    analysis,
    distill: distilled
      ? { step: distilled.step, steps: distilled.steps, tokensPerSec: distilled.tokensPerSec, trainableParams: distilled.trainableParams, lastLoss: distilled.lastLoss, evalBefore: distilled.evalBefore, evalAfter: distilled.evalAfter }
      : null,
    evaluation: reportJson(evaluation),
    stagesSkipped: skipped,
  };
  const files = await writePipelineReport(out, {
    ...summaryBase,
    rows: tableRows(evaluation),
    modelNames: evaluation.models.map((m) => m.name),
    lossCurve: distilled?.plotFiles?.png ?? null,
  });
  const summary: PipelineSummary = { ...summaryBase, files };
  writeFileAtomic(files.json, `${JSON.stringify(summary, null, 2)}\n`);
  finishStage(out, 'report', fingerprint, { files });
  note('report', 'done');
  return summary;
}


