/**
 * What each llama.cpp architecture needs from a GGUF file beyond the common keys: its tensor names, the transforms
 * llama.cpp's own `convert_hf_to_gguf.py` applies to the weights, its extra metadata, and the configs it cannot
 * express (refused, naming the config field, rather than written into a file llama.cpp would run differently).
 *
 * - `llama`: adjacent-pair RoPE, so rotate-half q/k rows are permuted to interleaved order.
 * - `qwen3`: rotate-half (NEOX) RoPE, so q/k are written as Hugging Face stores them; per-head `attn_q_norm` /
 *   `attn_k_norm`; `qwen3.attention.key_length` / `value_length` carry `head_dim`.
 * - `gemma3`: NEOX RoPE; norms are written as `1 + w` (llama.cpp multiplies by the stored weight, as the converter's
 *   `Gemma3Model.norm_shift` does); `post_attention_norm`, `ffn_norm` (pre-MLP) and `post_ffw_norm`. llama.cpp
 *   hard-codes the rest (src/llama-model.cpp, LLM_ARCH_GEMMA3): layer `i` slides iff `i % 6 < 5` (`set_swa_pattern(6)`),
 *   sliding layers use RoPE base 10000 unscaled, scores are scaled by `1/√head_dim` (`1/√(hidden/heads)` for the
 *   62-layer 27B), embeddings by `sqrtf(hidden)` in f32, and the sliding-window graph applies no final soft-cap.
 *   (With a bf16 or f16 checkpoint transformers rounds √hidden to that dtype; llama.cpp, and so its own converted
 *   files, use the f32 value — a difference within the weights' own rounding, which is not refused.)
 */
import type { LlamaConfig } from '../models/config.js';
import { familyByArchitecture } from '../models/families/index.js';
import { EchoattError } from '../errors.js';

export type GgufArch = 'llama' | 'qwen3' | 'gemma3';

/** llama.cpp's Gemma 3 constants (src/llama-model.cpp, LLM_ARCH_GEMMA3). */
export const GEMMA3_SWA_PATTERN = 6;
export const GEMMA3_ROPE_LOCAL_THETA = 10000;
const GEMMA3_27B_LAYERS = 62;

const COMMON_NAMES: Readonly<Record<string, string>> = {
  input_layernorm: 'attn_norm',
  'self_attn.q_proj': 'attn_q',
  'self_attn.k_proj': 'attn_k',
  'self_attn.v_proj': 'attn_v',
  'self_attn.o_proj': 'attn_output',
  'mlp.gate_proj': 'ffn_gate',
  'mlp.up_proj': 'ffn_up',
  'mlp.down_proj': 'ffn_down',
};

/** Per architecture: llama.cpp's name for each Hugging Face layer tensor (gguf-py/gguf/constants.py). */
export const LAYER_NAMES: Readonly<Record<GgufArch, Readonly<Record<string, string>>>> = {
  llama: { ...COMMON_NAMES, post_attention_layernorm: 'ffn_norm' },
  qwen3: { ...COMMON_NAMES, post_attention_layernorm: 'ffn_norm', 'self_attn.q_norm': 'attn_q_norm', 'self_attn.k_norm': 'attn_k_norm' },
  gemma3: {
    ...COMMON_NAMES,
    'self_attn.q_norm': 'attn_q_norm',
    'self_attn.k_norm': 'attn_k_norm',
    post_attention_layernorm: 'post_attention_norm',
    pre_feedforward_layernorm: 'ffn_norm',
    post_feedforward_layernorm: 'post_ffw_norm',
  },
};

/** llama.cpp rotates adjacent pairs for `llama`, rotate-half (NEOX) pairs for `qwen3` and `gemma3`. */
export function ggufRopeStyle(arch: GgufArch): LlamaConfig['ropeStyle'] {
  return arch === 'llama' ? 'interleaved' : 'half';
}

