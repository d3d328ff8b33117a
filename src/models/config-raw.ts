/**
 * Step 1 of reading a config.json: type-check the fields echoatt reads into a {@link RawConfig} (every type error a
 * `ConfigError` naming file and field). Step 2, resolving defaults and what echoatt implements, is `config.ts`.
 */
import { ConfigError } from '../errors.js';
import { isPlainObject } from '../io/fsutil.js';

/** The config.json fields we read, type-checked; `null` means absent (or JSON null). */
export interface RawConfig {
  architectures: string[] | null;
  model_type: string | null;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number | null;
  head_dim: number | null;
  vocab_size: number;
  max_position_embeddings: number | null;
  rms_norm_eps: number | null;
  rope_theta: number | null;
  rope_scaling: Record<string, unknown> | null;
  tie_word_embeddings: boolean | null;
  attention_bias: boolean | null;
  mlp_bias: boolean | null;
  bos_token_id: number | null;
  eos_token_id: number[] | null;
  sliding_window: number | null;
  use_sliding_window: boolean | null;
  hidden_act: string | null;
  torch_dtype: string | null;
  partial_rotary_factor: number | null;
  rope_interleaved: boolean | null;
  /** RoPE base of sliding-window layers when `rope_parameters` is split per layer type (`sliding_attention`). */
  rope_local_theta: number | null;
  extra: Record<string, unknown>;
}

const KNOWN = new Set([
  'architectures', 'model_type', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads',
  'num_key_value_heads', 'head_dim', 'vocab_size', 'max_position_embeddings', 'rms_norm_eps', 'rope_theta',
  'rope_scaling', 'rope_parameters', 'tie_word_embeddings', 'attention_bias', 'mlp_bias', 'bos_token_id', 'eos_token_id',
  'sliding_window', 'use_sliding_window', 'hidden_act', 'torch_dtype', 'dtype', 'partial_rotary_factor', 'rope_interleaved',
]);

/** Upper bounds far above any released model (largest today: ~128 layers, width 16384, vocab 262144). */
const LIMITS = { layers: 4096, heads: 4096, headDim: 4096, width: 1 << 18, ffn: 1 << 20, vocab: 1 << 24 } as const;

