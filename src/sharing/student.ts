/**
 * Building shared-attention students (EchoAtt / Shared Attention): the teacher's weights, with the plan's echo
 * layers reusing their anchors' attention. Saving and loading are the model layer's (`models/load.ts`): a student
 * is a model whose config records its plan.
 *
 * @example
 * ```ts
 * const { model: teacher, checkpoint } = loadModel('../shared/models/stories260K/stories260K.bin');
 * const student = buildStudent(teacher, makePlan('manual', [{ anchor: 1, shared: [2] }]));
 * saveModel('out/student', student, checkpoint.tokenizerPath);
 * loadModel('out/student').model.plan; // the same plan
 * ```
 */
import type { LlamaModel } from '../models/llama.js';
import { type SharingPlan } from '../models/sharing-plan.js';
import { withPlan } from '../models/surgery.js';
import { PlanError } from '../errors.js';

/**
 * A student that inherits every remaining weight of `teacher` (EchoAtt), usable at once without training
 * (Shared Attention). The teacher may be head-shared (layers the head map names cannot echo); sharing an existing
 * layer-wise student again is refused: build from the original teacher.
 */
export function buildStudent(teacher: LlamaModel, plan: SharingPlan): LlamaModel {
  if (teacher.plan) throw new PlanError('buildStudent', 'the model is already a shared-attention student; build from its teacher instead');
  return withPlan(teacher, plan);
}