function refuse(arch: string, field: string, value: unknown, why: string): never {
  throw new EchoattError('E_UNSUPPORTED', `GGUF export: ${arch} is not written by this exporter as llama.cpp's '${familyByArchitecture(arch)?.gguf ?? '?'}' when ${field} = ${JSON.stringify(value)}: ${why}`);
}

/** llama.cpp's Gemma 3 attention scale, as it computes it in f32. */
export function gemma3LlamaCppAttnScale(c: Readonly<LlamaConfig>): number {
  const d = c.numLayers === GEMMA3_27B_LAYERS ? Math.trunc(c.hiddenSize / c.numHeads) : c.headDim;
  return Math.fround(1 / Math.fround(Math.sqrt(d)));
}

/** The sliding window of Gemma 3's sliding layers, after checking that llama.cpp's fixed layout is the model's. */
function gemma3Window(c: Readonly<LlamaConfig>): number {
  const a = c.architecture;
  const window = c.layerWindows.find((w) => w > 0) ?? 0;
  const expected = c.layerWindows.map((_, i) => (i % GEMMA3_SWA_PATTERN < GEMMA3_SWA_PATTERN - 1 ? window : 0));
  if (window === 0 || expected.some((w, i) => w !== c.layerWindows[i])) {
    const kinds = c.layerWindows.map((w) => (w > 0 ? 'sliding' : 'full'));
    refuse(a, 'layer_types / sliding_window_pattern', kinds.join(','), `llama.cpp slides every layer i with i % ${GEMMA3_SWA_PATTERN} < ${GEMMA3_SWA_PATTERN - 1} (sliding_window_pattern ${GEMMA3_SWA_PATTERN}) and no other layout, all with one window`);
  }
  return window;
}

/** Refuse a Gemma 3 config llama.cpp would run differently; returns its sliding window. */
function checkGemma3(c: Readonly<LlamaConfig>): number {
  const a = c.architecture;
  if (c.finalLogitSoftcap !== null) {
    refuse(a, 'final_logit_softcapping', c.finalLogitSoftcap, "llama.cpp's sliding-window Gemma 3 graph applies no final logit soft-cap");
  }
  if (c.ropeLocalTheta !== GEMMA3_ROPE_LOCAL_THETA) {
    refuse(a, 'rope_local_base_freq', c.ropeLocalTheta, `llama.cpp runs Gemma 3's sliding layers with RoPE base ${GEMMA3_ROPE_LOCAL_THETA}`);
  }
  const want = gemma3LlamaCppAttnScale(c);
  if (Math.abs(c.attnScale - want) > 1e-6 * want) {
    const d = c.numLayers === GEMMA3_27B_LAYERS ? 'hidden_size / num_attention_heads (62 layers, 27B)' : `head_dim (${c.headDim})`;
    refuse(a, 'query_pre_attn_scalar', Math.round(1 / (c.attnScale * c.attnScale)), `llama.cpp scales Gemma 3 attention scores by 1/√${d}, so query_pre_attn_scalar must equal it`);
  }
  return gemma3Window(c);
}

/**
 * llama.cpp's architecture for `c`, or a refusal naming what it cannot express. Shared-attention students are
 * refused before this (by the caller).
 */
export function ggufArchOf(c: Readonly<LlamaConfig>): { arch: GgufArch; slidingWindow: number | null } {
  const gguf = familyByArchitecture(c.architecture)?.gguf;
  if (gguf === 'llama') return { arch: 'llama', slidingWindow: null };
  if (gguf === 'qwen3') return { arch: 'qwen3', slidingWindow: null };
  if (gguf === 'gemma3') return { arch: 'gemma3', slidingWindow: checkGemma3(c) };
  throw new EchoattError('E_UNSUPPORTED', `GGUF export: ${c.architecture} is not written by this exporter (it writes llama.cpp's 'llama', 'qwen3' and 'gemma3' architectures${gguf ? `; llama.cpp reads this family as '${gguf}', which is not implemented here yet` : ''})`);
}
