/** The end of a distillation run: metrics file upkeep, the loss plot, the summary, and the gap-closed figure. */
import fs from 'node:fs';
import path from 'node:path';
import { writeAtomic, writeAll, writeTextAtomic } from '../io/fsutil.js';
import { saveModel } from '../models/load.js';
import type { TrainResult } from '../train/loop.js';
import type { TokenDataset } from '../train/data.js';
import type { DistillFiles, DistillModels } from './setup.js';
import { lineChart, writeChart } from '../report/plot.js';
import type { LossWeights } from './loss.js';
import type { DistillOptions, DistillResult, EvalSet, ResolvedDistill } from './options.js';

/** Fraction of the student–teacher loss gap closed by training, per eval set: `(before − after) / (before − teacher)`. */
export function gapClosed(before?: EvalSet[], after?: EvalSet[]): Record<string, number> | undefined {
  if (!before || !after) return undefined;
  const out: Record<string, number> = {};
  for (const a of after) {
    const b = before.find((x) => x.name === a.name);
    if (!b) continue;
    const gap = b.student.loss - b.teacher.loss;
    out[a.name] = gap !== 0 ? (b.student.loss - a.student.loss) / gap : NaN;
  }
  return out;
}

/** Keep only metric lines of steps up to `step` (a killed run may have logged steps past its last checkpoint). */
export function truncateMetrics(file: string, step: number): void {
  if (!fs.existsSync(file)) return;
  const keep = fs.readFileSync(file, 'utf8').split('\n').filter((l) => {
    if (!l.trim()) return false;
    try {
      return (JSON.parse(l) as { step: number }).step <= step;
    } catch {
      return false; // a torn last line
    }
  });
  const text = keep.length ? `${keep.join('\n')}\n` : '';
  writeAtomic(file, (fd) => writeAll(fd, Buffer.from(text)));
}

/** `loss.svg` / `loss.png` from `metrics.jsonl`. */
export async function plotLoss(metricsFile: string, base: string, w: LossWeights): Promise<{ svg: string; png: string } | undefined> {
  if (!fs.existsSync(metricsFile)) return undefined;
  const rows = fs.readFileSync(metricsFile, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as Record<string, number>);
  if (rows.length === 0) return undefined;
  const x = rows.map((r) => r.step);
  const series = [{ name: 'total loss', x, y: rows.map((r) => r.loss) }, { name: 'CE (labels)', x, y: rows.map((r) => r.ce) }];
  if (w.beta !== 0) series.push({ name: `KL (T=${w.temperature})`, x, y: rows.map((r) => r.kl) });
  if (w.gamma !== 0) series.push({ name: 'hidden MSE', x, y: rows.map((r) => r.mse) });
  const chart = await lineChart(series, { title: 'Distillation loss', xTitle: 'step', yTitle: 'loss', subtitle: `α=${w.alpha} β=${w.beta} T=${w.temperature} γ=${w.gamma}` });
  return writeChart(chart, base);
}

/** A finished run: save the student (and its plan), evaluate after, plot, write `summary.json`. */
export async function finishRun(
  opts: DistillOptions, r: ResolvedDistill, m: DistillModels, files: DistillFiles, run: TrainResult, result: DistillResult,
  fingerprint: Record<string, unknown>, data: TokenDataset, runEval: () => EvalSet[],
): Promise<void> {
  const { student } = m;
  saveModel(result.studentDir, student, m.tokenizerPath);
  if (student.plan) writeTextAtomic(path.join(files.out, 'plan.json'), `${JSON.stringify(student.plan, null, 2)}\n`);
  const after = runEval();
  if (after.length) result.evalAfter = after;
  if (opts.plot ?? true) result.plotFiles = await plotLoss(files.metrics, path.join(files.out, 'loss'), r.loss);
  const summary = {
    teacher: typeof opts.teacher === 'string' ? opts.teacher : '(model)',
    student: typeof opts.student === 'string' ? opts.student : opts.plan !== undefined ? 'built from plan' : '(model)',
    plan: student.plan, options: fingerprint, data: { description: data.description, sequences: data.sequences.length },
    steps: run.state.step, tokens: run.state.tokens, trainMs: run.state.trainMs, lastLoss: run.lastLoss, trainableParams: result.trainableParams,
    evalBefore: result.evalBefore, evalAfter: result.evalAfter, gapClosed: gapClosed(result.evalBefore, result.evalAfter),
  };
  writeTextAtomic(path.join(files.out, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
}
