/**
 * Model config: Hugging Face `config.json` → a typed {@link RawConfig} → a frozen, validated {@link LlamaConfig}.
 * Two steps so that type errors (field has the wrong JSON type) and semantic ones (a value we do not
 * implement) are reported separately, each naming the file and field.
 */
import type { Llama2cHeader } from '../io/llama2c.js';
import { parsePlan } from './sharing-plan.js';
import { parseHeadMap } from './head-map.js';
import { layerAttention, NO_SHARING, type LayerAttention, type ModelSharing } from './attention-kinds.js';

export type { Llama2cHeader };

/** config.json keys of a student's sharing description: the layer-wise plan and the head map. */
export const SHARING_CONFIG_KEY = 'echoatt_sharing';
export const HEAD_SHARING_CONFIG_KEY = 'echoatt_head_sharing';
import { ConfigError, UnsupportedError } from '../errors.js';
import { Fields, parseRawConfig, type RawConfig } from './config-raw.js';
import { FAMILIES, familyByArchitecture, familyByModelType, familyOf, type Activation, type Architecture, type FamilyFields } from './families/index.js';

export { parseRawConfig, type RawConfig };

export type { Architecture, Activation };
/** 'half': HF rotate-half pairs (x[i], x[i+d/2]); 'interleaved': llama2.c / Meta adjacent pairs (x[2i], x[2i+1]). */
export type RopeStyle = 'half' | 'interleaved';
export type RopeScaling =
  | null
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number }
  | { type: 'linear'; factor: number };

/** A saved student names itself `EchoAtt<base architecture>` / `echoatt_<base model_type>` and keeps the base here. */
export const STUDENT_BASE_ARCH_KEY = 'echoatt_base_architecture';
export const STUDENT_BASE_TYPE_KEY = 'echoatt_base_model_type';
const STUDENT_PREFIX = 'EchoAtt';

/** The resolved config of any family echoatt runs (the name stays from when Llama was the only one). */
export interface LlamaConfig extends FamilyFields {
  /** The base architecture (a student keeps its teacher's; it is written as `EchoAtt<architecture>`). */
  architecture: Architecture;
  modelType: string;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  maxPositions: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling;
  tieWordEmbeddings: boolean;
  /** Always false: MLP biases are rejected as unsupported. */
  mlpBias: boolean;
  ropeStyle: RopeStyle;
  bosTokenId: number | null;
  eosTokenIds: number[];
  /** Mistral's `sliding_window` (every layer); see `layerWindows` for what each layer does. */
  slidingWindow: number | null;
  torchDtype: string | null;
  /** How the model shares attention (config.json `echoatt_sharing` / `echoatt_head_sharing`), parsed and validated once. */
  sharing: ModelSharing;
  /** Derived from `sharing`: every layer's attention kind (see `attention-kinds.ts`). */
  attention: readonly LayerAttention[];
  /** config.json keys this module does not interpret, kept verbatim so they survive a round trip. */
  extra: Record<string, unknown>;
}

function resolveArchitecture(raw: RawConfig, extra: Record<string, unknown>, file: string): Architecture {
  let arch = raw.architectures?.[0];
  let type = raw.model_type;
  if (arch?.startsWith(STUDENT_PREFIX) || type?.startsWith('echoatt_')) {
    // A student folder: its base architecture is recorded beside the student's own names.
    arch = typeof extra[STUDENT_BASE_ARCH_KEY] === 'string' ? (extra[STUDENT_BASE_ARCH_KEY] as string) : arch?.slice(STUDENT_PREFIX.length);
    type = typeof extra[STUDENT_BASE_TYPE_KEY] === 'string' ? (extra[STUDENT_BASE_TYPE_KEY] as string) : type?.slice('echoatt_'.length) ?? null;
  }
  delete extra[STUDENT_BASE_ARCH_KEY];
  delete extra[STUDENT_BASE_TYPE_KEY];
  const supported = FAMILIES.map((f) => f.architecture).join(', ');
  if (arch !== undefined) {
    const fam = familyByArchitecture(arch);
    if (fam) return fam.architecture;
    throw new UnsupportedError(file, 'architectures', raw.architectures, `supported: ${supported}`);
  }
  const byType = type ? familyByModelType(type) : undefined;
  if (byType) return byType.architecture;
  throw new UnsupportedError(file, 'model_type', raw.model_type, `no architectures field and model_type is not one of ${FAMILIES.flatMap((f) => f.modelTypes).join(', ')}`);
}

function resolveRopeScaling(s: Record<string, unknown> | null, file: string): RopeScaling {
  if (s === null) return null;
  const type = s.rope_type ?? s.type ?? 'default';
  const f = new Fields(file, s);
  const need = (k: string): number => {
    const v = f.num(k);
    if (v === null) throw new ConfigError(file, `rope_scaling.${k}`, 'is required');
    return v;
  };
  if (type === 'default') return null;
  if (type === 'linear') return { type: 'linear', factor: need('factor') };
  if (type === 'llama3') {
    return {
      type: 'llama3',
      factor: need('factor'),
      lowFreqFactor: need('low_freq_factor'),
      highFreqFactor: need('high_freq_factor'),
      originalMaxPositions: need('original_max_position_embeddings'),
    };
  }
  throw new UnsupportedError(file, 'rope_scaling.rope_type', type, 'supported: llama3, linear, or no scaling');
}

