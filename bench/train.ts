/**
 * `npm run bench:train` — the distillation step of an EchoAtt student against its teacher's own training step.
 *
 * Model: the TinyLlama-1.1B shape (hidden 2048, 32 heads / 4 KV heads, FFN 5632, vocab 32000) cut to 4 layers
 * (`--layers N`), random f32 weights; student: layers 1 and 2 echo layer 0's attention (2 of 4 layers shared; their
 * q/k projections and score computation are gone). Tokens: T = 512 (`--seq`), batch 1 (`--batch`).
 *
 * Steps timed, each exactly what the training loop (`train/loop.ts`) runs per step:
 *   - teacher: forward through the autograd, cross-entropy, backward, gradient norm, AdamW (clip folded in), zero grads;
 *   - student, distillation: the teacher's logits (inference forward, as `TeacherTargets` computes them on the fly),
 *     the student's forward, loss α·CE + β·T²·KL (α = β = 0.5, T = 2: `DEFAULT_LOSS`), backward, norm, AdamW;
 *   - student, teacher logits cached: the same with the teacher's logits already computed (what `--teacher-cache`
 *     gives from the second epoch on);
 *   - student, `--train shared`: distillation training only the shared layers (the backward stops below them).
 * One round runs each once, in an order rotating from round to round; a warm-up round first. Speed ratio of a
 * variant = teacher step time / its step time, reported as the median (min–max) of the rounds (`--rounds N` or
 * BENCH_ROUNDS, default 5). The teacher trained by its own step is also the distillation teacher (its weights move by
 * lr 1e-5 per step; speed does not depend on them). Phase times (medians) and an analytic FLOP count explain the ratios.
 * Options: `--threads N` (default: the backend's).
 */
import { getBackend, simdLevel } from '../src/backend/index.js';
import { LlamaModel } from '../src/models/llama.js';
import type { LlamaConfig } from '../src/models/config.js';
import { randomLlamaWeights, tinyLlamaConfig } from '../src/models/random.js';
import { makePlan } from '../src/models/sharing-plan.js';
import { arraysOf, copyModel } from '../src/models/surgery.js';
import { buildStudent } from '../src/sharing/student.js';
import { apply, OPS, Tape } from '../src/autograd/index.js';
import { AdamW, clipScale, DEFAULT_LOSS, gradNorm, selectTrainable } from '../src/distill/index.js';
import { distillLoss } from '../src/distill/loss.js';
import { TeacherTargets } from '../src/distill/teacher.js';
import { forwardTrain, modelParams, type ModelParams } from '../src/models/tape-ops.js';
import { cpuModel, medianRange, peakRssGiB, tokens } from './common.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
}

const be = getBackend();
be.setThreads(Number(arg('threads', String(be.threads))));
const LAYERS = Number(arg('layers', '4'));
const T = Number(arg('seq', '512'));
const BATCH = Number(arg('batch', '1'));
const ROUNDS = Number(arg('rounds', process.env.BENCH_ROUNDS ?? '5'));
const GROUPS = [{ anchor: 0, shared: [1, 2] }];
const PHASES = ['teacher fwd', 'forward', 'loss', 'backward', 'optimizer'] as const;
type Phase = (typeof PHASES)[number];
type Times = Record<Phase, number>;

interface Trainee {
  model: LlamaModel;
  params: ModelParams;
  trainable: ReturnType<typeof selectTrainable>;
  opt: AdamW;
}

function trainee(model: LlamaModel, train: 'all' | 'shared', params = modelParams(model)): Trainee {
  const trainable = selectTrainable(model, params, train, false);
  return { model, params, trainable, opt: new AdamW(trainable, { backend: be }) };
}

