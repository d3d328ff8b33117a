/**
 * Knowledge distillation of shared-attention students (EchoAtt's "adjust" step): {@link distill} and its parts.
 * The optimizer, schedule, checkpoints and data live in `train/`, shared with every fine-tuning method.
 */
export { distill } from './distill.js';
export {
  type DistillOptions, type DistillResult, type DistillProgress, type StepInfo, type EvalSet, type GenerateDataOptions,
} from './options.js';
export { gapClosed } from './finish.js';
export { DEFAULT_LOSS, distillLoss, type LossWeights, type LossParts } from './loss.js';
export { evaluateLoss, type EvalResult } from '../train/evaluate.js';
export { selectTrainable, type TrainSelection } from '../train/select.js';
export { AdamW, clipGradNorm, clipScale, gradNorm, type AdamWOptions } from '../train/optim.js';
export { lrAt } from '../train/schedule.js';
export { Rng32 } from '../train/rng.js';
export { saveCheckpoint, loadCheckpoint, readCheckpointState, CHECKPOINT_FORMAT, type TrainState } from '../train/checkpoint.js';
export { textSequences, packDocuments, sampleFromTeacher, writeSamples, readSamples, fingerprint, type TokenDataset, type SampleOptions } from '../train/data.js';
