/**
 * Llama-family decoder (Llama 2/3, TinyLlama, SmolLM, Mistral, Qwen2): prefill over a batch with a causal mask,
 * incremental decode with a {@link KVCache}, and optional access to every layer's post-softmax attention
 * probabilities (computed only for the layers that ask, so the normal path materialises no `T × S` matrix).
 *
 * Parameter names are Hugging Face's (`model.layers.3.self_attn.q_proj.weight`), so loading and export are lookups.
 *
 * @example
 * ```ts
 * const { config, weights } = await loadCheckpoint('../shared/models/stories260K/stories260K.bin');
 * const model = LlamaModel.fromWeights(config, weights);
 * const cache = model.newCache(1, 256);
 * const logits = model.forward(Int32Array.of(1), { cache }); // (1, vocab)
 * ```
 */
import type { Backend } from '../backend/backend.js';
import { getBackend } from '../backend/index.js';
import type { LlamaConfig } from './config.js';
import { KVCache, type LayerCacheSpec } from './kvcache.js';
import { ropeTables, type RopeTables } from './rope.js';
import { linear, swigluMlp, type MlpParams } from '../nn/layers.js';
import { attention } from '../nn/attention.js';
import type { StoredTensor } from '../tensor/tensor.js';
import { bf16ToF32, f16ToF32 } from '../tensor/dtype.js';
import { HalfWeight, weightRowsF32, type Weight } from '../tensor/weight.js';
import { EchoattError, ShapeError } from '../errors.js';

export interface LlamaLayerParams extends MlpParams {
  inputNorm: Float32Array; // (dim)
  wq: Weight; // (H·D, dim)
  wk: Weight; // (Hkv·D, dim)
  wv: Weight; // (Hkv·D, dim)
  wo: Weight; // (dim, H·D)
  bq?: Float32Array;
  bk?: Float32Array;
  bv?: Float32Array;
  postNorm: Float32Array; // (dim)
}

/** Matrices may be half precision (kept as loaded); norms and biases are always f32. */
export interface LlamaParams {
  embed: Weight; // (V, dim)
  layers: LlamaLayerParams[];
  norm: Float32Array; // (dim)
  lmHead: Weight; // (V, dim); the same object as `embed` when tied
}

/** Hugging Face names of one layer's tensors. */
export function layerTensorNames(i: number) {
  const p = `model.layers.${i}`;
  return {
    inputNorm: `${p}.input_layernorm.weight`,
    wq: `${p}.self_attn.q_proj.weight`,
    wk: `${p}.self_attn.k_proj.weight`,
    wv: `${p}.self_attn.v_proj.weight`,
    wo: `${p}.self_attn.o_proj.weight`,
    bq: `${p}.self_attn.q_proj.bias`,
    bk: `${p}.self_attn.k_proj.bias`,
    bv: `${p}.self_attn.v_proj.bias`,
    postNorm: `${p}.post_attention_layernorm.weight`,
    wGate: `${p}.mlp.gate_proj.weight`,
    wUp: `${p}.mlp.up_proj.weight`,
    wDown: `${p}.mlp.down_proj.weight`,
  } as const;
}

/** Widen a stored tensor to f32 (no copy when it already is f32). */
export function toF32(t: StoredTensor): Float32Array {
  if (t.data instanceof Float32Array) return t.data;
  return t.dtype === 'bf16' ? bf16ToF32(t.data) : f16ToF32(t.data);
}

/** How weight matrices are held in memory: widened to f32 (trainable), or as stored (f16/bf16 stay half). */
export type WeightMode = 'f32' | 'as-stored';

/** A stored matrix as a {@link Weight}: half-precision data stays half with `'as-stored'`. */
export function toWeight(t: StoredTensor, mode: WeightMode): Weight {
  if (mode === 'as-stored' && t.data instanceof Uint16Array && (t.dtype === 'f16' || t.dtype === 'bf16')) return new HalfWeight(t.dtype, t.data);
  return toF32(t);
}

/** Per-layer attention probabilities, handed to a hook as soon as they are computed. */
export type AttentionProbsHook = (layer: number, probs: Float32Array /* (B, H, T, S) */, shape: { batch: number; tq: number; s: number }) => void;

