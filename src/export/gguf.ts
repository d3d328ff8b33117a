/**
 * Export an unshared teacher to GGUF v3 for llama.cpp, F32 or F16 tensors: Llama/Mistral as llama.cpp's `llama`,
 * Qwen3 as `qwen3`, Gemma 3 text as `gemma3`, in the form llama.cpp's own convert_hf_to_gguf.py writes them.
 *
 * llama.cpp's `llama` architecture rotates adjacent pairs, as llama2.c does, so q/k rows of a Hugging Face
 * (rotate-half) model are permuted back to interleaved order (the inverse of HF's conversion permute); `qwen3` and
 * `gemma3` rotate halves (NEOX) and take q/k as Hugging Face stores them. Per-architecture names, transforms and
 * refusals are in gguf-arch.ts. Shared-attention and head-shared students have no equivalent in llama.cpp and are refused.
 *
 * @example
 * ```ts
 * const { model, tokenizer } = loadModel('../shared/models/stories260K/stories260K.bin');
 * exportGguf('stories260K.gguf', model, ggufTokenizerOf(tokenizer), { dtype: 'f16' });
 * ```
 */
import type { LlamaModel } from '../models/llama.js';
import { weightsFromParams, toF32 } from '../models/params.js';
import type { LlamaConfig } from '../models/config.js';
import { permuteForHalfRope, unpermuteFromHalfRope } from '../io/llama2c.js';
import { ggufArchOf, ggufRopeStyle, LAYER_NAMES, type GgufArch } from './gguf-arch.js';
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

/** llama.cpp's tensor name for a Hugging Face one, in llama.cpp architecture `arch` (default `llama`). */
export function ggufTensorName(hf: string, arch: GgufArch = 'llama'): string {
  if (hf === 'model.embed_tokens.weight') return 'token_embd.weight';
  if (hf === 'model.norm.weight') return 'output_norm.weight';
  if (hf === 'lm_head.weight') return 'output.weight';
  const m = /^model\.layers\.(\d+)\.(.+)\.(weight|bias)$/.exec(hf);
  const mapped = m ? LAYER_NAMES[arch][m[2]] : undefined;
  if (!m || !mapped) throw new EchoattError('E_UNSUPPORTED', `GGUF export: no llama.cpp name for tensor '${hf}'`);
  return `blk.${m[1]}.${mapped}.${m[3]}`;
}

/**
 * Write `model` (an unshared teacher) as a GGUF v3 file in llama.cpp's architecture for its family (`llama`, `qwen3`
 * or `gemma3`; see gguf-arch.ts for what each needs and what is refused).
 */
export function exportGguf(file: string, model: LlamaModel, tok: GgufTokenizer, opts: { dtype?: 'f32' | 'f16'; name?: string } = {}): void {
  if (model.config.attention.some((k) => k.kind !== 'own')) {
    throw new EchoattError('E_UNSUPPORTED', 'GGUF export: shared-attention and head-shared students cannot run in llama.cpp (it has no way to reuse another layer\'s attention); export the teacher, or use echoatt to run the student');
  }
  const c = model.config;
  const { arch, slidingWindow } = ggufArchOf(c);
  if (c.attentionBias) throw new EchoattError('E_UNSUPPORTED', 'GGUF export: q/k/v biases (Qwen2) are not written by this exporter; only the llama architecture is supported');
  const dtype = opts.dtype ?? 'f16';
  const md = ggufMetadata(c, arch, slidingWindow, tok, dtype, opts.name);
  writeGguf(file, md, ggufTensors(c, model, arch, dtype));
}

const str = (v: string): GgufValue => ({ type: GgufType.STRING, value: v });
const u32 = (v: number): GgufValue => ({ type: GgufType.UINT32, value: v });
const f32 = (v: number): GgufValue => ({ type: GgufType.FLOAT32, value: v });

