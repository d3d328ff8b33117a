/**
 * llama2.c checkpoints (version 0, fp32): a 7×int32 header, then all weights as f32 in a fixed order.
 * Weights are returned under Hugging Face names in (out, in) layout, keeping llama2.c's interleaved-pair
 * RoPE order for q/k rows (the config says `ropeStyle: 'interleaved'`).
 */
import fs from 'node:fs';
import { fileSize, openForRead, readExact } from './fsutil.js';
import type { TensorData } from './safetensors.js';
import { FormatError, UnsupportedError } from '../errors.js';

/** Magic of llama2.c's later export versions (v1 fp32, v2 int8), which this reader does not handle. */
const MAGIC_AK42 = 0x616b3432;
const HEADER_BYTES = 28;
/** No real model comes near this; it keeps size arithmetic far from 2^53 for a garbage header. */
const MAX_DIM = 1 << 20;

/** The 7 int32 of a llama2.c (version 0) checkpoint header. `vocabSize < 0` means an untied classifier follows. */
export interface Llama2cHeader {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocabSize: number;
  seqLen: number;
}

export interface Llama2cCheckpoint {
  header: Llama2cHeader;
  /** Every tensor of the file under its Hugging Face name, (out, in) layout, f32 (views of one read buffer per array). */
  weights: Map<string, TensorData>;
}

function parseHeader(file: string, b: Uint8Array): Llama2cHeader {
  const v = new DataView(b.buffer, b.byteOffset, HEADER_BYTES);
  const h: Llama2cHeader = {
    dim: v.getInt32(0, true), hiddenDim: v.getInt32(4, true), nLayers: v.getInt32(8, true), nHeads: v.getInt32(12, true),
    nKvHeads: v.getInt32(16, true), vocabSize: v.getInt32(20, true), seqLen: v.getInt32(24, true),
  };
  if (h.dim === MAGIC_AK42) throw new UnsupportedError(file, 'llama2.c export version', v.getInt32(4, true), 'only the legacy version-0 fp32 layout is read');
  const bad = (field: string, why: string): never => {
    throw new FormatError(file, `llama2.c header field ${field} = ${(h as unknown as Record<string, number>)[field]} ${why}`);
  };
  for (const k of ['dim', 'hiddenDim', 'nLayers', 'nHeads', 'nKvHeads', 'seqLen'] as const) {
    if (h[k] <= 0 || h[k] > MAX_DIM) bad(k, `is out of range 1..${MAX_DIM}`);
  }
  if (h.vocabSize === 0 || Math.abs(h.vocabSize) > MAX_DIM) bad('vocabSize', `is out of range (nonzero, |v| <= ${MAX_DIM})`);
  if (h.dim % h.nHeads !== 0) bad('dim', `is not divisible by n_heads ${h.nHeads}`);
  if (h.nKvHeads > h.nHeads || h.nHeads % h.nKvHeads !== 0) bad('nKvHeads', `does not divide n_heads ${h.nHeads}`);
  if ((h.dim / h.nHeads) % 2 !== 0) bad('dim', `gives odd head size ${h.dim / h.nHeads}`);
  return h;
}

/** The f32 arrays of the file in order, with their element counts. */
function layout(h: Llama2cHeader): { name: string; count: number }[] {
  const head = h.dim / h.nHeads;
  const kv = h.nKvHeads * head;
  const V = Math.abs(h.vocabSize);
  const L = h.nLayers;
  const out = [
    { name: 'token_embedding', count: V * h.dim },
    { name: 'rms_att', count: L * h.dim },
    { name: 'wq', count: L * h.dim * h.dim },
    { name: 'wk', count: L * kv * h.dim },
    { name: 'wv', count: L * kv * h.dim },
    { name: 'wo', count: L * h.dim * h.dim },
    { name: 'rms_ffn', count: L * h.dim },
    { name: 'w1', count: L * h.hiddenDim * h.dim },
    { name: 'w2', count: L * h.dim * h.hiddenDim },
    { name: 'w3', count: L * h.hiddenDim * h.dim },
    { name: 'rms_final', count: h.dim },
    { name: 'freq_cis_real', count: (h.seqLen * head) / 2 },
    { name: 'freq_cis_imag', count: (h.seqLen * head) / 2 },
  ];
  if (h.vocabSize < 0) out.push({ name: 'wcls', count: V * h.dim });
  return out;
}

/**
 * Read a llama2.c checkpoint. The file size must match the header exactly.
 *
 * @example
 * const { header, weights } = loadLlama2c('../shared/models/stories260K/stories260K.bin');
 * weights.get('model.layers.0.self_attn.k_proj.weight')!.shape; // [32, 64]
 */