export interface ForwardOptions {
  /** Number of sequences; `ids.length / batch` is the step length T. Default 1. */
  batch?: number;
  /** KV cache; the new tokens are appended at `cache.length` and attend to everything before. */
  cache?: KVCache;
  /** Compute logits for the last position of each sequence only: returns `(B, V)`. */
  lastOnly?: boolean;
  /** Receives each layer's post-softmax probabilities `(B, H, T, S)`. */
  onAttentionProbs?: AttentionProbsHook;
  /** Only these layers compute probabilities for the hook (default: all when a hook is given). */
  probsLayers?: ReadonlySet<number>;
}

export class LlamaModel {
  readonly config: LlamaConfig;
  readonly params: LlamaParams;
  readonly backend: Backend;
  protected readonly rope: RopeTables;

  constructor(config: LlamaConfig, params: LlamaParams, backend: Backend = getBackend()) {
    this.config = config;
    this.params = params;
    this.backend = backend;
    this.rope = ropeTables(config, Math.max(1, config.maxPositions));
  }

  /** Build from a name → tensor map (f16/bf16 widened to f32). Missing tensors throw an `E_CHECKPOINT` error listing them all. */
  static fromWeights(config: LlamaConfig, weights: ReadonlyMap<string, StoredTensor>, backend?: Backend, mode: WeightMode = 'f32'): LlamaModel {
    return new LlamaModel(config, llamaParamsFromWeights(config, weights, mode), backend);
  }

  /** A cache with K and V for every layer. */
  newCache(batch: number, capacity: number): KVCache {
    const c = this.config;
    const spec: LayerCacheSpec[] = Array.from({ length: c.numLayers }, () => ({ keys: true, values: true }));
    return new KVCache(spec, batch, Math.min(capacity, c.maxPositions), c.numKvHeads, c.headDim);
  }

  /**
   * Run the decoder over `ids` `(B, T)` (flattened). Returns logits `(B·T, V)`, or `(B, V)` with `lastOnly`.
   * With a cache, positions continue from `cache.length` and the cache is advanced by T.
   */
  forward(ids: Int32Array, opts: ForwardOptions = {}): Float32Array {
    const c = this.config;
    const be = this.backend;
    const batch = opts.batch ?? 1;
    if (!(Number.isInteger(batch) && batch > 0) || ids.length % batch !== 0 || ids.length === 0) {
      throw new ShapeError('LlamaModel.forward', `${ids.length} ids cannot be split into ${batch} sequences`);
    }
    const t = ids.length / batch;
    const cache = opts.cache;
    const past = cache ? cache.length : 0;
    if (cache && cache.batch !== batch) throw new ShapeError('LlamaModel.forward', `cache batch ${cache.batch} != ${batch}`);
    if (past + t > this.rope.maxPos) {
      throw new ShapeError('LlamaModel.forward', `positions up to ${past + t} exceed max_position_embeddings ${this.rope.maxPos}`);
    }
    const n = batch * t;
    const dim = c.hiddenSize;
    const pos = new Int32Array(n);
    for (let b = 0; b < batch; b++) for (let i = 0; i < t; i++) pos[b * t + i] = past + i;

    const x = new Float32Array(n * dim); // (N, dim) residual stream
    this.embed(ids, x);
    const xn = new Float32Array(n * dim);
    for (let l = 0; l < c.numLayers; l++) {
      const lp = this.params.layers[l];
      be.rmsnorm(x, lp.inputNorm, xn, n, dim, c.rmsNormEps);
      const wantProbs = opts.onAttentionProbs !== undefined && (opts.probsLayers?.has(l) ?? true);
      const attn = this.selfAttention(l, xn, pos, batch, t, cache, wantProbs ? opts.onAttentionProbs : undefined);
      be.add(x, attn, x, n * dim);
      be.rmsnorm(x, lp.postNorm, xn, n, dim, c.rmsNormEps);
      be.add(x, swigluMlp(be, xn, lp, n, dim, c.intermediateSize), x, n * dim);
    }
    cache?.advance(t);
    return this.head(x, batch, t, opts.lastOnly ?? false);
  }

