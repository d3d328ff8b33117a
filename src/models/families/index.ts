/** The model families echoatt runs, by architecture and by `model_type`. */
import type { Architecture, Family } from './family.js';
import { llama, mistral } from './llama.js';
import { qwen2, qwen3 } from './qwen.js';
import { gemma3 } from './gemma3.js';

export type { Activation, Architecture, Family, FamilyFields } from './family.js';

export const FAMILIES: readonly Family[] = [llama, mistral, qwen2, qwen3, gemma3];

/** The family of an architecture name (`LlamaForCausalLM`, …), or undefined. */
export function familyByArchitecture(arch: string): Family | undefined {
  return FAMILIES.find((f) => f.architecture === arch);
}

/** The family a `model_type` names (`llama`, `qwen3`, `gemma3_text`, …), or undefined. */
export function familyByModelType(type: string): Family | undefined {
  return FAMILIES.find((f) => f.modelTypes.includes(type));
}

export function familyOf(arch: Architecture): Family {
  return familyByArchitecture(arch)!;
}
