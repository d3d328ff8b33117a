/**
 * Export an unshared Llama model to GGUF v3 for llama.cpp (architecture `llama`), F32 or F16 tensors.
 *
 * llama.cpp's `llama` architecture rotates adjacent pairs, as llama2.c does, so q/k rows of a Hugging Face
 * (rotate-half) model are permuted back to interleaved order (the inverse of HF's conversion permute).
 * Shared-attention and head-shared students have no equivalent in llama.cpp and are refused.
 *
 * @example
 * ```ts
 * const { model, tokenizer } = loadModel('../shared/models/stories260K/stories260K.bin');
 * exportGguf('stories260K.gguf', model, ggufTokenizerOf(tokenizer), { dtype: 'f16' });
 * ```
 */
import type { LlamaModel } from '../models/llama.js';
import { weightsFromParams, toF32 } from '../models/params.js';
import { familyByArchitecture } from '../models/families/index.js';
import { unpermuteFromHalfRope } from '../io/llama2c.js';
import { GgmlType, GgufType, writeGguf, type GgufTensorOut, type GgufValue } from '../io/gguf.js';
import { readJsonFile, isPlainObject } from '../io/fsutil.js';
import { Llama2cTokenizer } from '../tokenizer/llama2c.js';
import { HfTokenizer } from '../tokenizer/hf.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { f32ToF16 } from '../tensor/dtype.js';
import { EchoattError, FormatError } from '../errors.js';

const TOKEN_NORMAL = 1;
const TOKEN_UNKNOWN = 2;
const TOKEN_CONTROL = 3;
const TOKEN_BYTE = 6;

/** Tokenizer metadata in GGUF terms. */
export interface GgufTokenizer {
  model: 'llama' | 'gpt2';
  tokens: string[];
  scores: Float32Array;
  types: Int32Array;
  merges?: string[];
  bos: number | null;
  eos: number | null;
  unk: number | null;
}

/** From a llama2.c tokenizer: pieces had '▁' replaced by ' ' on export, so it is put back. */
export function ggufTokenizerFromLlama2c(tok: Llama2cTokenizer): GgufTokenizer {
  const n = tok.vocabSize;
  const tokens: string[] = [];
  const scores = new Float32Array(n);
  const types = new Int32Array(n);
  const dec = new TextDecoder();
  for (let i = 0; i < n; i++) {
    const text = dec.decode(tok.piece(i));
    scores[i] = tok.score(i);
    if (/^<0x[0-9A-F]{2}>$/.test(text)) {
      tokens.push(text);
      types[i] = TOKEN_BYTE;
    } else {
      tokens.push(text.replaceAll(' ', '\u2581'));
      types[i] = i === 0 ? TOKEN_UNKNOWN : i === 1 || i === 2 ? TOKEN_CONTROL : TOKEN_NORMAL;
    }
  }
  return { model: 'llama', tokens, scores, types, bos: 1, eos: 2, unk: 0 };
}

/**
 * From a Hugging Face tokenizer.json. SentencePiece-style BPE with byte fallback becomes llama.cpp's `llama` vocab,
 * with each token's score = −(rank of the merge that creates it), which reproduces BPE merge order under llama.cpp's
 * score-driven merging; byte-level BPE becomes `gpt2` with its merges.
 */