/**
 * Step 2: apply HF defaults, derive fields and reject what echoatt does not implement.
 *
 * @example
 * const cfg = resolveConfig(parseRawConfig(json, 'config.json'), 'config.json');
 * cfg.headDim; // 64
 */
export function resolveConfig(raw: RawConfig, file: string): Readonly<LlamaConfig> {
  const extra = { ...raw.extra };
  const architecture = resolveArchitecture(raw, extra, file);
  const numHeads = raw.num_attention_heads;
  const numKvHeads = raw.num_key_value_heads ?? numHeads;
  if (numHeads % numKvHeads !== 0) {
    throw new UnsupportedError(file, 'num_key_value_heads', numKvHeads, `num_attention_heads ${numHeads} is not a multiple of it`);
  }
  if (raw.head_dim === null && raw.hidden_size % numHeads !== 0) {
    throw new UnsupportedError(file, 'hidden_size', raw.hidden_size, `not divisible by num_attention_heads ${numHeads} and no head_dim given`);
  }
  const headDim = raw.head_dim ?? raw.hidden_size / numHeads;
  if (headDim % 2 !== 0) throw new UnsupportedError(file, 'head_dim', headDim, 'RoPE needs an even head dimension');
  if (raw.partial_rotary_factor !== null && raw.partial_rotary_factor !== 1) {
    throw new UnsupportedError(file, 'partial_rotary_factor', raw.partial_rotary_factor, 'only full rotary embeddings are implemented');
  }
  if (raw.mlp_bias) throw new UnsupportedError(file, 'mlp_bias', true, 'MLP biases are not implemented');
  const sharing = sharingFromExtra(extra, file);
  const family = familyOf(architecture);
  const fields = family.resolve({ raw, file, headDim, extra });
  const slidingWindow = architecture === 'MistralForCausalLM' ? raw.sliding_window : null;
  if (architecture !== 'MistralForCausalLM' && raw.sliding_window !== null) {
    // Read by the family where it applies (Gemma 3), inactive elsewhere (Qwen with use_sliding_window false): kept for the round trip.
    extra.sliding_window = raw.sliding_window;
    if (raw.use_sliding_window !== null) extra.use_sliding_window = raw.use_sliding_window;
  }
  const modelType = raw.model_type && !raw.model_type.startsWith('echoatt_') ? raw.model_type : family.modelTypes[0];
  const cfg: LlamaConfig = {
    ...fields,
    architecture,
    modelType,
    hiddenSize: raw.hidden_size,
    intermediateSize: raw.intermediate_size,
    numLayers: raw.num_hidden_layers,
    numHeads,
    numKvHeads,
    headDim,
    vocabSize: raw.vocab_size,
    maxPositions: raw.max_position_embeddings ?? 2048,
    rmsNormEps: raw.rms_norm_eps ?? 1e-6,
    ropeTheta: raw.rope_theta ?? 10000,
    ropeScaling: resolveRopeScaling(raw.rope_scaling, file),
    tieWordEmbeddings: raw.tie_word_embeddings ?? family.tiedByDefault,
    mlpBias: false,
    ropeStyle: raw.rope_interleaved ? 'interleaved' : 'half',
    bosTokenId: raw.bos_token_id,
    eosTokenIds: raw.eos_token_id ?? [],
    slidingWindow,
    torchDtype: raw.torch_dtype,
    sharing,
    attention: [],
    extra,
  };
  return freezeConfig(cfg, file);
}

/** Take the sharing keys out of `extra` (they become typed fields) and parse them. */
function sharingFromExtra(extra: Record<string, unknown>, file: string): ModelSharing {
  const rawPlan = extra[SHARING_CONFIG_KEY];
  const rawMap = extra[HEAD_SHARING_CONFIG_KEY];
  delete extra[SHARING_CONFIG_KEY];
  delete extra[HEAD_SHARING_CONFIG_KEY];
  const plan = rawPlan === undefined || rawPlan === null ? null : parsePlan(rawPlan, `${file} (${SHARING_CONFIG_KEY})`);
  const headMap = rawMap === undefined || rawMap === null ? null : parseHeadMap(rawMap, `${file} (${HEAD_SHARING_CONFIG_KEY})`);
  return plan || headMap ? Object.freeze({ plan, headMap }) : NO_SHARING;
}

/**
 * The same model with another sharing description (validated against the model; layer kinds re-derived).
 *
 * @example
 * const studentCfg = withSharing(teacher.config, { plan, headMap: null });
 */
export function withSharing(cfg: Readonly<LlamaConfig>, sharing: ModelSharing, where = 'sharing'): Readonly<LlamaConfig> {
  return freezeConfig({ ...cfg, eosTokenIds: [...cfg.eosTokenIds], layerWindows: [...cfg.layerWindows], extra: { ...cfg.extra }, sharing, attention: [] }, where);
}