export function loadLlama2c(file: string): Llama2cCheckpoint {
  const fd = openForRead(file);
  try {
    const size = fileSize(fd, file);
    if (size < HEADER_BYTES) throw new FormatError(file, `file is ${size} bytes, too short for the ${HEADER_BYTES}-byte llama2.c header`);
    const hb = new Uint8Array(HEADER_BYTES);
    readExact(fd, file, hb, 0, 'header');
    const h = parseHeader(file, hb);
    const arrays = layout(h);
    const expected = HEADER_BYTES + 4 * arrays.reduce((s, a) => s + a.count, 0);
    if (size !== expected) {
      throw new FormatError(file, `size mismatch: header implies ${expected} bytes, file has ${size} (${size < expected ? 'truncated' : 'trailing data'})`);
    }
    const raw = new Map<string, Float32Array>();
    let off = HEADER_BYTES;
    for (const a of arrays) {
      if (a.name.startsWith('freq_cis')) {
        off += 4 * a.count; // legacy RoPE tables: recomputed from the config, never read
        continue;
      }
      const data = new Float32Array(a.count);
      readExact(fd, file, new Uint8Array(data.buffer), off, a.name);
      raw.set(a.name, data);
      off += 4 * a.count;
    }
    return { header: h, weights: toHfNames(h, raw) };
  } finally {
    fs.closeSync(fd);
  }
}

function toHfNames(h: Llama2cHeader, raw: Map<string, Float32Array>): Map<string, TensorData> {
  const head = h.dim / h.nHeads;
  const kv = h.nKvHeads * head;
  const V = Math.abs(h.vocabSize);
  const w = new Map<string, TensorData>();
  const put = (name: string, shape: number[], data: Float32Array): void => {
    w.set(name, { dtype: 'f32', shape, data });
  };
  /** Layer `i` of a stacked (L, ...) array, as a view sharing memory. */
  const layer = (key: string, i: number, n: number): Float32Array => raw.get(key)!.subarray(i * n, (i + 1) * n);
  put('model.embed_tokens.weight', [V, h.dim], raw.get('token_embedding')!);
  for (let i = 0; i < h.nLayers; i++) {
    const p = `model.layers.${i}.`;
    put(`${p}input_layernorm.weight`, [h.dim], layer('rms_att', i, h.dim));
    put(`${p}self_attn.q_proj.weight`, [h.dim, h.dim], layer('wq', i, h.dim * h.dim));
    put(`${p}self_attn.k_proj.weight`, [kv, h.dim], layer('wk', i, kv * h.dim));
    put(`${p}self_attn.v_proj.weight`, [kv, h.dim], layer('wv', i, kv * h.dim));
    put(`${p}self_attn.o_proj.weight`, [h.dim, h.dim], layer('wo', i, h.dim * h.dim));
    put(`${p}post_attention_layernorm.weight`, [h.dim], layer('rms_ffn', i, h.dim));
    put(`${p}mlp.gate_proj.weight`, [h.hiddenDim, h.dim], layer('w1', i, h.hiddenDim * h.dim));
    put(`${p}mlp.down_proj.weight`, [h.dim, h.hiddenDim], layer('w2', i, h.dim * h.hiddenDim));
    put(`${p}mlp.up_proj.weight`, [h.hiddenDim, h.dim], layer('w3', i, h.hiddenDim * h.dim));
  }
  put('model.norm.weight', [h.dim], raw.get('rms_final')!);
  if (h.vocabSize < 0) put('lm_head.weight', [V, h.dim], raw.get('wcls')!);
  return w;
}

type Rows = Float32Array | Uint16Array;

function permuteRows<T extends Rows>(w: T, nHeads: number, headDim: number, dimIn: number, toHalf: boolean): T {
  if (headDim % 2 !== 0 || w.length !== nHeads * headDim * dimIn) {
    throw new RangeError(`permute: ${w.length} elements do not form (${nHeads}·${headDim}, ${dimIn}) with even head_dim`);
  }
  const out = new (w.constructor as new (n: number) => T)(w.length);
  const half = headDim / 2;
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < half; i++) {
      for (let p = 0; p < 2; p++) {
        const inter = h * headDim + 2 * i + p; // llama2.c / Meta: pair i is rows (2i, 2i+1)
        const rot = h * headDim + p * half + i; // HF: pair i is rows (i, i + half)
        const [src, dst] = toHalf ? [inter, rot] : [rot, inter];
        out.set(w.subarray(src * dimIn, (src + 1) * dimIn), dst * dimIn);
      }
    }
  }
  return out;
}

/**
 * Reorder q/k projection rows from interleaved-pair RoPE order to HF rotate-half order — the
 * `view(n_heads, head_dim/2, 2, dim).transpose(1, 2)` permute of HF's convert_llama_weights_to_hf.
 * Works on f32 values or raw f16/bf16 bits; pass `dimIn = 1` for a bias vector. Returns a new array.
 *
 * @example
 * const q = permuteForHalfRope(wq, cfg.numHeads, cfg.headDim, cfg.hiddenSize);
 */
export function permuteForHalfRope<T extends Rows>(w: T, nHeads: number, headDim: number, dimIn: number): T {
  return permuteRows(w, nHeads, headDim, dimIn, true);
}

/** Inverse of {@link permuteForHalfRope}: rotate-half order back to interleaved pairs. */
export function unpermuteFromHalfRope<T extends Rows>(w: T, nHeads: number, headDim: number, dimIn: number): T {
  return permuteRows(w, nHeads, headDim, dimIn, false);
}
