/** Llama (Llama 2/3, TinyLlama, SmolLM, llama2.c) and Mistral: SwiGLU, `x̂·w` norms, no biases; Mistral may slide. */
import { UnsupportedError } from '../../errors.js';
import { llamaFields, type Family, type FamilyContext } from './family.js';

/** `hidden_act` must be SiLU (`swish` is its other name). */
export function siluOnly(ctx: FamilyContext): 'silu' {
  const act = ctx.raw.hidden_act ?? 'silu';
  if (act !== 'silu' && act !== 'swish') throw new UnsupportedError(ctx.file, 'hidden_act', act, 'only silu is implemented');
  return 'silu';
}

/** Families whose `attention_bias` would also add an o_proj bias, which echoatt does not implement. */
export function noAttentionBias(ctx: FamilyContext, architecture: string): void {
  if (ctx.raw.attention_bias) {
    throw new UnsupportedError(ctx.file, 'attention_bias', true, `${architecture} would also add an o_proj bias, which is not implemented`);
  }
}

export const llama: Family = {
  architecture: 'LlamaForCausalLM',
  modelTypes: ['llama'],
  tiedByDefault: false,
  gguf: 'llama',
  resolve(ctx) {
    siluOnly(ctx);
    noAttentionBias(ctx, 'LlamaForCausalLM');
    return llamaFields(ctx);
  },
  toHf: () => ({ attention_bias: false, mlp_bias: false }),
};

export const mistral: Family = {
  architecture: 'MistralForCausalLM',
  modelTypes: ['mistral'],
  tiedByDefault: false,
  gguf: 'llama',
  resolve(ctx) {
    siluOnly(ctx);
    noAttentionBias(ctx, 'MistralForCausalLM');
    return llamaFields(ctx, { layerWindows: new Array<number>(ctx.raw.num_hidden_layers).fill(ctx.raw.sliding_window ?? 0) });
  },
  toHf: (f) => ({ sliding_window: f.layerWindows[0] || null }),
};