  /** Embedding rows of `ids` into `x` `(N, dim)`; half-precision tables are widened row by row. */
  protected embed(ids: Int32Array, x: Float32Array): void {
    const c = this.config;
    const table = this.params.embed;
    if (table instanceof Float32Array) {
      this.backend.embedding(table, ids, x, c.vocabSize, c.hiddenSize);
      return;
    }
    for (let t = 0; t < ids.length; t++) {
      const id = ids[t];
      if (!(Number.isInteger(id) && id >= 0 && id < c.vocabSize)) throw new ShapeError('embedding', `token id ${id} at position ${t} is outside [0, ${c.vocabSize})`);
      x.set(weightRowsF32(table, c.hiddenSize, id, id + 1), t * c.hiddenSize);
    }
  }

  /** Final norm and LM head; `x` `(B·T, dim)`. */
  protected head(x: Float32Array, batch: number, t: number, lastOnly: boolean): Float32Array {
    const c = this.config;
    const dim = c.hiddenSize;
    let rows = batch * t;
    let h = x;
    if (lastOnly && t > 1) {
      h = new Float32Array(batch * dim);
      for (let b = 0; b < batch; b++) h.set(x.subarray(((b + 1) * t - 1) * dim, (b + 1) * t * dim), b * dim);
      rows = batch;
    } else if (lastOnly) {
      rows = batch;
    }
    const hn = new Float32Array(rows * dim);
    this.backend.rmsnorm(h, this.params.norm, hn, rows, dim, c.rmsNormEps);
    return linear(this.backend, hn, this.params.lmHead, undefined, rows, dim, c.vocabSize); // (rows, V)
  }

  /** Grouped-query causal self-attention of layer `l` on normalised input `xn` `(B·T, dim)`; returns `(B·T, dim)`. */
  protected selfAttention(
    l: number, xn: Float32Array, pos: Int32Array, batch: number, t: number, cache: KVCache | undefined,
    hook: AttentionProbsHook | undefined,
  ): Float32Array {
    const c = this.config;
    const be = this.backend;
    const lp = this.params.layers[l];
    const n = batch * t;
    const { hiddenSize: dim, numHeads: nh, numKvHeads: nkv, headDim: d } = c;
    const q = linear(be, xn, lp.wq, lp.bq, n, dim, nh * d); // (B, T, H, D)
    const k = linear(be, xn, lp.wk, lp.bk, n, dim, nkv * d); // (B, T, Hkv, D)
    const v = linear(be, xn, lp.wv, lp.bv, n, dim, nkv * d); // (B, T, Hkv, D)
    be.rope(q, n, nh, d, pos, this.rope.cos, this.rope.sin, c.ropeStyle);
    be.rope(k, n, nkv, d, pos, this.rope.cos, this.rope.sin, c.ropeStyle);
    let kAll = k;
    let vAll = v;
    let s = t;
    let kvBatchStride: number | undefined;
    let qPos0 = 0;
    if (cache) {
      const kc = cache.k[l];
      const vc = cache.v[l];
      if (!kc || !vc) throw new ShapeError('LlamaModel.forward', `layer ${l} has no K/V cache`);
      cache.write(kc, k, t);
      cache.write(vc, v, t);
      kAll = kc;
      vAll = vc;
      qPos0 = cache.length;
      s = cache.length + t;
      kvBatchStride = cache.batchStride;
    }
    const out = new Float32Array(n * nh * d); // (B, T, H, D)
    const probs = hook ? new Float32Array(batch * nh * t * s) : undefined; // (B, H, T, S)
    attention(be, {
      q, k: kAll, v: vAll, out, probs, batch, tq: t, s, nHeads: nh, nKvHeads: nkv, headDim: d, qPos0,
      scale: 1 / Math.sqrt(d), kvBatchStride,
    });
    if (hook && probs) hook(l, probs, { batch, tq: t, s });
    return linear(be, out, lp.wo, undefined, n, nh * d, dim);
  }

  /** Number of parameters (tied embeddings counted once). */
  parameterCount(): number {
    const p = this.params;
    let total = p.embed.length + p.norm.length + (p.lmHead === p.embed ? 0 : p.lmHead.length);
    for (const lp of p.layers) {
      for (const a of [lp.inputNorm, lp.wq, lp.wk, lp.wv, lp.wo, lp.bq, lp.bk, lp.bv, lp.postNorm, lp.wGate, lp.wUp, lp.wDown]) {
        total += a ? a.length : 0;
      }
    }
    return total;
  }
}

