/**
 * The decoder model of every family echoatt runs (Llama 2/3, TinyLlama, SmolLM, Mistral, Qwen2, Qwen3, Gemma 3 text;
 * the family is data in its config) and every student echoatt makes of it:
 * one class, whose layers' attention kinds come from the config (`config.attention`), so a teacher, an EchoAtt
 * student, a head-wise weight-shared model and a mix of both are the same type with different data. Prefill over a
 * batch with a causal mask, incremental decode with a {@link KVCache} laid out per layer kind (echo layers keep V
 * only), and optional access to every layer's post-softmax attention probabilities.
 *
 * Parameter names are Hugging Face's (`model.layers.3.self_attn.q_proj.weight`), so loading and export are lookups.
 *
 * @example
 * ```ts
 * const { config, weights } = loadCheckpoint('../shared/models/stories260K/stories260K.bin');
 * const model = LlamaModel.fromWeights(config, weights);
 * const cache = model.newCache(1, 256);
 * const logits = model.forward(Int32Array.of(1), { cache }); // (1, vocab)
 * ```
 */
import type { Backend } from '../backend/backend.js';
import { getBackend } from '../backend/index.js';
import type { LlamaConfig } from './config.js';
import { KVCache, type LayerCacheSpec } from './kvcache.js';
import { SlotCache } from './slot-cache.js';
import { ropeTables, type RopeTables } from './rope.js';
import { linear } from '../nn/layers.js';
import type { StoredTensor } from '../tensor/tensor.js';
import { ShapeError } from '../errors.js';
import { runDecoder } from './decoder.js';
import { InferenceOps, newProbsPool, type AttentionProbsHook, type ProbsPool } from './inference-ops.js';
import { compileDecodeStep, type DecodeStep } from './program-ops.js';
import { echoLayers, kindCache, type LayerAttention } from './attention-kinds.js';
import { softcapLogits } from './layer-compute.js';
import { parameterCount, paramsFromWeights, type LlamaParams, type WeightMode } from './params.js';
import type { SharingPlan } from './sharing-plan.js';
import type { HeadMap } from './head-map.js';

export type { AttentionProbsHook };

export interface ForwardOptions {
  /** Number of sequences; `ids.length / batch` is the step length T. Default 1. */
  batch?: number;
  /** KV cache; the new tokens are appended at `cache.length` and attend to everything before. */
  cache?: KVCache;
  /** Compute logits for the last position of each sequence only: returns `(B, V)`. */
  lastOnly?: boolean;
  /** Receives each layer's post-softmax probabilities `(B, H, T, S)` (echo layers: the anchor's, as they read them). */
  onAttentionProbs?: AttentionProbsHook;
  /** Only these layers compute probabilities for the hook (default: all when a hook is given). */
  probsLayers?: ReadonlySet<number>;
  /**
   * Start at a layer from a given residual stream `(B·T, dim)` (updated in place: pass a copy) and the probabilities
   * of the earlier anchors that later layers echo (see `DecoderOptions.from`). `ids` still give B and T.
   */
  from?: { layer: number; x: Float32Array; probs: ReadonlyMap<number, Float32Array> };
  /** Receives a copy of each layer's input residual stream `(B·T, dim)`. */
  onLayerInput?: (layer: number, x: Float32Array) => void;
  /**
   * With a cache, a step longer than this runs through all layers in query chunks of this many tokens, so an anchor's
   * probabilities are `(B, H, chunk, S)`, never `(B, H, T, T)`: a student never needs more memory than its teacher.
   * Default {@link PREFILL_CHUNK}; 0 = one piece. (Not with hooks or `from`, which want the whole step.)
   */
  chunk?: number;
  /** @internal Probability buffers reused across calls (the chunks of one long step, the analysis' passes); see `InferenceStep`. */
  probsPool?: ProbsPool;
}

/** Default query-chunk length of a long step through the cache (see `ForwardOptions.chunk`). */
export const PREFILL_CHUNK = 256;
/**
 * Bytes an anchor's probabilities `(B, H, chunk, S)` may take in a chunked step: at long contexts the chunk shrinks
 * (to no fewer than 16 rows) so that the buffer stays below what a student saves by dropping q/k weights and K cache
 * (a 9/22 TinyLlama student saves ≈ 207 MB at 4096 positions in f32). At 64 MiB its 4096-token prefill ran in
 * 128-row chunks at 0.97× its teacher; 128 MiB keeps 256-row chunks there.
 */