/** One training step of `t`; `teacher` given: distillation (logits from `teacher()`), else cross-entropy. */
function step(t: Trainee, ids: Int32Array, targets: Int32Array, teacher?: () => Float32Array): Times {
  const times: Times = { 'teacher fwd': 0, forward: 0, loss: 0, backward: 0, optimizer: 0 };
  let t0 = performance.now();
  const lap = (p: Phase) => {
    const now = performance.now();
    times[p] = now - t0;
    t0 = now;
  };
  const V = t.model.config.vocabSize;
  const tl = teacher?.();
  lap('teacher fwd');
  const tape = new Tape(be);
  const s = forwardTrain(t.model, t.params, ids, { batch: BATCH, tape });
  lap('forward');
  const loss = tl
    ? distillLoss(be, tape, DEFAULT_LOSS, s, { logits: tl, hidden: new Map() }, targets, ids.length, V).loss
    : apply(tape, OPS.crossEntropy, { logits: s.logits, targets, rows: ids.length, cols: V });
  lap('loss');
  tape.backward(loss);
  lap('backward');
  const norm = gradNorm(t.trainable, be);
  t.opt.step(1e-5, clipScale(norm, 1));
  t.opt.zeroGrad();
  lap('optimizer');
  return times;
}

/** Forward FLOPs per token (matrix products and attention scores / P·V), causal average over T. */
function forwardFlops(c: Readonly<LlamaConfig>, echo: ReadonlySet<number>): { total: number; attention: number; head: number } {
  const d = c.hiddenSize;
  const kv = c.numKvHeads * c.headDim;
  const qd = c.numHeads * c.headDim;
  const tAvg = (T + 1) / 2;
  let total = 2 * d * c.vocabSize;
  let attention = 0;
  for (let l = 0; l < c.numLayers; l++) {
    const shared = echo.has(l);
    const qk = shared ? 0 : 2 * d * (qd + kv) + 2 * qd * tAvg; // q, k projections and Q·Kᵀ
    attention += qk;
    total += qk + 2 * d * kv + 2 * qd * d + 2 * qd * tAvg + 6 * d * c.intermediateSize;
  }
  return { total, attention, head: 2 * d * c.vocabSize };
}

