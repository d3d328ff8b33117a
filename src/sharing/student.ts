/**
 * Building, saving and loading shared-attention students.
 *
 * @example
 * ```ts
 * const { model: teacher, checkpoint } = loadModel('../shared/models/stories260K/stories260K.bin');
 * const student = buildStudent(teacher, makePlan('manual', [{ anchor: 1, shared: [2] }]));
 * saveModel('out/student', student, checkpoint.tokenizerPath);
 * const again = loadModel('out/student').model; // a SharedLlamaModel
 * ```
 */
import { LlamaModel, llamaWeightsFromParams } from '../models/llama.js';
import { SharedLlamaModel } from '../models/shared-llama.js';
import { validatePlan, type SharingPlan } from '../models/sharing-plan.js';
import { writeHfCheckpoint } from '../io/llama2c.js';
import { PlanError } from '../models/sharing-plan.js';
import { HeadSharedLlamaModel } from '../models/headshared-llama.js';
import { combinationRefusal } from '../models/head-map.js';
import { saveHeadSharedModel } from './headshare.js';

/**
 * A student that inherits every remaining weight of `teacher` (EchoAtt), usable at once without training
 * (Shared Attention). Sharing an existing student again is refused: build from the original teacher.
 */
export function buildStudent(teacher: LlamaModel, plan: SharingPlan): SharedLlamaModel {
  if (teacher instanceof SharedLlamaModel) {
    throw new PlanError('buildStudent', 'the model is already a shared-attention student; build from its teacher instead');
  }
  if (teacher instanceof HeadSharedLlamaModel) throw new PlanError('buildStudent', combinationRefusal());
  validatePlan(plan, teacher.config.numLayers);
  return SharedLlamaModel.fromTeacher(teacher, plan);
}

/**
 * Save any model (teacher, layer-shared or head-shared student) in the Hugging Face layout: model.safetensors (f32) + config.json (with the plan
 * under `echoatt_sharing`, or the head map under `echoatt_head_sharing`) + tokenizer, written atomically, config last.
 */
export function saveModel(dir: string, model: LlamaModel, tokenizerPath?: string): void {
  if (model instanceof HeadSharedLlamaModel) return saveHeadSharedModel(dir, model, tokenizerPath);
  writeHfCheckpoint(dir, model.config, llamaWeightsFromParams(model.config, model.params), tokenizerPath);
}
