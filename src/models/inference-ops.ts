/**
 * {@link DecoderOps} over plain arrays: the inference implementation of the decoder. Layers write their new K/V rows
 * into the cache and attend over everything cached; echo layers keep a V cache only. The residual stream is updated
 * in place and both norms of a layer share one scratch buffer (valid until the next norm), so a step allocates only
 * what the kernels produce.
 */
import type { Backend } from '../backend/backend.js';
import type { LlamaConfig } from './config.js';
import type { KVCache } from './kvcache.js';
import type { SlotCache } from './slot-cache.js';
import type { RopeTables } from './rope.js';
import type { LlamaParams } from './params.js';
import type { BiasKey, DecoderOps, MatrixKey } from './decoder.js';
import type { LayerAttention, Run } from './attention-kinds.js';
import { probsSlots } from './attention-kinds.js';
import type { LayerKey, NormKey } from './tensor-spec.js';
import { layerRope, layerTensor, normShape, outputBlocks, projectionBlocks, type ModelRopes, type RunBlock } from './layer-compute.js';
import { linear, linearRuns, type LinearRun } from '../nn/layers.js';
import { attention, gatherHeads, probsTimesV } from '../nn/attention.js';
import { requireF32, weightRowsF32, type Weight } from '../tensor/weight.js';
import { ShapeError } from '../errors.js';

/** Per-layer post-softmax attention probabilities, handed to a hook as soon as they are computed. */
export type AttentionProbsHook = (layer: number, probs: Float32Array /* (B, H, T, S) */, shape: { batch: number; tq: number; s: number }) => void;

export interface InferenceModel extends ModelRopes {
  readonly config: Readonly<LlamaConfig>;
  readonly params: LlamaParams;
  readonly backend: Backend;
  readonly rope: RopeTables;
}

/** Head-run blocks as `linearRuns` takes them (f32 weights: head-shared models are widened at load). */
function f32Runs(blocks: readonly RunBlock<Weight>[]): LinearRun[] {
  return blocks.map((b) => ({ ...b, w: requireF32(b.w, 'head-shared model'), bias: b.bias as Float32Array | undefined }));
}

export interface InferenceStep {
  batch: number;
  /** Tokens per sequence in this step. */
  t: number;
  /** Position of every token `(B·T)`. */
  pos: Int32Array;
  cache?: KVCache;
  /** Continuous batching: row b of this one-token step belongs to slot `slots.ids[b]` of `slots.cache` (own length). */
  slots?: { cache: SlotCache; ids: Int32Array };
  onAttentionProbs?: AttentionProbsHook;
  probsLayers?: ReadonlySet<number>;
  /**
   * Reuse anchors' probability buffers across the chunks of one long step (fresh pages cost more than the arithmetic
   * that fills them): anchor `l` uses buffer `slotOf.get(l)` (anchors alive at the same time never share one), and
   * the layers whose probabilities only go to `onAttentionProbs` (a hook that reads them during the call, as the
   * analysis does) share buffer `hookSlot`; each of at least `size` floats. The kernels write every element.
   */
  probsPool?: ProbsPool;
}

/** See {@link InferenceStep.probsPool}. */
export interface ProbsPool {
  buffers: Float32Array[];
  slotOf: ReadonlyMap<number, number>;
  hookSlot: number;
  size: number;
}

/** A pool for a model with these attention kinds: one buffer per group of anchors never alive together, one for hooks. */
export function newProbsPool(kinds: readonly LayerAttention[], size: number): ProbsPool {
  const { slotOf, count } = probsSlots(kinds);
  return { buffers: [], slotOf, hookSlot: count, size };
}

export class InferenceOps implements DecoderOps<Float32Array> {
  private readonly n: number;
  private scratch: Float32Array | null = null;

  constructor(private readonly m: InferenceModel, private readonly st: InferenceStep) {
    this.n = st.batch * st.t;
  }

  private w(l: number, key: LayerKey): Weight {
    return layerTensor<Weight>(this.m.config, this.m.params.layers, l, key, 'forward');
  }

  embed(ids: Int32Array): Float32Array {
    const c = this.m.config;
    const x = new Float32Array(ids.length * c.hiddenSize); // (N, dim)
    const table = this.m.params.embed;
    if (table instanceof Float32Array) {
      this.m.backend.embedding(table, ids, x, c.vocabSize, c.hiddenSize);
      return x;
    }
    for (let t = 0; t < ids.length; t++) {
      const id = ids[t];
      if (!(Number.isInteger(id) && id >= 0 && id < c.vocabSize)) throw new ShapeError('embedding', `token id ${id} at position ${t} is outside [0, ${c.vocabSize})`);
      x.set(weightRowsF32(table, c.hiddenSize, id, id + 1), t * c.hiddenSize);
    }
    return x;
  }