export const PROBS_BUDGET_BYTES = 128 * 1024 * 1024;

/** RoPE positions computed when a model is made (more on demand, see `LlamaModel.ensurePositions`). */
const INITIAL_ROPE_POSITIONS = 2048;

export class LlamaModel {
  readonly config: Readonly<LlamaConfig>;
  readonly params: LlamaParams;
  readonly backend: Backend;
  /** RoPE tables for the positions used so far (grown on demand up to max_position_embeddings; see {@link ensurePositions}). */
  rope: RopeTables;
  /** RoPE of the sliding-window layers where the family gives them their own base (Gemma 3), else null. */
  ropeLocal: RopeTables | null;
  /**
   * One-token steps of one sequence through a cache run as a compiled step program: one backend call per token
   * instead of dozens per layer (same logits, bit for bit). Off: every step goes op by op (for comparisons).
   */
  useStepPrograms = true;
  /** The compiled decode step of each cache it has decoded through (a program is tied to its cache's buffers). */
  private readonly steps = new WeakMap<KVCache, DecodeStep>();

  constructor(config: Readonly<LlamaConfig>, params: LlamaParams, backend: Backend = getBackend()) {
    this.config = config;
    this.params = params;
    this.backend = backend;
    this.rope = ropeTables(config, 0);
    this.ropeLocal = null;
    this.ensurePositions(INITIAL_ROPE_POSITIONS);
  }

  /** The positions a sequence may reach: max_position_embeddings. */
  get maxPositions(): number {
    return Math.max(1, this.config.maxPositions);
  }

  /**
   * Make the RoPE tables cover positions `[0, n)` (at most max_position_embeddings), growing them by doubling: tables
   * cost what is used, not what a config allows (Gemma 3 allows 131072 positions; a hostile config 1e9). Programs
   * compiled earlier keep the smaller tables they were made with, which cover their cache.
   */
  ensurePositions(n: number): void {
    const want = Math.min(this.maxPositions, n);
    if (want <= this.rope.maxPos) return;
    const len = Math.min(this.maxPositions, Math.max(want, 2 * this.rope.maxPos));
    const c = this.config;
    this.rope = ropeTables(c, len);
    const local = c.ropeLocalTheta !== null && c.layerWindows.some((w) => w > 0);
    this.ropeLocal = local ? ropeTables({ headDim: c.headDim, ropeTheta: c.ropeLocalTheta!, ropeScaling: null }, len) : null;
  }

  /** Build from a name → tensor map (f16/bf16 widened to f32 unless `mode` is `'as-stored'`). Missing tensors throw one `E_CHECKPOINT` error listing them all. */
  static fromWeights(config: Readonly<LlamaConfig>, weights: ReadonlyMap<string, StoredTensor>, backend?: Backend, mode: WeightMode = 'f32'): LlamaModel {
    return new LlamaModel(config, paramsFromWeights(config, weights, mode), backend);
  }

  /** Every layer's attention kind. */
  get attention(): readonly LayerAttention[] {
    return this.config.attention;
  }

  /** The layer-wise sharing plan, or null for a model that echoes no layer. */
  get plan(): SharingPlan | null {
    return this.config.sharing.plan;
  }

  /** The head-wise weight-sharing map, or null. */
  get headMap(): HeadMap | null {
    return this.config.sharing.headMap;
  }

  /** Indices of the layers that reuse another layer's attention. */
  sharedLayers(): number[] {
    return echoLayers(this.config.attention);
  }

  /** A cache laid out per layer kind: echo layers keep V only, every other layer K and V. */
  newCache(batch: number, capacity: number): KVCache {
    const c = this.config;
    this.ensurePositions(capacity);
    return new KVCache(this.cacheLayout(), batch, Math.min(capacity, c.maxPositions), c.numKvHeads, c.headDim);
  }

  /** A cache of `slots` independent sequences for continuous batching, laid out per layer kind like {@link newCache}. */
  newSlotCache(slots: number, capacity: number): SlotCache {
    const c = this.config;
    this.ensurePositions(capacity);
    return new SlotCache(this.cacheLayout(), slots, Math.min(capacity, c.maxPositions), c.numKvHeads, c.headDim);
  }