function ggufMetadata(c: Readonly<LlamaConfig>, a: GgufArch, slidingWindow: number | null, tok: GgufTokenizer, dtype: 'f32' | 'f16', name?: string): Map<string, GgufValue> {
  const md = new Map<string, GgufValue>();
  md.set('general.architecture', str(a));
  md.set('general.name', str(name ?? 'echoatt export'));
  md.set('general.alignment', u32(32));
  md.set('general.file_type', u32(dtype === 'f32' ? 0 : 1));
  md.set(`${a}.context_length`, u32(c.maxPositions));
  md.set(`${a}.embedding_length`, u32(c.hiddenSize));
  md.set(`${a}.block_count`, u32(c.numLayers));
  md.set(`${a}.feed_forward_length`, u32(c.intermediateSize));
  md.set(`${a}.rope.dimension_count`, u32(c.headDim));
  md.set(`${a}.attention.head_count`, u32(c.numHeads));
  md.set(`${a}.attention.head_count_kv`, u32(c.numKvHeads));
  md.set(`${a}.attention.layer_norm_rms_epsilon`, f32(c.rmsNormEps));
  md.set(`${a}.rope.freq_base`, f32(c.ropeTheta));
  md.set(`${a}.vocab_size`, u32(c.vocabSize));
  if (c.ropeScaling?.type === 'linear') {
    md.set(`${a}.rope.scaling.type`, str('linear'));
    md.set(`${a}.rope.scaling.factor`, f32(c.ropeScaling.factor));
  } else if (c.ropeScaling) {
    throw new EchoattError('E_UNSUPPORTED', `GGUF export: rope_scaling '${c.ropeScaling.type}' is not written by this exporter`);
  }
  if (a !== 'llama') {
    // head_dim may differ from hidden/heads (Qwen3, Gemma 3): llama.cpp reads it from key_length / value_length.
    md.set(`${a}.attention.key_length`, u32(c.headDim));
    md.set(`${a}.attention.value_length`, u32(c.headDim));
  }
  if (slidingWindow !== null) md.set(`${a}.attention.sliding_window`, u32(slidingWindow));
  setTokenizerMetadata(md, tok);
  if (tok.tokens.length !== c.vocabSize) {
    throw new EchoattError('E_UNSUPPORTED', `GGUF export: tokenizer has ${tok.tokens.length} tokens but the model's vocabulary is ${c.vocabSize}`);
  }
  return md;
}

function setTokenizerMetadata(md: Map<string, GgufValue>, tok: GgufTokenizer): void {
  md.set('tokenizer.ggml.model', str(tok.model));
  if (tok.model === 'gpt2') md.set('tokenizer.ggml.pre', str('default'));
  md.set('tokenizer.ggml.tokens', { type: GgufType.ARRAY, elemType: GgufType.STRING, value: tok.tokens });
  md.set('tokenizer.ggml.scores', { type: GgufType.ARRAY, elemType: GgufType.FLOAT32, value: tok.scores });
  md.set('tokenizer.ggml.token_type', { type: GgufType.ARRAY, elemType: GgufType.INT32, value: tok.types });
  if (tok.merges) md.set('tokenizer.ggml.merges', { type: GgufType.ARRAY, elemType: GgufType.STRING, value: tok.merges });
  if (tok.bos !== null) md.set('tokenizer.ggml.bos_token_id', u32(tok.bos));
  if (tok.eos !== null) md.set('tokenizer.ggml.eos_token_id', u32(tok.eos));
  if (tok.unk !== null) md.set('tokenizer.ggml.unknown_token_id', u32(tok.unk));
}

/**
 * The tensors as llama.cpp's converter writes them: q/k rows in the architecture's RoPE pair order (permuted only
 * where the model's order differs), Gemma norms as `1 + w`, norms f32 and matrices in `dtype`.
 */
function ggufTensors(c: Readonly<LlamaConfig>, model: LlamaModel, arch: GgufArch, dtype: 'f32' | 'f16'): GgufTensorOut[] {
  const tensors: GgufTensorOut[] = [];
  const rope = ggufRopeStyle(arch);
  for (const [name, t] of weightsFromParams(c, model.params)) {
    let data = toF32(t);
    const qk = /self_attn\.([qk])_proj\.weight$/.exec(name);
    if (qk && c.ropeStyle !== rope) {
      const heads = qk[1] === 'q' ? c.numHeads : c.numKvHeads;
      data = rope === 'interleaved' ? unpermuteFromHalfRope(data, heads, c.headDim, c.hiddenSize) : permuteForHalfRope(data, heads, c.headDim, c.hiddenSize);
    }
    if (c.normOffset !== 0 && /norm\.weight$/.test(name)) data = data.map((w) => w + c.normOffset);
    // Norm vectors stay f32 (llama.cpp does the same); matrices take the requested dtype.
    const half = dtype === 'f16' && t.shape.length === 2;
    const bytes = half ? f32ToF16(data) : data;
    tensors.push({
      name: ggufTensorName(name, arch),
      shape: t.shape,
      type: half ? GgmlType.F16 : GgmlType.F32,
      data: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength),
    });
  }
  return tensors;
}
