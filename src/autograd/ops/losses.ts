/**
 * Scalar losses (each returns a length-1 Var) and their gradients:
 * - {@link crossEntropy}: mean over rows of `−log softmax(logits)[target]` (rows whose target is `ignoreIndex` skipped);
 * - {@link klDiv}: `KL(teacher ‖ student)` at temperature `T`, mean over rows:
 *   `(1/R) Σ_r Σ_j p_j (log p_j − log q_j)`, `p = softmax(teacher/T)`, `q = softmax(student/T)`;
 *   gradient `(q − p) / (T·R)` (the caller multiplies by `T²` to keep gradient scale independent of `T`);
 * - {@link mse}: mean squared error against a constant target;
 * - {@link weightedSum}: `Σ w_i · L_i`.
 * Sums are accumulated in float64; the per-row losses and their gradients are backend kernels (`crossEntropy`,
 * `klDivergence`).
 */
import { accumulate, commitGrad, defineOp, defineVarOp, gradTarget, Var } from '../tape.js';

export type CrossEntropyArgs = {
  logits: Var; // (rows, cols)
  targets: Int32Array; // (rows)
  rows: number;
  cols: number;
  ignoreIndex?: number;
};
type CeSaved = CrossEntropyArgs & { y: Var; count: number };

export const crossEntropy = defineOp<CrossEntropyArgs, Var, CeSaved>({
  name: 'crossEntropy',
  forward(be, a) {
    const ignore = a.ignoreIndex ?? -100;
    const losses = new Float32Array(a.rows);
    be.crossEntropy(a.logits.data, a.targets, losses, a.rows, a.cols, undefined, 1, ignore);
    let sum = 0;
    let count = 0;
    for (let r = 0; r < a.rows; r++) {
      if (a.targets[r] === ignore) continue;
      sum += losses[r];
      count++;
    }
    const y = new Var(Float32Array.of(count ? sum / count : 0));
    return { out: y, saved: { ...a, y, count } };
  },
  backward(be, s) {
    const dy = s.y.grad;
    if (!dy || !s.logits.requiresGrad || s.count === 0) return;
    const d = new Float32Array(s.rows * s.cols);
    be.crossEntropy(s.logits.data, s.targets, new Float32Array(s.rows), s.rows, s.cols, d, dy[0] / s.count, s.ignoreIndex ?? -100);
    accumulate(be, s.logits, d, true);
  },
});

export type KlDivArgs = {
  student: Var; // (rows, cols) logits
  teacher: Float32Array; // (rows, cols) logits
  rows: number;
  cols: number;
  temperature: number;
};
type KlSaved = KlDivArgs & { y: Var };

/** Per-row KL on the backend (`klDivergence`); the backward runs the kernel again with the gradient (nothing saved). */
export const klDiv = defineOp<KlDivArgs, Var, KlSaved>({
  name: 'klDiv',
  forward(be, a) {
    const n = a.rows * a.cols;
    if (a.teacher.length !== n) throw new Error(`klDiv: teacher logits have ${a.teacher.length} elements, expected ${n}`);
    const losses = new Float32Array(a.rows);
    be.klDivergence(a.student.data, a.teacher, losses, a.rows, a.cols, a.temperature);
    let sum = 0;
    for (let r = 0; r < a.rows; r++) sum += losses[r];
    const y = new Var(Float32Array.of(a.rows ? sum / a.rows : 0));
    return { out: y, saved: { ...a, y } };
  },
  backward(be, s) {
    const dy = s.y.grad;
    if (!dy || !s.student.requiresGrad || s.rows === 0) return;
    const g = gradTarget(s.student);
    be.klDivergence(s.student.data, s.teacher, new Float32Array(s.rows), s.rows, s.cols, s.temperature, g.buf, dy[0] / (s.temperature * s.rows));
    commitGrad(be, s.student, g);
  },
});

export type MseArgs = { x: Var; target: Float32Array };

export const mse = defineVarOp<MseArgs>({
  name: 'mse',
  forward(_be, a) {
    const n = a.x.data.length;
    if (a.target.length !== n) throw new Error(`mse: target has ${a.target.length} elements, expected ${n}`);
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const d = a.x.data[i] - a.target[i];
      sum += d * d;
    }
    return Float32Array.of(n ? sum / n : 0);
  },
  backward(be, s, dy) {
    if (!s.x.requiresGrad) return;
    const n = s.x.data.length;
    const k = (2 * dy[0]) / n;
    const g = new Float32Array(n);
    for (let i = 0; i < n; i++) g[i] = k * (s.x.data[i] - s.target[i]);
    accumulate(be, s.x, g, true);
  },
});

export type WeightedSumArgs = { terms: readonly Var[]; weights: readonly number[] };

export const weightedSum = defineVarOp<WeightedSumArgs>({
  name: 'weightedSum',
  forward(_be, a) {
    if (a.terms.length !== a.weights.length) throw new Error('weightedSum: terms and weights differ in length');
    let sum = 0;
    a.terms.forEach((t, i) => {
      if (t.data.length !== 1) throw new Error('weightedSum: terms must be scalars');
      sum += a.weights[i] * t.data[0];
    });
    return Float32Array.of(sum);
  },
  backward(be, s, dy) {
    s.terms.forEach((t, i) => accumulate(be, t, Float32Array.of(s.weights[i] * dy[0]), true));
  },
});
