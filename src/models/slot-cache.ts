/**
 * A KV cache of independent sequences ("slots") for continuous batching: sequences of different lengths decode
 * together in one step, join when a slot is free and leave between steps. Per layer the storage is
 * `(slots, capacity, Hkv, D)`, laid out by the model's attention kinds exactly as {@link KVCache} (echo layers keep V
 * only), so a student fits more sequences in the same bytes. Each slot has its own length; a slot's region is also
 * usable as a batch-1 {@link KVCache} (`view`), which is how a prompt is prefilled into it.
 *
 * @example
 * ```ts
 * const cache = model.newSlotCache(8, 256);
 * const a = cache.acquire()!;
 * model.forward(promptIds, { cache: cache.view(a), lastOnly: true }); // prefill
 * cache.commit(a, promptIds.length);
 * const logits = model.decodeSlots(Int32Array.of(nextToken), Int32Array.of(a), cache); // (1, V)
 * cache.release(a);
 * ```
 */
import { ShapeError } from '../errors.js';
import { KVCache, type LayerCacheSpec } from './kvcache.js';

export class SlotCache {
  /** Per layer `(slots, capacity, Hkv, D)`, or null when the layer keeps no keys / values. */
  readonly k: (Float32Array | null)[];
  readonly v: (Float32Array | null)[];
  /** Positions stored per slot. */
  readonly lengths: Int32Array;
  private readonly views: (KVCache | undefined)[] = [];
  private readonly inUse: Uint8Array;

  constructor(
    private readonly layers: readonly LayerCacheSpec[], readonly slots: number, readonly capacity: number,
    readonly nKvHeads: number, readonly headDim: number,
  ) {
    if (!(Number.isInteger(slots) && slots > 0)) throw new ShapeError('SlotCache', `slots must be a positive integer, got ${slots}`);
    if (!(Number.isInteger(capacity) && capacity > 0)) throw new ShapeError('SlotCache', `capacity must be a positive integer, got ${capacity}`);
    const n = slots * capacity * nKvHeads * headDim;
    this.k = layers.map((l) => (l.keys ? new Float32Array(n) : null));
    this.v = layers.map((l) => (l.values ? new Float32Array(n) : null));
    this.lengths = new Int32Array(slots);
    this.inUse = new Uint8Array(slots);
  }

  /** Elements of one slot in one layer's buffer. */
  get slotStride(): number {
    return this.capacity * this.nKvHeads * this.headDim;
  }

  /** Bytes one cached token costs (all layers) — what decides how many sequences fit in a memory budget. */
  bytesPerToken(): number {
    const row = this.nKvHeads * this.headDim * 4;
    return this.layers.reduce((a, l) => a + (l.keys ? row : 0) + (l.values ? row : 0), 0);
  }

  /** Bytes allocated. */
  bytes(): number {
    return this.bytesPerToken() * this.slots * this.capacity;
  }

  /** Slots now free. */
  get free(): number {
    return this.slots - this.inUse.reduce((a, x) => a + x, 0);
  }

  /** Take a free slot (its length reset to 0), or null when all are in use. */
  acquire(): number | null {
    const s = this.inUse.indexOf(0);
    if (s < 0) return null;
    this.inUse[s] = 1;
    this.lengths[s] = 0;
    return s;
  }

  release(slot: number): void {
    this.check(slot);
    this.inUse[slot] = 0;
    this.lengths[slot] = 0;
  }

  /**
   * The slot's region as a batch-1 {@link KVCache} starting at the slot's length (for prefill through `forward`, and
   * single-sequence decode steps). One view object per slot, kept: a model's compiled decode step is tied to it.
   */
  view(slot: number): KVCache {
    this.check(slot);
    const stride = this.slotStride;
    const part = (a: Float32Array | null) => (a ? a.subarray(slot * stride, (slot + 1) * stride) : null);
    const c = (this.views[slot] ??= new KVCache(this.layers, 1, this.capacity, this.nKvHeads, this.headDim, { k: this.k.map(part), v: this.v.map(part) }));
    c.length = this.lengths[slot];
    return c;
  }

  /** Record `t` more positions written into the slot (after a prefill through its view). */
  commit(slot: number, t: number): void {
    this.check(slot);
    if (this.lengths[slot] + t > this.capacity) throw new ShapeError('SlotCache', `slot ${slot}: ${this.lengths[slot]} + ${t} positions exceed capacity ${this.capacity}`);
    this.lengths[slot] += t;
  }

  /**
   * Write one new row of keys (null for a V-only layer) and values for each of `slots` at its current length, and
   * return per slot the visible length `s` (the new row included). Lengths advance in {@link advance}.
   */
  append(layer: number, k: Float32Array | null, v: Float32Array, slots: Int32Array): Int32Array {
    const row = this.nKvHeads * this.headDim;
    const kc = this.k[layer];
    const vc = this.v[layer];
    if (!vc || (k && !kc)) throw new ShapeError('SlotCache.append', `layer ${layer} has no ${vc ? 'K' : 'V'} cache`);
    const s = new Int32Array(slots.length);
    for (let b = 0; b < slots.length; b++) {
      const slot = slots[b];
      const len = this.lengths[slot];
      if (len + 1 > this.capacity) throw new ShapeError('SlotCache.append', `slot ${slot} is full (capacity ${this.capacity})`);
      const at = slot * this.slotStride + len * row;
      if (k && kc) kc.set(k.subarray(b * row, (b + 1) * row), at);
      vc.set(v.subarray(b * row, (b + 1) * row), at);
      s[b] = len + 1;
    }
    return s;
  }

  /** Advance each of `slots` by one position (after every layer of a decode step is written). */
  advance(slots: Int32Array): void {
    for (const slot of slots) this.lengths[slot] += 1;
  }

  private check(slot: number): void {
    if (!(Number.isInteger(slot) && slot >= 0 && slot < this.slots)) throw new ShapeError('SlotCache', `slot ${slot} is not in [0, ${this.slots})`);
  }
}
