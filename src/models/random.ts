/**
 * Random-weight checkpoints at real shapes, for tests and benchmarks that cannot download a pretrained model.
 * Weights are uniform with variance 1/fan_in (so activations stay O(1) through many layers); norms are 1.
 *
 * @example
 * ```ts
 * const cfg = configFromJson(TINYLLAMA_CONFIG_JSON, 'tinyllama');
 * const weights = randomLlamaWeights(cfg, { seed: 1, dtype: 'bf16' });
 * ```
 */
import type { LlamaConfig } from './config.js';
import { configFromJson } from './config.js';
import { tensorSpecs, type NormKey } from './tensor-spec.js';
import type { StoredTensor } from '../tensor/tensor.js';
import type { DType } from '../tensor/dtype.js';
import { f32ToBf16, f32ToF16 } from '../tensor/dtype.js';

/** TinyLlama-1.1B's config.json (22 layers, hidden 2048, 32 heads, 4 KV heads, FFN 5632, vocab 32000). */
export const TINYLLAMA_CONFIG_JSON = Object.freeze({
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  hidden_size: 2048,
  intermediate_size: 5632,
  num_hidden_layers: 22,
  num_attention_heads: 32,
  num_key_value_heads: 4,
  vocab_size: 32000,
  max_position_embeddings: 2048,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  rope_scaling: null,
  tie_word_embeddings: false,
  hidden_act: 'silu',
  bos_token_id: 1,
  eos_token_id: 2,
  torch_dtype: 'bfloat16',
});

/** TinyLlama's shape, optionally with fewer layers (to keep tests fast). */
export function tinyLlamaConfig(numLayers = 22): Readonly<LlamaConfig> {
  return configFromJson({ ...TINYLLAMA_CONFIG_JSON, num_hidden_layers: numLayers }, 'TinyLlama-1.1B (built in)');
}

/** Fill `out` with uniform values in [-a, a) from a xorshift32 stream. */
function fillUniform(out: Float32Array, a: number, seed: number): void {
  let s = seed >>> 0 || 0x9e3779b9;
  const k = (2 * a) / 4294967296;
  for (let i = 0; i < out.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = (s >>> 0) * k - a;
  }
}

const NORM_KEYS: ReadonlySet<string> = new Set<NormKey>(['inputNorm', 'postNorm', 'preFfnNorm', 'postFfnNorm', 'qNorm', 'kNorm']);

export function randomLlamaWeights(cfg: Readonly<LlamaConfig>, opts: { seed?: number; dtype?: DType } = {}): Map<string, StoredTensor> {
  const dtype = opts.dtype ?? 'f32';
  let seed = opts.seed ?? 1;
  const out = new Map<string, StoredTensor>();
  for (const { name, key, shape, rule } of tensorSpecs(cfg)) {
    const n = shape.reduce((x, y) => x * y, 1);
    const f = new Float32Array(n);
    // Norm scales start at 1: `w = 1`, or `w = 0` where the family scales by `1 + w` (Gemma).
    if (key === 'norm' || NORM_KEYS.has(key)) f.fill(1 - cfg.normOffset);
    else {
      const fanIn = key === 'embed' ? 1 : shape[shape.length - 1];
      fillUniform(f, Math.sqrt(3 / fanIn) * (rule === 'vector' ? 0.1 : 1), (seed = (seed * 1664525 + 1013904223) >>> 0));
    }
    const data = dtype === 'f32' ? f : dtype === 'bf16' ? f32ToBf16(f) : f32ToF16(f);
    out.set(name, { dtype, shape: [...shape], data });
  }
  return out;
}
