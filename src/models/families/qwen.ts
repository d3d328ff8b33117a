/** Qwen2 (q/k/v biases) and Qwen3 (per-head q/k RMSNorm, no biases, `head_dim` set apart from `hidden_size / heads`). */
import { UnsupportedError } from '../../errors.js';
import { llamaFields, type Family, type FamilyContext } from './family.js';
import { noAttentionBias, siluOnly } from './llama.js';

function noSlidingWindow(ctx: FamilyContext, name: string): void {
  if (ctx.raw.use_sliding_window) throw new UnsupportedError(ctx.file, 'use_sliding_window', true, `${name} per-layer sliding window is not implemented`);
}

export const qwen2: Family = {
  architecture: 'Qwen2ForCausalLM',
  modelTypes: ['qwen2'],
  tiedByDefault: false,
  gguf: 'qwen2',
  resolve(ctx) {
    siluOnly(ctx);
    noSlidingWindow(ctx, 'Qwen2');
    return llamaFields(ctx, { attentionBias: true });
  },
  toHf: () => ({}),
};

export const qwen3: Family = {
  architecture: 'Qwen3ForCausalLM',
  modelTypes: ['qwen3'],
  tiedByDefault: false,
  gguf: 'qwen3',
  resolve(ctx) {
    siluOnly(ctx);
    noSlidingWindow(ctx, 'Qwen3');
    noAttentionBias(ctx, 'Qwen3ForCausalLM');
    return llamaFields(ctx, { qkNorm: true });
  },
  toHf: () => ({ attention_bias: false }),
};