function freezeConfig(cfg: LlamaConfig, where: string): Readonly<LlamaConfig> {
  cfg.attention = layerAttention(cfg, cfg.sharing, where);
  Object.freeze(cfg.eosTokenIds);
  Object.freeze(cfg.layerWindows);
  if (cfg.ropeScaling) Object.freeze(cfg.ropeScaling);
  Object.freeze(cfg.extra);
  return Object.freeze(cfg);
}

/**
 * Back to a config.json object (HF field names). `extra` keys come last and never override ours.
 *
 * @example
 * fs.writeFileSync('config.json', JSON.stringify(configToHfJson(cfg), null, 2));
 */
export function configToHfJson(cfg: Readonly<LlamaConfig>): Record<string, unknown> {
  const student = cfg.sharing.plan !== null || cfg.sharing.headMap !== null;
  const out: Record<string, unknown> = {
    architectures: [student ? `${STUDENT_PREFIX}${cfg.architecture}` : cfg.architecture],
    model_type: student ? `echoatt_${cfg.modelType}` : cfg.modelType,
    hidden_size: cfg.hiddenSize,
    intermediate_size: cfg.intermediateSize,
    num_hidden_layers: cfg.numLayers,
    num_attention_heads: cfg.numHeads,
    num_key_value_heads: cfg.numKvHeads,
    head_dim: cfg.headDim,
    vocab_size: cfg.vocabSize,
    max_position_embeddings: cfg.maxPositions,
    rms_norm_eps: cfg.rmsNormEps,
    rope_theta: cfg.ropeTheta,
    rope_scaling: ropeScalingToHf(cfg.ropeScaling),
    tie_word_embeddings: cfg.tieWordEmbeddings,
    hidden_act: cfg.hiddenAct === 'silu' ? 'silu' : undefined,
    bos_token_id: cfg.bosTokenId,
    eos_token_id: cfg.eosTokenIds.length === 1 ? cfg.eosTokenIds[0] : [...cfg.eosTokenIds],
    torch_dtype: cfg.torchDtype,
    ...familyOf(cfg.architecture).toHf(cfg),
  };
  if (out.hidden_act === undefined) delete out.hidden_act;
  if (student) Object.assign(out, { [STUDENT_BASE_ARCH_KEY]: cfg.architecture, [STUDENT_BASE_TYPE_KEY]: cfg.modelType });
  if (cfg.ropeStyle === 'interleaved') out.rope_interleaved = true;
  if (cfg.sharing.plan) out[SHARING_CONFIG_KEY] = cfg.sharing.plan;
  if (cfg.sharing.headMap) out[HEAD_SHARING_CONFIG_KEY] = cfg.sharing.headMap;
  for (const [k, v] of Object.entries(cfg.extra)) if (!Object.hasOwn(out, k)) out[k] = v;
  return out;
}

function ropeScalingToHf(s: RopeScaling): Record<string, unknown> | null {
  if (s === null) return null;
  if (s.type === 'linear') return { rope_type: 'linear', factor: s.factor };
  return {
    rope_type: 'llama3',
    factor: s.factor,
    low_freq_factor: s.lowFreqFactor,
    high_freq_factor: s.highFreqFactor,
    original_max_position_embeddings: s.originalMaxPositions,
  };
}

/**
 * Resolved config for a llama2.c checkpoint (values run.c hard-codes: eps 1e-5, theta 10000, BOS 1, EOS 2).
 *
 * @example
 * llama2cConfig({ dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512, seqLen: 512 });
 */
export function llama2cConfig(h: Llama2cHeader): Readonly<LlamaConfig> {
  return freezeConfig({
    architecture: 'LlamaForCausalLM',
    modelType: 'llama',
    hiddenSize: h.dim,
    intermediateSize: h.hiddenDim,
    numLayers: h.nLayers,
    numHeads: h.nHeads,
    numKvHeads: h.nKvHeads,
    headDim: h.dim / h.nHeads,
    vocabSize: Math.abs(h.vocabSize),
    maxPositions: h.seqLen,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: null,
    tieWordEmbeddings: h.vocabSize > 0,
    ...LLAMA2C_FAMILY(h),
    mlpBias: false,
    ropeStyle: 'interleaved',
    bosTokenId: 1,
    eosTokenIds: [2],
    slidingWindow: null,
    torchDtype: 'float32',
    sharing: NO_SHARING,
    attention: [],
    extra: {},
  }, 'llama2.c header');
}

/** run.c's decoder: a plain Llama. */
function LLAMA2C_FAMILY(h: Llama2cHeader): FamilyFields {
  return {
    hiddenAct: 'silu', normOffset: 0, qkNorm: false, sandwichNorms: false, embedScale: 1, attentionBias: false,
    attnScale: 1 / Math.sqrt(h.dim / h.nHeads), layerWindows: new Array<number>(h.nLayers).fill(0), ropeLocalTheta: null, finalLogitSoftcap: null,
  };
}

/** Read a config.json file into a resolved config (both steps). */
export function configFromJson(json: unknown, file: string): Readonly<LlamaConfig> {
  return resolveConfig(parseRawConfig(json, file), file);
}
