/**
 * Gemma 3 text (`Gemma3ForCausalLM`, model_type `gemma3_text`): GeGLU (tanh GELU), norms scaling by `1 + w`, per-head
 * q/k norms, norms around both sublayers' outputs, embeddings × √hidden_size, scores scaled by
 * `query_pre_attn_scalar^-½`, and sliding-window layers (RoPE base `rope_local_base_freq`, no scaling) between
 * full-attention layers (RoPE base `rope_theta` with `rope_scaling`). Which layers slide is read from `layer_types`
 * (current transformers) or `sliding_window_pattern` (every n-th layer is full; older files).
 */
import { ConfigError, UnsupportedError } from '../../errors.js';
import { Fields } from '../config-raw.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../../tensor/dtype.js';
import { llamaFields, type Family, type FamilyContext } from './family.js';
import { noAttentionBias } from './llama.js';

/** √hidden_size as HF multiplies it: a float32 scalar cast to the weights' dtype. */
function embedScale(hidden: number, dtype: string | null): number {
  const s = Float32Array.of(Math.sqrt(hidden));
  if (dtype === 'bfloat16') return bf16ToF32(f32ToBf16(s))[0];
  if (dtype === 'float16') return f16ToF32(f32ToF16(s))[0];
  return s[0];
}

/** Per layer: sliding (true) or full attention, from `layer_types` or `sliding_window_pattern` (default 6). */
function slidingLayers(ctx: FamilyContext, f: Fields): boolean[] {
  const L = ctx.raw.num_hidden_layers;
  const types = ctx.extra.layer_types;
  if (types !== undefined && types !== null) {
    if (!Array.isArray(types) || types.length !== L || !types.every((t) => t === 'sliding_attention' || t === 'full_attention')) {
      throw new ConfigError(ctx.file, 'layer_types', `must list "sliding_attention" or "full_attention" for each of the ${L} layers, got ${JSON.stringify(types)}`);
    }
    return types.map((t) => t === 'sliding_attention');
  }
  const pattern = f.int('sliding_window_pattern') ?? 6;
  return Array.from({ length: L }, (_, i) => (i + 1) % pattern !== 0);
}

export const gemma3: Family = {
  architecture: 'Gemma3ForCausalLM',
  modelTypes: ['gemma3_text'],
  tiedByDefault: true,
  gguf: 'gemma3',
  resolve(ctx) {
    const f = new Fields(ctx.file, ctx.extra);
    const act = f.str('hidden_activation') ?? ctx.raw.hidden_act ?? 'gelu_pytorch_tanh';
    if (act !== 'gelu_pytorch_tanh') throw new UnsupportedError(ctx.file, 'hidden_activation', act, 'Gemma 3 runs gelu_pytorch_tanh');
    noAttentionBias(ctx, 'Gemma3ForCausalLM');
    if (f.num('attn_logit_softcapping') !== null) {
      throw new UnsupportedError(ctx.file, 'attn_logit_softcapping', ctx.extra.attn_logit_softcapping, 'attention-score soft-capping (Gemma 2) is not implemented');
    }
    if (f.bool('use_bidirectional_attention')) {
      throw new UnsupportedError(ctx.file, 'use_bidirectional_attention', true, 'only causal decoders are implemented');
    }
    const window = ctx.raw.sliding_window ?? 4096;
    const ropeLocalTheta = ctx.raw.rope_local_theta ?? f.num('rope_local_base_freq') ?? 10000;
    const finalLogitSoftcap = f.num('final_logit_softcapping');
    // These become typed fields, written back by `toHf`; the rest of Gemma's keys stay verbatim in `extra`.
    for (const k of ['hidden_activation', 'rope_local_base_freq', 'final_logit_softcapping']) delete ctx.extra[k];
    return llamaFields(ctx, {
      hiddenAct: 'geluTanh',
      normOffset: 1,
      qkNorm: true,
      sandwichNorms: true,
      embedScale: embedScale(ctx.raw.hidden_size, ctx.raw.torch_dtype),
      attnScale: 1 / Math.sqrt(f.num('query_pre_attn_scalar') ?? 256),
      layerWindows: slidingLayers(ctx, f).map((s) => (s ? window : 0)),
      ropeLocalTheta,
      finalLogitSoftcap,
    });
  },
  toHf: (f) => ({
    hidden_activation: 'gelu_pytorch_tanh',
    rope_local_base_freq: f.ropeLocalTheta,
    final_logit_softcapping: f.finalLogitSoftcap,
  }),
};
