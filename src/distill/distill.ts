/**
 * `distill(opts)`: knowledge distillation of a (shared-attention) student from its teacher, on CPU, crash-safe.
 * This file is the method: set-up and the loss. Batching, AdamW with warmup + cosine, clipping, checkpoints,
 * bit-identical resume and Ctrl-C handling are the shared training loop's (`train/loop.ts`).
 *
 * Per optimizer step: `accum` micro-batches of `batch` sequences of `seqLen` tokens; the teacher runs in inference
 * mode (logits on the fly or from a disk cache), the student through the autograd; loss {@link distillLoss}.
 *
 * Output folder: `student/` (Hugging Face layout, plan in config.json), `plan.json`, `checkpoint.safetensors`,
 * `metrics.jsonl` (one line per step), `loss.svg` / `loss.png`, `summary.json`, `teacher-samples.jsonl` (when
 * sampling from the teacher).
 *
 * @example
 * ```ts
 * import { distill } from 'echoatt';
 * const res = await distill({
 *   teacher: '../shared/models/stories260K/stories260K.bin',
 *   plan: { format: 'echoatt-plan', version: 1, strategy: 'manual', groups: [{ anchor: 1, shared: [2, 3] }] },
 *   generate: { count: 200, length: 256 },      // train on the teacher's own samples
 *   steps: 300, seqLen: 128, batch: 8, lr: 2e-3,
 *   out: 'runs/stories-student',
 *   onProgress: (p) => p.phase === 'train' && console.log(p.step, p.loss),
 * });
 * console.log(res.studentDir, res.evalAfter);
 * ```
 */
import fs from 'node:fs';
import path from 'node:path';
import { modelParams, forwardTrain } from '../models/tape-ops.js';
import { CheckpointStateError } from '../errors.js';
import { AdamW } from '../train/optim.js';
import { lrAt } from '../train/schedule.js';
import { readCheckpointState } from '../train/checkpoint.js';
import { train } from '../train/loop.js';
import { selectTrainable } from '../train/select.js';
import { evaluateLoss } from '../train/evaluate.js';
import { distillLoss } from './loss.js';
import { posInt, resolveDistillOptions, SOFT_KEYS, type DistillOptions, type DistillResult, type EvalSet } from './options.js';
import { distillData, distillEvalSets, distillFiles, distillModels, hiddenLayersOf } from './setup.js';
import { TeacherTargets } from './teacher.js';
import { finishRun, truncateMetrics } from './finish.js';
import { appendLine } from '../io/fsutil.js';