  /** What each layer caches, as its kind says (echo layers V only, dropped layers nothing). */
  private cacheLayout(): LayerCacheSpec[] {
    return this.config.attention.map(kindCache);
  }

  /**
   * The compiled one-token step through `cache` (batch 1), made on first use and kept as long as the cache: what
   * `forward` runs for one token of one sequence. `run(token)` appends at `cache.length`; `profile` times each kernel.
   */
  decodeStep(cache: KVCache): DecodeStep {
    this.ensurePositions(cache.capacity);
    let step = this.steps.get(cache);
    if (!step) this.steps.set(cache, (step = compileDecodeStep(this, cache)));
    return step;
  }

  /**
   * One decode step of several sequences at once: token `ids[b]` is appended to slot `slots[b]` of `cache` at that
   * slot's own length. The linear layers run on all rows together (the weights are read once for the batch); each
   * row attends over its own slot. Returns logits `(B, V)` and advances every slot by one.
   */
  decodeSlots(ids: Int32Array, slots: Int32Array, cache: SlotCache): Float32Array {
    const B = ids.length;
    if (B === 0 || slots.length !== B) throw new ShapeError('LlamaModel.decodeSlots', `${B} tokens for ${slots.length} slots`);
    if (new Set(slots).size !== B) throw new ShapeError('LlamaModel.decodeSlots', 'a slot appears twice in one step');
    const pos = Int32Array.from(slots, (slot) => cache.lengths[slot]);
    for (let b = 0; b < B; b++) {
      if (pos[b] + 1 > this.maxPositions) throw new ShapeError('LlamaModel.decodeSlots', `slot ${slots[b]}: position ${pos[b]} is past max_position_embeddings ${this.maxPositions}`);
    }
    this.ensurePositions(Math.max(...pos) + 1);
    const view = B === 1 ? cache.view(slots[0]) : undefined;
    if (view && this.runMode(B, 1, { cache: view }) === 'step') {
      // One sequence: its slot's view through the compiled step (one backend call), as `forward` decodes alone.
      if (pos[0] + 1 > cache.capacity) throw new ShapeError('SlotCache.append', `slot ${slots[0]} is full (capacity ${cache.capacity})`);
      const logits = this.decodeStep(view).run(ids[0]).slice(); // (1, V)
      cache.advance(slots);
      return logits;
    }
    const ops = new InferenceOps(this, { batch: B, t: 1, pos, slots: { cache, ids: slots } });
    const { x } = runDecoder(this.config, ops, ids, {});
    cache.advance(slots);
    return this.head(x, B, 1, true);
  }

  /**
   * How a call runs — the one place that decides: `step` (one token of one sequence through a cache: the compiled
   * step program), `chunked` (a long step through a cache, in query chunks so no `(T, S)` probabilities are held), or
   * `ops` (op by op; everything with hooks or `from`, which want the whole step in one piece).
   */
  private runMode(batch: number, t: number, opts: ForwardOptions): 'step' | 'chunked' | 'ops' {
    if (!opts.cache || opts.onAttentionProbs || opts.from || opts.onLayerInput) return 'ops';
    if (t === 1 && batch === 1 && this.useStepPrograms) return 'step';
    const chunk = this.chunkLength(batch, t, opts);
    return chunk > 0 && t > chunk ? 'chunked' : 'ops';
  }

  /** Query rows per chunk of a long cached step: `opts.chunk`, or the default shrunk so an anchor's probabilities fit the budget. */
  private chunkLength(batch: number, t: number, opts: ForwardOptions): number {
    if (opts.chunk !== undefined) return opts.chunk;
    if (!opts.cache || echoLayers(this.config.attention).length === 0) return PREFILL_CHUNK;
    const perRow = 4 * batch * this.config.numHeads * (opts.cache.length + t); // bytes of one query row's probabilities
    return Math.min(PREFILL_CHUNK, Math.max(16, Math.floor(PROBS_BUDGET_BYTES / perRow / 16) * 16));
  }

