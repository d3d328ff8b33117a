/**
 * A model's parameters in memory, typed per role, and the conversions to and from Hugging Face-named tensor maps.
 * Both directions walk the one table in `tensor-spec.ts`, so what is loaded, saved and trained always agree.
 *
 * @example
 * ```ts
 * const params = paramsFromWeights(cfg, checkpoint.weights, 'as-stored');
 * const again = weightsFromParams(cfg, params); // the same names and shapes, arrays shared
 * ```
 */
import type { LlamaConfig } from './config.js';
import { tensorSpecs, type LayerKey, type TensorSpec } from './tensor-spec.js';
import type { StoredTensor } from '../tensor/tensor.js';
import { bf16ToF32, f16ToF32 } from '../tensor/dtype.js';
import { HalfWeight, type Weight } from '../tensor/weight.js';
import { EchoattError } from '../errors.js';
import type { MlpParams } from '../nn/layers.js';

/**
 * One layer's tensors. Attention projections are absent where the layer's kind has none (an echo layer's q/k, a
 * dropped layer's q/k/v/o), norms where the family has none (q/k norms outside Qwen3 / Gemma 3).
 */
export interface LlamaLayerParams extends MlpParams {
  inputNorm: Float32Array; // (dim)
  wq?: Weight; // (H·D, dim), or (own·G·D, dim) for a head-shared layer
  wk?: Weight; // (Hkv·D, dim)
  wv?: Weight; // (Hkv·D, dim)
  wo?: Weight; // (dim, H·D)
  bq?: Float32Array;
  bk?: Float32Array;
  bv?: Float32Array;
  qNorm?: Float32Array; // (D)
  kNorm?: Float32Array; // (D)
  /** Llama: the MLP's input norm; Gemma: the attention output's norm. */
  postNorm?: Float32Array; // (dim)
  preFfnNorm?: Float32Array; // (dim)
  postFfnNorm?: Float32Array; // (dim)
}

/** Matrices may be half precision (kept as loaded); norms and biases are always f32. */
export interface LlamaParams {
  embed: Weight; // (V, dim)
  layers: LlamaLayerParams[];
  norm: Float32Array; // (dim)
  lmHead: Weight; // (V, dim); the same object as `embed` when tied
}

/** How weight matrices are held in memory: widened to f32 (trainable), or as stored (f16/bf16 stay half). */
export type WeightMode = 'f32' | 'as-stored';

/** Widen a stored tensor to f32 (no copy when it already is f32). */
export function toF32(t: StoredTensor): Float32Array {
  if (t.data instanceof Float32Array) return t.data;
  return t.dtype === 'bf16' ? bf16ToF32(t.data) : f16ToF32(t.data);
}

/** A stored matrix as a {@link Weight}: half-precision data stays half with `'as-stored'`. */
export function toWeight(t: StoredTensor, mode: WeightMode): Weight {
  if (mode === 'as-stored' && t.data instanceof Uint16Array && (t.dtype === 'f16' || t.dtype === 'bf16')) return new HalfWeight(t.dtype, t.data);
  return toF32(t);
}

/** The in-memory array of one table entry (undefined when the model does not hold it). */
export function paramOf(params: LlamaParams, spec: TensorSpec): Weight | undefined {
  if (spec.layer < 0) return params[spec.key as 'embed' | 'norm' | 'lmHead'];
  return params.layers[spec.layer][spec.key as LayerKey];
}

/** Resolve the HF-named tensors of a checkpoint into typed parameters. Missing tensors throw one `E_CHECKPOINT` error listing them all. */
export function paramsFromWeights(config: Readonly<LlamaConfig>, weights: ReadonlyMap<string, StoredTensor>, mode: WeightMode = 'f32'): LlamaParams {
  const missing: string[] = [];
  const layers = Array.from({ length: config.numLayers }, () => ({}) as Record<string, Weight>);
  const globals: Record<string, Weight> = {};
  for (const spec of tensorSpecs(config)) {
    const t = weights.get(spec.name);
    if (!t) {
      missing.push(spec.name);
      continue;
    }
    const value = spec.rule === 'vector' ? toF32(t) : toWeight(t, mode);
    if (spec.layer < 0) globals[spec.key] = value;
    else layers[spec.layer][spec.key] = value;
  }
  if (missing.length) throw new EchoattError('E_CHECKPOINT', `missing tensors: ${missing.join(', ')}`);
  const embed = globals.embed;
  return {
    embed,
    layers: layers as unknown as LlamaLayerParams[],
    norm: globals.norm as Float32Array,
    lmHead: config.tieWordEmbeddings ? embed : globals.lmHead,
  };
}

/** The model's parameters as an HF-named tensor map, in their in-memory dtype (arrays shared with the model, not copied). */
export function weightsFromParams(config: Readonly<LlamaConfig>, params: LlamaParams): Map<string, StoredTensor> {
  const out = new Map<string, StoredTensor>();
  for (const spec of tensorSpecs(config)) {
    const a = paramOf(params, spec);
    if (!a) throw new EchoattError('E_CHECKPOINT', `the model holds no '${spec.name}'`);
    const shape = [...spec.shape];
    out.set(spec.name, a instanceof HalfWeight ? { dtype: a.dtype, shape, data: a.bits } : { dtype: 'f32', shape, data: a });
  }
  return out;
}

/** Number of stored parameters (tied embeddings counted once). */
export function parameterCount(config: Readonly<LlamaConfig>, params: LlamaParams): number {
  let total = 0;
  for (const spec of tensorSpecs(config)) total += paramOf(params, spec)?.length ?? 0;
  return total;
}