export async function distill(opts: DistillOptions): Promise<DistillResult> {
  const r = resolveDistillOptions(opts);
  const w = r.loss;
  const files = distillFiles(opts.out);
  fs.mkdirSync(files.out, { recursive: true });
  const prior = opts.resume ? readCheckpointState(files.checkpoint) : null;
  if (opts.resume && !prior) throw new CheckpointStateError(files.checkpoint, 'no checkpoint to resume from');
  const m = distillModels(opts, r);
  const { teacher, student } = m;
  const V = teacher.config.vocabSize;
  const hiddenLayers = hiddenLayersOf(opts, r, m);
  const emit = opts.onProgress ?? (() => {});
  const maxDataTokens = opts.maxDataTokens ?? (prior?.fingerprint.maxDataTokens as number | undefined) ?? r.steps * r.accum * r.batch * (r.seqLen + 1);
  const data = await distillData(opts, r, m, files, prior !== null, maxDataTokens, emit);

  const sp = modelParams(student);
  const tp = modelParams(teacher);
  for (const p of tp.list) p.requiresGrad = false;
  const trainable = selectTrainable(student, sp, opts.train ?? 'all', opts.freezeEmbeddings ?? false);
  const optimizer = new AdamW(trainable, { beta1: opts.beta1, beta2: opts.beta2, weightDecay: opts.weightDecay, backend: student.backend });
  const fingerprint: Record<string, unknown> = {
    steps: r.steps, seqLen: r.seqLen, batch: r.batch, accum: r.accum, seed: r.seed, lr: r.lr, minLr: r.minLr, warmup: r.warmup, clip: r.clip,
    weightDecay: optimizer.weightDecay, beta1: optimizer.beta1, beta2: optimizer.beta2, loss: w, hiddenLayers, train: opts.train ?? 'all',
    freezeEmbeddings: opts.freezeEmbeddings ?? false, data: data.description, dataFingerprint: data.fingerprint, maxDataTokens,
    checkpointEvery: r.ckptEvery, trainable: trainable.map((p) => p.name),
  };
  const evalSets = await distillEvalSets(opts, r, m, files, prior !== null, posInt(opts.evalMaxSeqs, 'eval-max-seqs', 64));
  const runEval = (): EvalSet[] => evalSets.map((s) => {
    emit({ phase: 'eval', what: s.name });
    return { name: s.name, teacher: evaluateLoss(teacher, s.seqs), student: evaluateLoss(student, s.seqs) };
  });
  let evalBefore = prior?.evalBefore as EvalSet[] | undefined;
  if (prior) truncateMetrics(files.metrics, prior.step);
  else {
    evalBefore = evalSets.length ? runEval() : undefined;
    fs.rmSync(files.metrics, { force: true });
  }

  const targets = new TeacherTargets(teacher, tp, r.seqLen, hiddenLayers, opts.teacherCache, data.fingerprint);
  const needTeacher = w.beta !== 0 || w.gamma !== 0;
  const run = await train({
    backend: student.backend, params: sp.list, trainable, optimizer, data, steps: r.steps, batch: r.batch, seqLen: r.seqLen, accum: r.accum,
    schedule: (step) => lrAt(step, r.steps, r.lr, r.minLr, r.warmup), clip: r.clip, seed: r.seed, resume: prior, evalBefore,
    checkpoint: { file: files.checkpoint, every: r.ckptEvery, fingerprint, softKeys: SOFT_KEYS },
    signal: opts.signal, handleSigint: opts.handleSigint,
    loss: (b, tape) => {
      const t = needTeacher ? targets.get(b.idxs, b.ids) : { logits: new Float32Array(0), hidden: new Map<number, Float32Array>() };
      const s = forwardTrain(student, sp, b.ids, { batch: b.batch, tape, hiddenLayers });
      const parts = distillLoss(student.backend, tape, w, s, t, b.targets, b.ids.length, V);
      return { loss: parts.loss, parts: { ce: parts.ce, kl: parts.kl, mse: parts.mse } };
    },
    onLog: (s) => {
      const line = { step: s.step, loss: s.loss, ce: s.parts.ce, kl: s.parts.kl, mse: s.parts.mse, lr: s.lr, gradNorm: s.gradNorm, tokens: s.tokens, tokensPerSec: s.tokensPerSec, ms: s.ms };
      appendLine(files.metrics, JSON.stringify(line));
      emit({ phase: 'train', step: s.step, steps: s.steps, startStep: s.startStep, loss: s.loss, ce: s.parts.ce, kl: s.parts.kl, mse: s.parts.mse, lr: s.lr, tokensPerSec: s.tokensPerSec });
    },
    onStep: (s) => opts.onStep?.({ step: s.step, loss: s.loss, ce: s.parts.ce, kl: s.parts.kl, mse: s.parts.mse, lr: s.lr, gradNorm: s.gradNorm, tokens: s.tokens, checkpointed: s.checkpointed }),
  });
  const { state } = run;
  const result: DistillResult = {
    outDir: files.out, studentDir: path.join(files.out, 'student'), checkpoint: files.checkpoint, metricsFile: files.metrics, step: state.step, steps: r.steps,
    interrupted: run.interrupted, resumedFrom: run.resumedFrom, lastLoss: run.lastLoss, tokensPerSec: run.tokensPerSec,
    trainableParams: trainable.reduce((a, p) => a + p.data.length, 0), evalBefore,
  } as DistillResult;
  // The model rides along without being enumerable, so JSON.stringify(result) stays a small summary.
  Object.defineProperty(result, 'student', { value: student, enumerable: false });
  if (!run.interrupted) await finishRun(opts, r, m, files, run, result, fingerprint, data, runEval);
  return result;
}
