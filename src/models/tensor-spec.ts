/**
 * The one table of a model's tensors: Hugging Face name, shape in (out, in) layout, and dtype rule, per layer kind.
 * Loading, saving, "expected tensors" errors, random init and the trainable parameters all read it, so a new layer
 * kind changes this file and nothing else about names and shapes.
 *
 * Dtype rule: `matrix` tensors are held as the model's weight mode says (f32, or f16/bf16 kept as stored);
 * `vector` tensors (norms, biases) are always f32.
 *
 * @example
 * ```ts
 * tensorSpecs(cfg).find((t) => t.name === 'model.layers.0.self_attn.k_proj.weight')?.shape; // [kvHeads·headDim, hidden]
 * ```
 */
import type { LlamaConfig } from './config.js';
import { attentionRows } from './attention-kinds.js';

/** The tensors of one decoder layer, by role. */
export type LayerKey =
  | 'inputNorm' | 'wq' | 'wk' | 'wv' | 'wo' | 'bq' | 'bk' | 'bv' | 'qNorm' | 'kNorm'
  | 'postNorm' | 'preFfnNorm' | 'postFfnNorm' | 'wGate' | 'wUp' | 'wDown';
/** The norms of a layer (f32 vectors): over `hiddenSize`, or over `headDim` for the per-head q/k norms. */
export type NormKey = 'inputNorm' | 'postNorm' | 'preFfnNorm' | 'postFfnNorm' | 'qNorm' | 'kNorm';
export type GlobalKey = 'embed' | 'norm' | 'lmHead';

export interface TensorSpec {
  readonly name: string;
  /** The layer it belongs to, or -1 for the embedding, the final norm and the LM head. */
  readonly layer: number;
  readonly key: LayerKey | GlobalKey;
  readonly shape: readonly number[];
  readonly rule: 'matrix' | 'vector';
}

const SUFFIX: Readonly<Record<LayerKey, string>> = {
  inputNorm: 'input_layernorm.weight',
  wq: 'self_attn.q_proj.weight',
  wk: 'self_attn.k_proj.weight',
  wv: 'self_attn.v_proj.weight',
  wo: 'self_attn.o_proj.weight',
  bq: 'self_attn.q_proj.bias',
  bk: 'self_attn.k_proj.bias',
  bv: 'self_attn.v_proj.bias',
  qNorm: 'self_attn.q_norm.weight',
  kNorm: 'self_attn.k_norm.weight',
  postNorm: 'post_attention_layernorm.weight',
  preFfnNorm: 'pre_feedforward_layernorm.weight',
  postFfnNorm: 'post_feedforward_layernorm.weight',
  wGate: 'mlp.gate_proj.weight',
  wUp: 'mlp.up_proj.weight',
  wDown: 'mlp.down_proj.weight',
};

const GLOBAL_NAME: Readonly<Record<GlobalKey, string>> = { embed: 'model.embed_tokens.weight', norm: 'model.norm.weight', lmHead: 'lm_head.weight' };

/** Hugging Face name of a layer tensor (`model.layers.3.self_attn.q_proj.weight`). */
export function tensorName(layer: number, key: LayerKey): string {
  return `model.layers.${layer}.${SUFFIX[key]}`;
}

/** Hugging Face names of one layer's tensors, by role. */
export function layerTensorNames(layer: number): Readonly<Record<LayerKey, string>> {
  const out = {} as Record<LayerKey, string>;
  for (const k of Object.keys(SUFFIX) as LayerKey[]) out[k] = tensorName(layer, k);
  return out;
}

/**
 * The tensors of layer `layer`, in checkpoint order, as its attention kind and the family say: q/k (with their
 * biases and norms) only where the kind computes scores, v/o and the input norm only where it has attention at all; Gemma's norms
 * around both sublayers' outputs (the post-attention one only where there is an attention output to normalise).
 * Zero-row projections (a head-shared layer owning no group) are left out.
 */
