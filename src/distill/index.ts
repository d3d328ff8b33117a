/**
 * Knowledge distillation of shared-attention students (EchoAtt's "adjust" step): {@link distill} and its parts.
 */
export {
  distill, evaluateLoss, gapClosed, selectTrainable,
  type DistillOptions, type DistillResult, type DistillProgress, type StepInfo, type EvalResult, type EvalSet,
  type GenerateDataOptions, type TrainSelection,
} from './distill.js';
export { DEFAULT_LOSS, distillLoss, type LossWeights, type LossParts } from './loss.js';
export { AdamW, lrAt, clipGradNorm, type AdamWOptions } from './optim.js';
export { Rng32 } from './rng.js';
export { saveCheckpoint, loadCheckpoint, readCheckpointState, CheckpointStateError, CHECKPOINT_FORMAT, type TrainState } from './checkpoint.js';
export { textSequences, packDocuments, sampleFromTeacher, writeSamples, readSamples, fingerprint, type TokenDataset, type SampleOptions } from './data.js';