export function ggufTokenizerFromJson(file: string): GgufTokenizer {
  const json = readJsonFile(file);
  if (!isPlainObject(json) || !isPlainObject(json.model)) throw new FormatError(file, "no 'model' object");
  const model = json.model;
  if (model.type !== 'BPE' || !isPlainObject(model.vocab)) throw new FormatError(file, `only BPE tokenizers can be exported to GGUF (model.type = ${String(model.type)})`);
  const vocab = model.vocab as Record<string, number>;
  const added = Array.isArray(json.added_tokens) ? (json.added_tokens as Record<string, unknown>[]) : [];
  let n = 0;
  for (const id of Object.values(vocab)) n = Math.max(n, id + 1);
  for (const a of added) if (typeof a.id === 'number') n = Math.max(n, a.id + 1);
  const tokens = Array.from({ length: n }, (_, i) => `[PAD${i}]`);
  for (const [t, id] of Object.entries(vocab)) tokens[id] = t;
  const types = new Int32Array(n).fill(TOKEN_NORMAL);
  const special = new Set<number>();
  for (const a of added) {
    if (typeof a.id !== 'number' || typeof a.content !== 'string') continue;
    tokens[a.id] = a.content;
    if (a.special) {
      types[a.id] = TOKEN_CONTROL;
      special.add(a.id);
    }
  }
  const rawMerges = Array.isArray(model.merges) ? model.merges : [];
  const merges = rawMerges.map((m) => (Array.isArray(m) ? m.join(' ') : String(m)));
  const unkTok = typeof model.unk_token === 'string' ? vocab[model.unk_token] ?? null : null;
  const find = (s: string) => {
    const i = tokens.indexOf(s);
    return i >= 0 ? i : null;
  };
  if (model.byte_fallback === true) {
    const scores = new Float32Array(n);
    merges.forEach((m, rank) => {
      const id = vocab[m.replace(' ', '')];
      if (id !== undefined && scores[id] === 0) scores[id] = -(rank + 1);
    });
    for (let i = 0; i < n; i++) if (/^<0x[0-9A-F]{2}>$/.test(tokens[i])) types[i] = TOKEN_BYTE;
    if (unkTok !== null) types[unkTok] = TOKEN_UNKNOWN;
    return { model: 'llama', tokens, scores, types, bos: find('<s>'), eos: find('</s>'), unk: unkTok };
  }
  return { model: 'gpt2', tokens, scores: new Float32Array(n), types, merges, bos: null, eos: null, unk: unkTok };
}

/** GGUF tokenizer metadata for any echoatt tokenizer. */
export function ggufTokenizerOf(tok: Tokenizer): GgufTokenizer {
  if (tok instanceof Llama2cTokenizer) return ggufTokenizerFromLlama2c(tok);
  if (tok instanceof HfTokenizer) {
    const g = ggufTokenizerFromJson(tok.file);
    return { ...g, bos: tok.bosId ?? g.bos, eos: tok.eosIds[0] ?? g.eos };
  }
  throw new EchoattError('E_UNSUPPORTED', 'GGUF export: unknown tokenizer type');
}

const GGUF_NAMES: Record<string, string> = {
  input_layernorm: 'attn_norm',
  'self_attn.q_proj': 'attn_q',
  'self_attn.k_proj': 'attn_k',
  'self_attn.v_proj': 'attn_v',
  'self_attn.o_proj': 'attn_output',
  post_attention_layernorm: 'ffn_norm',
  'mlp.gate_proj': 'ffn_gate',
  'mlp.up_proj': 'ffn_up',
  'mlp.down_proj': 'ffn_down',
};

/** llama.cpp's tensor name for a Hugging Face one. */
export function ggufTensorName(hf: string): string {
  if (hf === 'model.embed_tokens.weight') return 'token_embd.weight';
  if (hf === 'model.norm.weight') return 'output_norm.weight';
  if (hf === 'lm_head.weight') return 'output.weight';
  const m = /^model\.layers\.(\d+)\.(.+)\.(weight|bias)$/.exec(hf);
  const mapped = m ? GGUF_NAMES[m[2]] : undefined;
  if (!m || !mapped) throw new EchoattError('E_UNSUPPORTED', `GGUF export: no llama.cpp name for tensor '${hf}'`);
  return `blk.${m[1]}.${mapped}.${m[3]}`;
}

