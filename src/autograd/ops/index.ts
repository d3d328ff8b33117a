/**
 * The op table: every differentiable op the Llama and shared-attention forward passes use. Each entry is an
 * `OpDef`, whose type requires a `backward` next to its `forward`, so an op without a gradient cannot be added.
 */
import type { AnyOp } from '../tape.js';
import { linear } from './linear.js';
import { rmsnorm } from './norm.js';
import { rope } from './rope.js';
import { attention, probsTimesV } from './attention.js';
import { add, embedding, siluMul } from './elementwise.js';
import { crossEntropy, klDiv, mse, weightedSum } from './losses.js';

export const OPS = {
  linear,
  rmsnorm,
  rope,
  attention,
  probsTimesV,
  add,
  siluMul,
  embedding,
  crossEntropy,
  klDiv,
  mse,
  weightedSum,
} as const satisfies Record<string, AnyOp>;

export type OpName = keyof typeof OPS;
export { linear, rmsnorm, rope, attention, probsTimesV, add, siluMul, embedding, crossEntropy, klDiv, mse, weightedSum };
export type { LinearArgs } from './linear.js';
export type { RmsNormArgs } from './norm.js';
export type { RopeArgs } from './rope.js';
export type { AttentionArgs, AttentionOut, ProbsTimesVArgs, AttentionShape } from './attention.js';
export type { AddArgs, SiluMulArgs, EmbeddingArgs } from './elementwise.js';
export type { CrossEntropyArgs, KlDivArgs, MseArgs, WeightedSumArgs } from './losses.js';