  /**
   * Run the decoder over `ids` `(B, T)` (flattened). Returns logits `(B·T, V)`, or `(B, V)` with `lastOnly`.
   * With a cache, positions continue from `cache.length` and the cache is advanced by T.
   */
  forward(ids: Int32Array, opts: ForwardOptions = {}): Float32Array {
    const batch = opts.batch ?? 1;
    if (!(Number.isInteger(batch) && batch > 0) || ids.length % batch !== 0 || ids.length === 0) {
      throw new ShapeError('LlamaModel.forward', `${ids.length} ids cannot be split into ${batch} sequences`);
    }
    const t = ids.length / batch;
    const cache = opts.cache;
    const past = cache ? cache.length : 0;
    if (cache && cache.batch !== batch) throw new ShapeError('LlamaModel.forward', `cache batch ${cache.batch} != ${batch}`);
    if (past + t > this.maxPositions) {
      throw new ShapeError('LlamaModel.forward', `positions up to ${past + t} exceed max_position_embeddings ${this.maxPositions}`);
    }
    this.ensurePositions(past + t);
    switch (this.runMode(batch, t, opts)) {
      case 'chunked':
        return this.forwardChunked(ids, batch, t, this.chunkLength(batch, t, opts), opts);
      case 'step':
        if (past + 1 > cache!.capacity) throw new ShapeError('KVCache.write', `cache full: ${past} + 1 tokens exceed capacity ${cache!.capacity}`);
        return this.decodeStep(cache!).run(ids[0]).slice(); // (1, V)
      case 'ops':
        return this.forwardOps(ids, batch, t, opts);
    }
  }

  /** The decoder op by op over the whole step. */
  private forwardOps(ids: Int32Array, batch: number, t: number, opts: ForwardOptions): Float32Array {
    const past = opts.cache ? opts.cache.length : 0;
    const pos = new Int32Array(batch * t);
    for (let b = 0; b < batch; b++) for (let i = 0; i < t; i++) pos[b * t + i] = past + i;
    const ops = new InferenceOps(this, { batch, t, pos, cache: opts.cache, onAttentionProbs: opts.onAttentionProbs, probsLayers: opts.probsLayers, probsPool: opts.probsPool });
    if (opts.from && opts.from.x.length !== batch * t * this.config.hiddenSize) {
      throw new ShapeError('LlamaModel.forward', `from.x has ${opts.from.x.length} elements, expected ${batch * t * this.config.hiddenSize}`);
    }
    const { x } = runDecoder(this.config, ops, ids, { from: opts.from, onLayerInput: opts.onLayerInput });
    opts.cache?.advance(t);
    return this.head(x, batch, t, opts.lastOnly ?? false);
  }

  /** A long step through the cache, `chunk` query tokens at a time; logits as one call would return them. */
  private forwardChunked(ids: Int32Array, batch: number, t: number, chunk: number, opts: ForwardOptions): Float32Array {
    const V = this.config.vocabSize;
    const lastOnly = opts.lastOnly ?? false;
    const out = lastOnly ? null : new Float32Array(batch * t * V); // (B, T, V)
    let last: Float32Array = new Float32Array(0);
    // One buffer per group of anchors that are never alive together, sized for the last (widest) chunk, reused by every chunk.
    const probsPool = newProbsPool(this.config.attention, batch * this.config.numHeads * chunk * (opts.cache!.length + t));
    for (let t0 = 0; t0 < t; t0 += chunk) {
      const tc = Math.min(chunk, t - t0);
      const part = new Int32Array(batch * tc); // (B, tc)
      for (let b = 0; b < batch; b++) part.set(ids.subarray(b * t + t0, b * t + t0 + tc), b * tc);
      const logits = this.forward(part, { batch, cache: opts.cache, lastOnly, chunk: 0, probsPool }); // (B, V) or (B·tc, V)
      if (out) for (let b = 0; b < batch; b++) out.set(logits.subarray(b * tc * V, (b + 1) * tc * V), (b * t + t0) * V);
      else last = logits;
    }
    return out ?? last;
  }

  /** Final norm and LM head; `x` `(B·T, dim)`. */
  private head(x: Float32Array, batch: number, t: number, lastOnly: boolean): Float32Array {
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
    this.backend.rmsnorm(h, this.params.norm, hn, rows, dim, c.rmsNormEps, c.normOffset);
    return softcapLogits(linear(this.backend, hn, this.params.lmHead, undefined, rows, dim, c.vocabSize), c.finalLogitSoftcap); // (rows, V)
  }

  /** Number of stored parameters (tied embeddings counted once; head-shared weights once). */
  parameterCount(): number {
    return parameterCount(this.config, this.params);
  }
}