/** Write `model` (an ordinary Llama model) as a GGUF v3 file. */
export function exportGguf(file: string, model: LlamaModel, tok: GgufTokenizer, opts: { dtype?: 'f32' | 'f16'; name?: string } = {}): void {
  if (model.config.attention.some((k) => k.kind !== 'own')) {
    throw new EchoattError('E_UNSUPPORTED', 'GGUF export: shared-attention and head-shared students cannot run in llama.cpp (it has no way to reuse another layer\'s attention); export the teacher, or use echoatt to run the student');
  }
  const c = model.config;
  const gguf = familyByArchitecture(c.architecture)?.gguf;
  if (gguf !== 'llama') {
    throw new EchoattError('E_UNSUPPORTED', `GGUF export: ${c.architecture} is not written by this exporter (it writes llama.cpp's 'llama' architecture only${gguf && gguf !== 'llama' ? `; llama.cpp reads this family as '${gguf}', which is not implemented here yet` : ''})`);
  }
  if (c.attentionBias) throw new EchoattError('E_UNSUPPORTED', 'GGUF export: q/k/v biases (Qwen2) are not written by this exporter; only the llama architecture is supported');
  const dtype = opts.dtype ?? 'f16';
  const md = new Map<string, GgufValue>();
  const str = (v: string): GgufValue => ({ type: GgufType.STRING, value: v });
  const u32 = (v: number): GgufValue => ({ type: GgufType.UINT32, value: v });
  const f32 = (v: number): GgufValue => ({ type: GgufType.FLOAT32, value: v });
  md.set('general.architecture', str('llama'));
  md.set('general.name', str(opts.name ?? 'echoatt export'));
  md.set('general.alignment', u32(32));
  md.set('general.file_type', u32(dtype === 'f32' ? 0 : 1));
  md.set('llama.context_length', u32(c.maxPositions));
  md.set('llama.embedding_length', u32(c.hiddenSize));
  md.set('llama.block_count', u32(c.numLayers));
  md.set('llama.feed_forward_length', u32(c.intermediateSize));
  md.set('llama.rope.dimension_count', u32(c.headDim));
  md.set('llama.attention.head_count', u32(c.numHeads));
  md.set('llama.attention.head_count_kv', u32(c.numKvHeads));
  md.set('llama.attention.layer_norm_rms_epsilon', f32(c.rmsNormEps));
  md.set('llama.rope.freq_base', f32(c.ropeTheta));
  md.set('llama.vocab_size', u32(c.vocabSize));
  if (c.ropeScaling?.type === 'linear') {
    md.set('llama.rope.scaling.type', str('linear'));
    md.set('llama.rope.scaling.factor', f32(c.ropeScaling.factor));
  } else if (c.ropeScaling) {
    throw new EchoattError('E_UNSUPPORTED', `GGUF export: rope_scaling '${c.ropeScaling.type}' is not written by this exporter`);
  }
  md.set('tokenizer.ggml.model', str(tok.model));
  if (tok.model === 'gpt2') md.set('tokenizer.ggml.pre', str('default'));
  md.set('tokenizer.ggml.tokens', { type: GgufType.ARRAY, elemType: GgufType.STRING, value: tok.tokens });
  md.set('tokenizer.ggml.scores', { type: GgufType.ARRAY, elemType: GgufType.FLOAT32, value: tok.scores });
  md.set('tokenizer.ggml.token_type', { type: GgufType.ARRAY, elemType: GgufType.INT32, value: tok.types });
  if (tok.merges) md.set('tokenizer.ggml.merges', { type: GgufType.ARRAY, elemType: GgufType.STRING, value: tok.merges });
  if (tok.bos !== null) md.set('tokenizer.ggml.bos_token_id', u32(tok.bos));
  if (tok.eos !== null) md.set('tokenizer.ggml.eos_token_id', u32(tok.eos));
  if (tok.unk !== null) md.set('tokenizer.ggml.unknown_token_id', u32(tok.unk));
  if (tok.tokens.length !== c.vocabSize) {
    throw new EchoattError('E_UNSUPPORTED', `GGUF export: tokenizer has ${tok.tokens.length} tokens but the model's vocabulary is ${c.vocabSize}`);
  }

  const tensors: GgufTensorOut[] = [];
  for (const [name, t] of weightsFromParams(c, model.params)) {
    let data = toF32(t);
    const qk = /self_attn\.([qk])_proj\.weight$/.exec(name);
    if (qk && c.ropeStyle === 'half') {
      data = unpermuteFromHalfRope(data, qk[1] === 'q' ? c.numHeads : c.numKvHeads, c.headDim, c.hiddenSize);
    }
    // Norm vectors stay f32 (llama.cpp does the same); matrices take the requested dtype.
    const half = dtype === 'f16' && t.shape.length === 2;
    const bytes = half ? f32ToF16(data) : data;
    tensors.push({
      name: ggufTensorName(name),
      shape: t.shape,
      type: half ? GgmlType.F16 : GgmlType.F32,
      data: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength),
    });
  }
  writeGguf(file, md, tensors);
}