function main(): void {
  const cfg = tinyLlamaConfig(LAYERS);
  const t0 = performance.now();
  const teacherModel = LlamaModel.fromWeights(cfg, randomLlamaWeights(cfg, { seed: 1, dtype: 'f32' }), be);
  const studentModel = copyModel(buildStudent(teacherModel, makePlan('manual', GROUPS)), arraysOf(teacherModel));
  const teacher = trainee(teacherModel, 'all');
  const student = trainee(studentModel, 'all');
  const sharedOnly = trainee(studentModel, 'shared');
  process.stderr.write(`built teacher and student (${LAYERS} layers, f32) in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  const targetsOf = new TeacherTargets(teacherModel, modelParams(teacherModel), T, [], undefined, 'bench');
  const n = T * BATCH;
  const data = Array.from({ length: ROUNDS + 1 }, (_, r) => {
    const ids = tokens(n + 1, cfg.vocabSize, 1000 + r);
    return { ids: ids.subarray(0, n), targets: ids.subarray(1) };
  });
  const idxs = Array.from({ length: BATCH }, (_, b) => b);
  type Variant = { name: string; run: (r: number) => Times };
  const cached = new Map<number, Float32Array>();
  const variants: Variant[] = [
    { name: 'teacher: training step (CE)', run: (r) => step(teacher, data[r].ids, data[r].targets) },
    { name: 'student: distillation step', run: (r) => step(student, data[r].ids, data[r].targets, () => targetsOf.get(idxs, data[r].ids).logits) },
    { name: 'student: distillation, teacher logits cached', run: (r) => step(student, data[r].ids, data[r].targets, () => cached.get(r)!) },
    { name: 'student: distillation, --train shared', run: (r) => step(sharedOnly, data[r].ids, data[r].targets, () => targetsOf.get(idxs, data[r].ids).logits) },
  ];
  for (let r = 0; r <= ROUNDS; r++) cached.set(r, targetsOf.get(idxs, data[r].ids).logits.slice());
  for (const v of variants) v.run(ROUNDS); // warm-up: gradient buffers, optimizer state, first-touch pages
  const ms: number[][] = variants.map(() => []);
  const phases: Times[][] = variants.map(() => []);
  for (let r = 0; r < ROUNDS; r++) {
    for (let i = 0; i < variants.length; i++) {
      const v = (i + r) % variants.length; // rotate who goes first
      const times = variants[v].run(r);
      phases[v].push(times);
      ms[v].push(Object.values(times).reduce((a, b) => a + b, 0));
    }
    process.stderr.write(`  round ${r + 1}/${ROUNDS}: ${ms.map((m) => m[r].toFixed(0)).join(' / ')} ms\r`);
  }
  process.stderr.write('\n');
  report(cfg, variants.map((v) => v.name), ms, phases, teacher, student, sharedOnly);
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function report(cfg: Readonly<LlamaConfig>, names: string[], ms: number[][], phases: Times[][], ...ts: Trainee[]): void {
  const count = (t: Trainee) => t.trainable.reduce((a, p) => a + p.data.length, 0);
  const trainable = [count(ts[0]), count(ts[1]), count(ts[1]), count(ts[2])];
  const out: string[] = [
    `bench:train — ${cpuModel()}, backend ${be.name} (SIMD ${simdLevel(be)}), ${be.threads} thread(s), node ${process.version}`,
    '',
    `TinyLlama-1.1B shape cut to ${LAYERS} layers (hidden 2048, 32 heads / 4 KV heads, FFN 5632, vocab 32000), random f32 weights; ` +
      `student: layers ${GROUPS[0].shared.join(', ')} echo layer ${GROUPS[0].anchor} (${GROUPS[0].shared.length} of ${LAYERS} shared); ${BATCH} × ${T} tokens per step; ` +
      `${ROUNDS} rounds (order rotating) after a warm-up; vs teacher = teacher step time / step time, median (min–max) of the rounds.`,
    '',
    '| step | trainable params | ms/step (median) | tok/s | vs teacher | ' + PHASES.map((p) => `${p} ms`).join(' | ') + ' |',
    '|---|---:|---:|---:|---:|' + PHASES.map(() => '---:').join('|') + '|',
  ];
  names.forEach((name, v) => {
    const m = median(ms[v]);
    const ratio = v === 0 ? '1.00×' : medianRange(ms[0].map((t, r) => t / ms[v][r]));
    const ph = PHASES.map((p) => median(phases[v].map((x) => x[p])).toFixed(0));
    out.push(`| ${name} | ${(trainable[v] / 1e6).toFixed(1)}M | ${m.toFixed(0)} | ${((T * BATCH * 1000) / m).toFixed(0)} | ${ratio} | ${ph.join(' | ')} |`);
  });
  const echo = new Set(GROUPS.flatMap((g) => g.shared));
  const ft = forwardFlops(cfg, new Set());
  const fs = forwardFlops(cfg, echo);
  const g = (x: number) => `${((x * T * BATCH) / 1e9).toFixed(0)} GFLOP`;
  out.push(
    '',
    `FLOPs per step (forward ≈ 1×, training step ≈ 3× forward): teacher forward ${g(ft.total)} (LM head ${g(ft.head)}, ` +
      `q/k projections + scores ${g(ft.attention)}); student forward ${g(fs.total)} (${((1 - fs.total / ft.total) * 100).toFixed(1)}% less). ` +
      `Expected speed vs teacher from FLOPs alone: distillation step 3·F_t / (3·F_s + F_t) = ${((3 * ft.total) / (3 * fs.total + ft.total)).toFixed(2)}×, ` +
      `teacher logits cached 3·F_t / 3·F_s = ${(ft.total / fs.total).toFixed(2)}×.`,
    `peak RSS ${peakRssGiB().toFixed(1)} GiB (teacher, student and their optimizer states in one process).`,
  );
  process.stdout.write(`${out.join('\n')}\n`);
}

main();
