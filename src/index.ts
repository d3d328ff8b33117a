/**
 * echoatt: share attention across layers and heads to make transformer language models cheaper.
 *
 * @example
 * ```ts
 * import { loadModel, analyze, planSharing, buildStudent, distill, evaluate } from 'echoatt';
 * const { model, tokenizer } = loadModel('../shared/models/stories260K/stories260K.bin');
 * const { plan } = planSharing(await analyze(model, tokenizer, { budget: 0.3 }));
 * const student = buildStudent(model, plan);
 * ```
 */
export * from './errors.js';
export { Tensor } from './tensor/tensor.js';
export { HalfWeight, type Weight } from './tensor/weight.js';
export type { Backend } from './backend/backend.js';
export { getBackend, availableBackends, type BackendName } from './backend/index.js';
export { loadModel, saveModel, type LoadedModel } from './models/load.js';
export { LlamaModel, type ForwardOptions } from './models/llama.js';
export type { LayerAttention } from './models/attention-kinds.js';
export { withPlan, withHeadMap, toDense } from './models/surgery.js';
export { forwardTrain, modelParams } from './models/tape-ops.js';
export { generate, type GenerateOptions } from './models/generate.js';
export { loadCheckpoint } from './models/checkpoint.js';
export { loadTokenizer } from './tokenizer/index.js';
export { analyze, type AnalyzeOptions, type AnalysisResult } from './analysis/analyze.js';
export { planSharing } from './pipeline/plan-sharing.js';
export { makePlan, parsePlan, validatePlan, type SharingPlan } from './models/sharing-plan.js';
export { buildStudent } from './sharing/student.js';
export { sharingCost } from './sharing/cost.js';
export { directShare } from './sharing/headshare.js';
export { distill, type DistillOptions, type DistillResult } from './distill/index.js';
export { evaluate, type EvaluateOptions, type EvalReport } from './eval/evaluate.js';
export { exportGguf, ggufTokenizerOf } from './export/gguf.js';
export { runPipeline, type PipelineOptions, type PipelineSummary } from './pipeline/pipeline.js';
