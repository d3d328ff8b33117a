/**
 * What a model family contributes to the resolved config: the fields that differ between Llama, Qwen and Gemma
 * decoders, as data the one decoder reads (norm style, per-head q/k norms, norms around the sublayers' outputs,
 * embedding scale, MLP activation, attention scale, sliding-window layers with their own RoPE base, logit
 * soft-capping). One small file per family resolves them from config.json and writes its own keys back.
 */
import type { RawConfig } from '../config-raw.js';

export type Architecture = 'LlamaForCausalLM' | 'MistralForCausalLM' | 'Qwen2ForCausalLM' | 'Qwen3ForCausalLM' | 'Gemma3ForCausalLM';
/** The gate activation of the gated MLP: `silu(g)·u` (SwiGLU) or `gelu_tanh(g)·u` (GeGLU, Gemma). */
export type Activation = 'silu' | 'geluTanh';

export interface FamilyFields {
  hiddenAct: Activation;
  /** RMSNorm scale is `w + normOffset`: 0 (Llama, `x̂·w`) or 1 (Gemma stores `w` and scales by `1 + w`). */
  normOffset: 0 | 1;
  /** Per-head RMSNorm of queries and keys over `headDim`, before RoPE (`self_attn.q_norm` / `k_norm`). */
  qkNorm: boolean;
  /**
   * Norms around the sublayers' outputs (Gemma): `post_attention_layernorm` normalises the attention output, and the
   * MLP sits between `pre_feedforward_layernorm` and `post_feedforward_layernorm`. Off (Llama): `post_attention_layernorm`
   * is the MLP's input norm.
   */
  sandwichNorms: boolean;
  /** Embeddings are multiplied by this (Gemma: √hidden_size in the weights' dtype); 1 elsewhere. */
  embedScale: number;
  /** q/k/v projections have biases (Qwen2). */
  attentionBias: boolean;
  /** Attention score scale: `1/√headDim`, or `query_pre_attn_scalar^-½` (Gemma). */
  attnScale: number;
  /** Per layer: the sliding window (a query at `p` sees keys `p − w < j ≤ p`), or 0 for full attention. */
  layerWindows: readonly number[];
  /** RoPE base of sliding-window layers (Gemma 3 `rope_local_base_freq`, no scaling); null: every layer uses `ropeTheta`. */
  ropeLocalTheta: number | null;
  /** Final logits become `cap·tanh(z/cap)`; null: none. */
  finalLogitSoftcap: number | null;
}

/** What a family resolver knows besides the raw config. */
export interface FamilyContext {
  readonly raw: RawConfig;
  readonly file: string;
  readonly headDim: number;
  /** config.json keys no common field reads; a family takes its own keys from here (they stay for the round trip). */
  readonly extra: Record<string, unknown>;
}

export interface Family {
  readonly architecture: Architecture;
  /** `model_type` values that name this family when `architectures` is absent. */
  readonly modelTypes: readonly string[];
  /** `tie_word_embeddings` when config.json leaves it out (transformers' per-family default: true for Gemma). */
  readonly tiedByDefault: boolean;
  /** llama.cpp's name for the architecture (GGUF `general.architecture`), or null where llama.cpp has none. */
  readonly gguf: string | null;
  resolve(ctx: FamilyContext): FamilyFields;
  /** The family's config.json keys that are not kept verbatim in `extra`. */
  toHf(f: Readonly<FamilyFields>): Record<string, unknown>;
}

/** Fields of a plain Llama decoder (SwiGLU, `x̂·w` norms, no q/k norms, full attention). */
export function llamaFields(ctx: FamilyContext, over: Partial<FamilyFields> = {}): FamilyFields {
  return {
    hiddenAct: 'silu',
    normOffset: 0,
    qkNorm: false,
    sandwichNorms: false,
    embedScale: 1,
    attentionBias: false,
    attnScale: 1 / Math.sqrt(ctx.headDim),
    layerWindows: new Array<number>(ctx.raw.num_hidden_layers).fill(0),
    ropeLocalTheta: null,
    finalLogitSoftcap: null,
    ...over,
  };
}