  /** Hidden-size norms share one scratch buffer (valid until the next norm); per-head q/k norms run in place. */
  norm(x: Float32Array, l: number, key: NormKey): Float32Array {
    const c = this.m.config;
    const { rows, dim } = normShape(c, key, this.n);
    const out = key === 'qNorm' || key === 'kNorm' ? x : (this.scratch ??= new Float32Array(this.n * c.hiddenSize));
    this.m.backend.rmsnorm(x, this.w(l, key) as Float32Array, out, rows, dim, c.rmsNormEps, c.normOffset);
    return out;
  }

  scale(x: Float32Array, alpha: number): Float32Array {
    this.m.backend.scale(x, alpha, x, x.length);
    return x;
  }

  linear(x: Float32Array, l: number, key: MatrixKey, bias: BiasKey | null, inDim: number, outDim: number): Float32Array {
    const b = bias ? this.m.params.layers[l][bias] : undefined;
    return linear(this.m.backend, x, this.w(l, key), b, this.n, inDim, outDim);
  }

  projectRuns(x: Float32Array, runs: readonly Run[], key: 'wq' | 'wk' | 'wv', bias: BiasKey | null, heads: number): Float32Array {
    const { hiddenSize: dim, headDim: D } = this.m.config;
    const blocks = projectionBlocks<Weight>(this.m.config, this.m.params.layers, runs, key, bias, 'forward');
    return linearRuns(this.m.backend, x, f32Runs(blocks), this.n, dim, heads * D);
  }

  outRuns(att: Float32Array, runs: readonly Run[]): Float32Array {
    const { hiddenSize: dim, numHeads: H, headDim: D } = this.m.config;
    return linearRuns(this.m.backend, att, f32Runs(outputBlocks<Weight>(this.m.config, this.m.params.layers, runs, 'forward')), this.n, H * D, dim);
  }

  rope(x: Float32Array, l: number, heads: number): Float32Array {
    const c = this.m.config;
    const t = layerRope(c, this.m, l);
    this.m.backend.rope(x, this.n, heads, c.headDim, this.st.pos, t.cos, t.sin, c.ropeStyle);
    return x;
  }

  private wantsHook(l: number): boolean {
    return this.st.onAttentionProbs !== undefined && (this.st.probsLayers?.has(l) ?? true);
  }

  attend(l: number, q: Float32Array, k: Float32Array, v: Float32Array, keepProbs: boolean): { out: Float32Array; probs: Float32Array | null } {
    if (this.st.slots) return this.attendSlots(l, q, k, v, keepProbs);
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = this.m.config;
    const { batch, t, cache } = this.st;
    const kv = cache ? cache.update(l, k, v, t) : { k, v, s: t, qPos0: 0, batchStride: undefined };
    const hook = this.wantsHook(l);
    const out = new Float32Array(this.n * H * D); // (B, T, H, D)
    const probs = keepProbs || hook ? this.probsBuffer(l, keepProbs, batch * H * t * kv.s) : undefined; // (B, H, T, S)
    attention(this.m.backend, {
      q, k: kv.k as Float32Array, v: kv.v, out, probs, batch, tq: t, s: kv.s, nHeads: H, nKvHeads: Hkv, headDim: D,
      qPos0: kv.qPos0, scale: this.m.config.attnScale, window: this.m.config.layerWindows[l], kvBatchStride: kv.batchStride,
    });
    if (hook && probs) this.st.onAttentionProbs!(l, probs, { batch, tq: t, s: kv.s });
    return { out, probs: keepProbs && probs ? probs : null };
  }

  private probsBuffer(l: number, kept: boolean, need: number): Float32Array {
    const pool = this.st.probsPool;
    const slot = kept ? pool?.slotOf.get(l) : pool?.hookSlot;
    if (!pool || slot === undefined) return new Float32Array(need);
    let buf = pool.buffers[slot];
    if (!buf || buf.length < need) pool.buffers[slot] = buf = new Float32Array(Math.max(need, pool.size));
    return buf.subarray(0, need);
  }