/**
 * The model's parameters as an HF-named tensor map (in their in-memory dtype, arrays shared with the model, not copied).
 * Zero-length arrays (projections a shared-attention student does not have) are left out.
 */
export function llamaWeightsFromParams(config: LlamaConfig, params: LlamaParams): Map<string, StoredTensor> {
  const out = new Map<string, StoredTensor>();
  const put = (name: string, a: Weight | undefined, shape: number[]) => {
    if (!a || !a.length) return;
    out.set(name, a instanceof HalfWeight ? { dtype: a.dtype, shape, data: a.bits } : { dtype: 'f32', shape, data: a });
  };
  const { hiddenSize: d, numHeads: h, numKvHeads: kv, headDim: hd, intermediateSize: f, vocabSize: v } = config;
  put('model.embed_tokens.weight', params.embed, [v, d]);
  params.layers.forEach((lp, i) => {
    const nm = layerTensorNames(i);
    put(nm.inputNorm, lp.inputNorm, [d]);
    put(nm.wq, lp.wq, [h * hd, d]);
    put(nm.wk, lp.wk, [kv * hd, d]);
    put(nm.wv, lp.wv, [kv * hd, d]);
    put(nm.bq, lp.bq, [h * hd]);
    put(nm.bk, lp.bk, [kv * hd]);
    put(nm.bv, lp.bv, [kv * hd]);
    put(nm.wo, lp.wo, [d, h * hd]);
    put(nm.postNorm, lp.postNorm, [d]);
    put(nm.wGate, lp.wGate, [f, d]);
    put(nm.wUp, lp.wUp, [f, d]);
    put(nm.wDown, lp.wDown, [d, f]);
  });
  put('model.norm.weight', params.norm, [d]);
  if (!config.tieWordEmbeddings) put('lm_head.weight', params.lmHead, [v, d]);
  return out;
}

/** Resolve the HF-named tensors of a checkpoint into typed per-layer parameters. */
export function llamaParamsFromWeights(config: LlamaConfig, weights: ReadonlyMap<string, StoredTensor>, mode: WeightMode = 'f32'): LlamaParams {
  const missing: string[] = [];
  const lookup = (name: string, required: boolean): StoredTensor | undefined => {
    const t = weights.get(name);
    if (!t && required) missing.push(name);
    return t;
  };
  // Vectors (norms, biases) are always f32; matrices follow `mode`.
  const get = (name: string, required = true): Float32Array | undefined => {
    const t = lookup(name, required);
    return t ? toF32(t) : undefined;
  };
  const mat = (name: string): Weight | undefined => {
    const t = lookup(name, true);
    return t ? toWeight(t, mode) : undefined;
  };
  const empty = new Float32Array(0);
  const embed = mat('model.embed_tokens.weight') ?? empty;
  const layers: LlamaLayerParams[] = [];
  for (let i = 0; i < config.numLayers; i++) {
    const nm = layerTensorNames(i);
    const bias = config.attentionBias;
    layers.push({
      inputNorm: get(nm.inputNorm) ?? empty,
      wq: mat(nm.wq) ?? empty,
      wk: mat(nm.wk) ?? empty,
      wv: mat(nm.wv) ?? empty,
      wo: mat(nm.wo) ?? empty,
      bq: bias ? get(nm.bq) : undefined,
      bk: bias ? get(nm.bk) : undefined,
      bv: bias ? get(nm.bv) : undefined,
      postNorm: get(nm.postNorm) ?? empty,
      wGate: mat(nm.wGate) ?? empty,
      wUp: mat(nm.wUp) ?? empty,
      wDown: mat(nm.wDown) ?? empty,
    });
  }
  const norm = get('model.norm.weight') ?? empty;
  const lmHead = config.tieWordEmbeddings ? embed : mat('lm_head.weight') ?? empty;
  if (missing.length) throw new EchoattError('E_CHECKPOINT', `missing tensors: ${missing.join(', ')}`);
  return { embed, layers, norm, lmHead };
}
