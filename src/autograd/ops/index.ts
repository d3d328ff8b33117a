/**
 * The op table: every differentiable op the decoder's trainable forward (`models/tape-ops.ts`) uses. Each entry is an
 * `OpDef`, whose type requires a `backward` next to its `forward`, so an op without a gradient cannot be added.
 */
import type { AnyOp } from '../tape.js';
import { linear, linearRuns } from './linear.js';
import { rmsnorm } from './norm.js';
import { rope } from './rope.js';
import { attention, gatherHeads, probsTimesV } from './attention.js';
import { add, embedding, geluTanhMul, scale, siluMul, softcap } from './elementwise.js';
import { crossEntropy, klDiv, mse, weightedSum } from './losses.js';

export const OPS = {
  linear,
  linearRuns,
  rmsnorm,
  rope,
  attention,
  probsTimesV,
  gatherHeads,
  add,
  siluMul,
  geluTanhMul,
  scale,
  softcap,
  embedding,
  crossEntropy,
  klDiv,
  mse,
  weightedSum,
} as const satisfies Record<string, AnyOp>;

export type OpName = keyof typeof OPS;
export { linear, linearRuns, rmsnorm, rope, attention, probsTimesV, gatherHeads, add, siluMul, geluTanhMul, scale, softcap, embedding, crossEntropy, klDiv, mse, weightedSum };
export type { LinearArgs, LinearRunsArgs, LinearRunVar } from './linear.js';
export type { RmsNormArgs } from './norm.js';
export type { RopeArgs } from './rope.js';
export type { AttentionArgs, AttentionOut, ProbsTimesVArgs, AttentionShape, GatherHeadsArgs } from './attention.js';
export type { AddArgs, SiluMulArgs, ScaleArgs, SoftcapArgs, EmbeddingArgs } from './elementwise.js';
export type { CrossEntropyArgs, KlDivArgs, MseArgs, WeightedSumArgs } from './losses.js';