  echo(l: number, probs: Float32Array, v: Float32Array, heads: Int32Array | null): Float32Array {
    if (this.st.slots) return this.echoSlots(l, probs, v, heads);
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = this.m.config;
    const { batch, t, cache } = this.st;
    const kv = cache ? cache.update(l, null, v, t) : { v, s: t, batchStride: undefined };
    const out = new Float32Array(this.n * H * D); // (B, T, H, D)
    probsTimesV(this.m.backend, { probs, v: kv.v, out, batch, tq: t, s: kv.s, nHeads: H, nKvHeads: Hkv, headDim: D, kvBatchStride: kv.batchStride }, kv.s - t, heads);
    if (this.wantsHook(l)) this.st.onAttentionProbs!(l, heads ? gatherHeads(probs, heads, batch, t * kv.s) : probs, { batch, tq: t, s: kv.s });
    return out;
  }

  /** Append one row per slot to layer `l`'s slot cache: each slot's new length, ragged probability offsets, an output `(B, 1, H, D)`. */
  private appendSlots(l: number, k: Float32Array | null, v: Float32Array) {
    const { numHeads: H, headDim: D } = this.m.config;
    const { cache, ids } = this.st.slots!;
    if (this.wantsHook(l)) throw new ShapeError('decodeSlots', 'attention-probability hooks are not supported when decoding slots');
    const s = cache.append(l, k, v, ids);
    return { cache, ids, s, offs: raggedOffsets(s, H), out: new Float32Array(ids.length * H * D), stride: cache.slotStride };
  }

  /**
   * One token per slot, each attending over its own slot's length. Every row's probabilities `(H, 1, s_b)` are stored
   * one after another (ragged), so the echo layers of the same step read the same blocks.
   */
  private attendSlots(l: number, q: Float32Array, k: Float32Array, v: Float32Array, keepProbs: boolean): { out: Float32Array; probs: Float32Array | null } {
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = this.m.config;
    const { cache, ids, s, offs, out, stride } = this.appendSlots(l, k, v);
    const probs = keepProbs ? new Float32Array(offs[ids.length]) : undefined; // per row (H, 1, s_b), one after another
    for (let b = 0; b < ids.length; b++) {
      const base = ids[b] * stride;
      attention(this.m.backend, {
        q: q.subarray(b * H * D, (b + 1) * H * D), k: cache.k[l]!.subarray(base, base + stride), v: cache.v[l]!.subarray(base, base + stride),
        out: out.subarray(b * H * D, (b + 1) * H * D), probs: probs?.subarray(offs[b], offs[b + 1]), batch: 1, tq: 1, s: s[b],
        nHeads: H, nKvHeads: Hkv, headDim: D, qPos0: s[b] - 1, scale: this.m.config.attnScale, window: this.m.config.layerWindows[l], kvBatchStride: stride,
      });
    }
    return { out, probs: probs ?? null };
  }

  private echoSlots(l: number, probs: Float32Array, v: Float32Array, heads: Int32Array | null): Float32Array {
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = this.m.config;
    const { cache, ids, s, offs, out, stride } = this.appendSlots(l, null, v);
    for (let b = 0; b < ids.length; b++) {
      const base = ids[b] * stride;
      probsTimesV(this.m.backend, {
        probs: probs.subarray(offs[b], offs[b + 1]), v: cache.v[l]!.subarray(base, base + stride), out: out.subarray(b * H * D, (b + 1) * H * D),
        batch: 1, tq: 1, s: s[b], nHeads: H, nKvHeads: Hkv, headDim: D, kvBatchStride: stride,
      }, s[b] - 1, heads);
    }
    return out;
  }

  add(x: Float32Array, y: Float32Array): Float32Array {
    this.m.backend.add(x, y, x, x.length);
    return x;
  }

  gatedAct(gate: Float32Array, up: Float32Array): Float32Array {
    const be = this.m.backend;
    if (this.m.config.hiddenAct === 'silu') be.siluMul(gate, up, gate, gate.length);
    else be.geluTanhMul(gate, up, gate, gate.length);
    return gate;
  }

  keep(x: Float32Array): Float32Array {
    return x.slice();
  }
}

/** Start of each row's `(H, 1, s_b)` probability block, and the total at the end. */
function raggedOffsets(s: Int32Array, heads: number): Int32Array {
  const offs = new Int32Array(s.length + 1);
  for (let b = 0; b < s.length; b++) offs[b + 1] = offs[b] + heads * s[b];
  return offs;
}