export function layerTensorSpecs(cfg: Readonly<LlamaConfig>, layer: number): TensorSpec[] {
  const d = cfg.hiddenSize;
  const ff = cfg.intermediateSize;
  const { q, kv, qk, vo } = attentionRows(cfg, cfg.attention[layer]);
  const m = (key: LayerKey, shape: number[]): TensorSpec => ({ name: tensorName(layer, key), layer, key, shape, rule: 'matrix' });
  const v = (key: LayerKey, n: number): TensorSpec => ({ name: tensorName(layer, key), layer, key, shape: [n], rule: 'vector' });
  const attn: TensorSpec[] = [];
  if (qk) attn.push(m('wq', [q, d]), m('wk', [kv, d]));
  if (vo) attn.push(m('wv', [kv, d]));
  if (cfg.attentionBias) {
    if (qk) attn.push(v('bq', q), v('bk', kv));
    if (vo) attn.push(v('bv', kv));
  }
  if (vo) attn.push(m('wo', [d, q]));
  if (qk && cfg.qkNorm) attn.push(v('qNorm', cfg.headDim), v('kNorm', cfg.headDim));
  const norms: TensorSpec[] = [];
  if (!cfg.sandwichNorms) norms.push(v('postNorm', d));
  else {
    if (vo) norms.push(v('postNorm', d));
    norms.push(v('preFfnNorm', d), v('postFfnNorm', d));
  }
  return [
    ...(vo ? [v('inputNorm', d)] : []),
    ...attn.filter((t) => t.shape[0] > 0 && t.shape[t.shape.length - 1] > 0),
    ...norms,
    m('wGate', [ff, d]),
    m('wUp', [ff, d]),
    m('wDown', [d, ff]),
  ];
}

/** Every tensor of the model: embedding, layers, final norm, and `lm_head.weight` only when untied. */
export function tensorSpecs(cfg: Readonly<LlamaConfig>): TensorSpec[] {
  const d = cfg.hiddenSize;
  const g = (key: GlobalKey, shape: number[], rule: TensorSpec['rule']): TensorSpec => ({ name: GLOBAL_NAME[key], layer: -1, key, shape, rule });
  const out = [g('embed', [cfg.vocabSize, d], 'matrix')];
  for (let l = 0; l < cfg.numLayers; l++) out.push(...layerTensorSpecs(cfg, l));
  out.push(g('norm', [d], 'vector'));
  if (!cfg.tieWordEmbeddings) out.push(g('lmHead', [cfg.vocabSize, d], 'matrix'));
  return out;
}

export interface ExpectedTensor {
  name: string;
  shape: number[];
}

/** Names and shapes a checkpoint of `cfg` must hold. */
export function expectedTensors(cfg: Readonly<LlamaConfig>): ExpectedTensor[] {
  return tensorSpecs(cfg).map((t) => ({ name: t.name, shape: [...t.shape] }));
}

/** Buffers some exporters save that carry no weights (recomputed from the config), ignored when present. */
export function isIgnorableTensor(name: string): boolean {
  return /^model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$/.test(name);
}

/**
 * Compare a tensor set with {@link expectedTensors}; returns every problem, plus notes on what was tolerated.
 * With `strict` false, unexpected tensors become notes instead of problems.
 */
export function checkTensorSet(
  cfg: Readonly<LlamaConfig>,
  actual: ReadonlyMap<string, { shape: readonly number[] }>,
  strict = true,
): { problems: string[]; notes: string[]; ignored: string[] } {
  const problems: string[] = [];
  const notes: string[] = [];
  const ignored: string[] = [];
  const expected = expectedTensors(cfg);
  const names = new Set(expected.map((e) => e.name));
  for (const e of expected) {
    const a = actual.get(e.name);
    if (!a) problems.push(`missing tensor '${e.name}' (expected shape [${e.shape.join(', ')}])`);
    else if (a.shape.length !== e.shape.length || a.shape.some((v, i) => v !== e.shape[i])) {
      problems.push(`tensor '${e.name}' has shape [${a.shape.join(', ')}], expected [${e.shape.join(', ')}]`);
    }
  }
  for (const name of actual.keys()) {
    if (names.has(name)) continue;
    if (name === 'lm_head.weight' && cfg.tieWordEmbeddings) {
      notes.push(`ignored 'lm_head.weight': the config ties word embeddings, so model.embed_tokens.weight is used`);
      ignored.push(name);
    } else if (isIgnorableTensor(name)) {
      ignored.push(name);
    } else if (strict) {
      problems.push(`unexpected tensor '${name}'`);
    } else {
      notes.push(`ignored unexpected tensor '${name}'`);
      ignored.push(name);
    }
  }
  return { problems, notes, ignored };
}
