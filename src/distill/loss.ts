/**
 * The distillation objective for one micro-batch:
 *
 * `L = α · CE(student, labels) + β · T² · KL(softmax(teacher/T) ‖ softmax(student/T)) + γ · mean_l MSE(h_l^student, h_l^teacher)`
 *
 * (Hinton et al.'s soft-target loss scaled by `T²` so its gradient does not shrink with the temperature, plus
 * hidden-state matching on chosen layers as in EchoAtt's intermediate-layer distillation). Defaults:
 * {@link DEFAULT_LOSS}.
 */
import type { Backend } from '../backend/backend.js';
import { apply, Tape, Var } from '../autograd/tape.js';
import { OPS } from '../autograd/ops/index.js';

export interface LossWeights {
  /** Weight of the cross-entropy on the data's next tokens. */
  alpha: number;
  /** Weight of the temperature-scaled KL to the teacher. */
  beta: number;
  /** Softmax temperature of the KL term. */
  temperature: number;
  /** Weight of the hidden-state MSE. */
  gamma: number;
}

/** α = 0.5, β = 0.5, T = 2, γ = 0 (no hidden-state term unless asked for). */
export const DEFAULT_LOSS: Readonly<LossWeights> = Object.freeze({ alpha: 0.5, beta: 0.5, temperature: 2, gamma: 0 });

export interface LossParts {
  loss: Var;
  /** Term values (CE is always computed, for logging, even when α = 0). */
  ce: number;
  kl: number;
  mse: number;
}

export function distillLoss(
  be: Backend, tape: Tape | null, w: LossWeights,
  student: { logits: Var; hidden: Map<number, Var> },
  teacher: { logits: Float32Array; hidden: Map<number, Float32Array> },
  targets: Int32Array, rows: number, vocab: number,
): LossParts {
  const terms: Var[] = [];
  const weights: number[] = [];
  const ce = apply(w.alpha !== 0 ? tape : null, OPS.crossEntropy, { logits: student.logits, targets, rows, cols: vocab }, be);
  if (w.alpha !== 0) {
    terms.push(ce);
    weights.push(w.alpha);
  }
  let kl = 0;
  if (w.beta !== 0) {
    const k = apply(tape, OPS.klDiv, { student: student.logits, teacher: teacher.logits, rows, cols: vocab, temperature: w.temperature }, be);
    terms.push(k);
    weights.push(w.beta * w.temperature * w.temperature);
    kl = k.data[0];
  }
  let mse = 0;
  if (w.gamma !== 0 && student.hidden.size > 0) {
    const per = w.gamma / student.hidden.size;
    for (const [l, h] of student.hidden) {
      const target = teacher.hidden.get(l);
      if (!target) throw new Error(`distillLoss: no teacher hidden state for layer ${l}`);
      const m = apply(tape, OPS.mse, { x: h, target }, be);
      terms.push(m);
      weights.push(per);
      mse += m.data[0] / student.hidden.size;
    }
  }
  const loss = apply(tape, OPS.weightedSum, { terms, weights }, be);
  return { loss, ce: ce.data[0], kl, mse };
}
