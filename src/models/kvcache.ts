/**
 * Key/value cache for incremental decoding. Per layer, keys and values are stored token-major
 * `(B, capacity, Hkv, D)` so a new token's projection row is copied in without a transpose and attention reads the
 * cache with `kvBatchStride = capacity · Hkv · D`. A layer may keep V only (shared-attention layers need no K),
 * or nothing at all; `bytes()` counts what is really allocated.
 */
import { ShapeError } from '../errors.js';

export interface LayerCacheSpec {
  keys: boolean;
  values: boolean;
}

/** What {@link KVCache.update} returns: a layer's visible keys/values after appending this step's rows. */
export interface CachedKV {
  k: Float32Array | null; // (B, capacity, Hkv, D)
  v: Float32Array; // (B, capacity, Hkv, D)
  s: number;
  qPos0: number;
  batchStride: number;
}

export class KVCache {
  readonly batch: number;
  readonly capacity: number;
  readonly nKvHeads: number;
  readonly headDim: number;
  /** Per layer: `(B, capacity, Hkv, D)` or null when the layer keeps no keys. */
  readonly k: (Float32Array | null)[];
  readonly v: (Float32Array | null)[];
  /** Number of positions already stored (the same for every batch entry). */
  length = 0;

  /**
   * `buffers`: use these per-layer arrays (each at least `batch · capacity · Hkv · D` long) instead of allocating, e.g.
   * one slot's region of a {@link SlotCache}.
   */
  constructor(
    layers: readonly LayerCacheSpec[], batch: number, capacity: number, nKvHeads: number, headDim: number,
    buffers?: { k: readonly (Float32Array | null)[]; v: readonly (Float32Array | null)[] },
  ) {
    if (!(Number.isInteger(capacity) && capacity > 0)) throw new ShapeError('KVCache', `capacity must be a positive integer, got ${capacity}`);
    if (!(Number.isInteger(batch) && batch > 0)) throw new ShapeError('KVCache', `batch must be a positive integer, got ${batch}`);
    this.batch = batch;
    this.capacity = capacity;
    this.nKvHeads = nKvHeads;
    this.headDim = headDim;
    const n = batch * capacity * nKvHeads * headDim;
    const take = (l: number, want: boolean, given: readonly (Float32Array | null)[] | undefined): Float32Array | null => {
      if (!want) return null;
      if (!given) return new Float32Array(n);
      const a = given[l];
      if (!a || a.length < n) throw new ShapeError('KVCache', `layer ${l}: given buffer of ${a?.length ?? 0} elements, need ${n}`);
      return a;
    };
    this.k = layers.map((l, i) => take(i, l.keys, buffers?.k));
    this.v = layers.map((l, i) => take(i, l.values, buffers?.v));
  }

  /** Elements between batch entries of one layer's buffer. */
  get batchStride(): number {
    return this.capacity * this.nKvHeads * this.headDim;
  }

  /** Bytes actually allocated for keys and values across all layers. */
  bytes(): number {
    let total = 0;
    for (const a of this.k) total += a ? a.byteLength : 0;
    for (const a of this.v) total += a ? a.byteLength : 0;
    return total;
  }

  /** Bytes one more cached token costs (all layers, one batch entry). */
  bytesPerToken(): number {
    const row = this.nKvHeads * this.headDim * 4;
    return (this.k.filter(Boolean).length + this.v.filter(Boolean).length) * row;
  }

  /**
   * Copy `t` new rows `(B, t, Hkv·D)` for one layer into positions `length .. length+t-1` (does not advance
   * `length`; call {@link advance} once all layers are written).
   */
  write(buf: Float32Array, src: Float32Array, t: number): void {
    const row = this.nKvHeads * this.headDim;
    if (this.length + t > this.capacity) {
      throw new ShapeError('KVCache.write', `cache full: ${this.length} + ${t} tokens exceed capacity ${this.capacity}`);
    }
    for (let b = 0; b < this.batch; b++) {
      buf.set(src.subarray(b * t * row, (b + 1) * t * row), b * this.batchStride + this.length * row);
    }
  }

  /**
   * Append layer `layer`'s `t` new rows of keys (null for a layer that keeps none) and values `(B, t, Hkv·D)`, and
   * return everything the layer's attention may see: the cached buffers, `s = length + t` visible positions, the
   * query offset and the batch stride. The cache updates itself; call {@link advance} once all layers are written.
   */
  update(layer: number, k: Float32Array | null, v: Float32Array, t: number): CachedKV {
    const kc = this.k[layer];
    const vc = this.v[layer];
    if (!vc || (k && !kc)) throw new ShapeError('KVCache.update', `layer ${layer} has no ${vc ? 'K' : 'V'} cache`);
    if (k && kc) this.write(kc, k, t);
    this.write(vc, v, t);
    return { k: k ? kc : null, v: vc, s: this.length + t, qPos0: this.length, batchStride: this.batchStride };
  }

  advance(t: number): void {
    this.length += t;
  }

  reset(): void {
    this.length = 0;
  }
}