/** Field readers: each throws a ConfigError naming file and field. */
export class Fields {
  constructor(readonly file: string, readonly o: Record<string, unknown>) {}
  private get(k: string): unknown {
    return this.o[k] ?? null;
  }
  int(k: string, min = 1, max = Number.MAX_SAFE_INTEGER): number | null {
    const v = this.get(k);
    if (v === null) return null;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw new ConfigError(this.file, k, `must be an integer >= ${min}, got ${JSON.stringify(v)}`);
    if (v > max) throw new ConfigError(this.file, k, `is ${v}, beyond any model echoatt can hold (at most ${max})`);
    return v;
  }
  reqInt(k: string, max?: number): number {
    const v = this.int(k, 1, max);
    if (v === null) throw new ConfigError(this.file, k, 'is required');
    return v;
  }
  num(k: string): number | null {
    const v = this.get(k);
    if (v === null) return null;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new ConfigError(this.file, k, `must be a positive number, got ${JSON.stringify(v)}`);
    return v;
  }
  bool(k: string): boolean | null {
    const v = this.get(k);
    if (v === null) return null;
    if (typeof v !== 'boolean') throw new ConfigError(this.file, k, `must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }
  str(k: string): string | null {
    const v = this.get(k);
    if (v === null) return null;
    if (typeof v !== 'string') throw new ConfigError(this.file, k, `must be a string, got ${JSON.stringify(v)}`);
    return v;
  }
  obj(k: string): Record<string, unknown> | null {
    const v = this.get(k);
    if (v === null) return null;
    if (!isPlainObject(v)) throw new ConfigError(this.file, k, `must be an object or null, got ${JSON.stringify(v)}`);
    return v;
  }
  intList(k: string): number[] | null {
    const v = this.get(k);
    if (v === null) return null;
    const list = Array.isArray(v) ? v : [v];
    if (!list.every((x) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0)) {
      throw new ConfigError(this.file, k, `must be a token id or a list of token ids, got ${JSON.stringify(v)}`);
    }
    return list as number[];
  }
}

/**
 * Step 1: type-check the fields of a parsed config.json.
 *
 * @example
 * const raw = parseRawConfig(JSON.parse(fs.readFileSync(file, 'utf8')), file);
 */
export function parseRawConfig(json: unknown, file: string): RawConfig {
  if (!isPlainObject(json)) throw new ConfigError(file, '(root)', 'must be a JSON object');
  const f = new Fields(file, json);
  const archs = json.architectures ?? null;
  if (archs !== null && (!Array.isArray(archs) || !archs.every((a) => typeof a === 'string'))) {
    throw new ConfigError(file, 'architectures', `must be a list of strings, got ${JSON.stringify(archs)}`);
  }
  // transformers v5 moves rope_theta (and scaling) into rope_parameters, per layer type where layers differ (Gemma 3:
  // `full_attention` / `sliding_attention`); accept every spelling.
  const split = splitRopeParameters(f);
  const ropeParams = split.full;
  const scaling = f.obj('rope_scaling') ?? ropeParams;
  let ropeTheta = f.num('rope_theta');
  if (ropeTheta === null && ropeParams) ropeTheta = new Fields(file, ropeParams).num('rope_theta');
  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(json)) if (!KNOWN.has(k)) extra[k] = v;
  return {
    architectures: archs as string[] | null,
    model_type: f.str('model_type'),
    // Sizes are bounded before anything is allocated from them (a hostile or corrupt config must not exhaust memory).
    hidden_size: f.reqInt('hidden_size', LIMITS.width),
    intermediate_size: f.reqInt('intermediate_size', LIMITS.ffn),
    num_hidden_layers: f.reqInt('num_hidden_layers', LIMITS.layers),
    num_attention_heads: f.reqInt('num_attention_heads', LIMITS.heads),
    num_key_value_heads: f.int('num_key_value_heads', 1, LIMITS.heads),
    head_dim: f.int('head_dim', 1, LIMITS.headDim),
    vocab_size: f.reqInt('vocab_size', LIMITS.vocab),
    max_position_embeddings: f.int('max_position_embeddings'),
    rms_norm_eps: f.num('rms_norm_eps'),
    rope_theta: ropeTheta,
    rope_scaling: scaling,
    tie_word_embeddings: f.bool('tie_word_embeddings'),
    attention_bias: f.bool('attention_bias'),
    mlp_bias: f.bool('mlp_bias'),
    bos_token_id: f.int('bos_token_id', 0),
    eos_token_id: f.intList('eos_token_id'),
    sliding_window: f.int('sliding_window'),
    use_sliding_window: f.bool('use_sliding_window'),
    hidden_act: f.str('hidden_act'),
    torch_dtype: f.str('torch_dtype') ?? f.str('dtype'),
    partial_rotary_factor: f.num('partial_rotary_factor'),
    rope_interleaved: f.bool('rope_interleaved'),
    rope_local_theta: split.sliding ? new Fields(file, split.sliding).num('rope_theta') : null,
    extra,
  };
}

/** `rope_parameters` as one object, or split into `full_attention` / `sliding_attention` parts. */
function splitRopeParameters(f: Fields): { full: Record<string, unknown> | null; sliding: Record<string, unknown> | null } {
  const p = f.obj('rope_parameters');
  if (!p || !('full_attention' in p || 'sliding_attention' in p)) return { full: p, sliding: null };
  const part = (k: string) => new Fields(`${f.file} (rope_parameters)`, p).obj(k);
  return { full: part('full_attention'), sliding: part('sliding_attention') };
}
