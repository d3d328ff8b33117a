/**
 * Streaming layer-to-layer attention similarity.
 *
 * For every pair of layers `(i, j)` and every query head `h` (with grouped-query attention the statistics are per
 * QUERY head: query heads of one KV group share keys but have their own probabilities), over the causal
 * probability matrices `P_i^h, P_j^h` `(T × T)` of one sequence:
 *
 * - **cosine**: `⟨P_i^h, P_j^h⟩ / (‖P_i^h‖ ‖P_j^h‖)` of the matrices flattened over their causal (lower-triangle,
 *   diagonal included) entries, the measure of EchoAtt and Shared Attention. Masked entries are 0 in both and would
 *   not change the value.
 * - **Jensen–Shannon divergence** of corresponding rows, averaged over the `T` query rows, natural log (so it lies in
 *   `[0, ln 2]`): `JS(p, q) = ½ KL(p‖m) + ½ KL(q‖m)`, `m = (p + q)/2`, with `0 · log 0 = 0`. It is computed as
 *   `H(m) − (H(p) + H(q))/2` with each layer's entropy computed once, so a pair costs one `log` per entry; identical
 *   maps give exactly 0 and the tiny negative values that rounding could produce are clamped to 0.
 * - **head-averaged** values (the `L × L` matrices that drive plans) are the mean over heads of the per-head values.
 * - **head pairs**: the cosine between head `a` of layer `i` and head `b` of layer `j` for all pairs, an
 *   `(L·H) × (L·H)` matrix indexed `l·H + h` (for head-wise sharing); from the Gram matrices `compareProbs` returns.
 *
 * The per-entry loops are backend kernels: `packProbs` (a layer's maps to their causal triangles, with Σ p² and the
 * entropy per head) and `compareProbs` (per pair: Σ p·q, H(m) and the head × head Gram matrix in one pass). The
 * native ones run a vectorised log (AVX-512 / AVX2) and sum f32 chunks into float64 in a fixed order; they match the
 * reference backend (float64 `Math.log`, as this file computed before) to about 1e-7 relative (test/kernels.test.ts).
 *
 * Accumulation is per sequence: each sequence yields one scalar per statistic, and only running means and variances
 * over sequences (Welford) are kept, so the report gives the mean and the spread across sequences.
 *
 * ## Memory bound
 * Comparing layer `i` with a later layer `j` needs `P_i` while `P_j` is computed. The accumulator keeps a BLOCK of
 * consecutive layers' maps of the current sequence, packed to their causal triangle (`H · T(T+1)/2` f32 per layer),
 * and compares every later layer against the block as its probabilities stream out of the forward pass. If all
 * layers fit in `maxMapBytes` (default 512 MiB) one forward pass per sequence suffices; otherwise the layers are split
 * into blocks and each sequence runs one forward pass per block (the pass for a block asks the model for
 * probabilities of that block and later layers only). Peak memory for maps is therefore
 *
 *     (layersPerBlock + 1) · H · T(T+1)/2 · 4 bytes   (+ the model's own transient H·T² probability buffer)
 *
 * independent of the number of sequences, and never all layers of a long run. `memory.peakHeldBytes` reports what
 * was actually held. Buffers a pass is done with are kept (within that bound) for the next pass or sequence.
 */
import type { Backend } from '../backend/backend.js';
import { getBackend } from '../backend/index.js';
import type { AttentionProbsHook, ForwardOptions } from '../models/llama.js';
import type { LayerAttention } from '../models/attention-kinds.js';
import { newProbsPool } from '../models/inference-ops.js';
import { ShapeError, OptionError } from '../errors.js';

/** Mean and standard deviation across sequences of a square matrix statistic (row-major `n × n`). */
export interface MatrixStat {
  /** Matrix side. */
  n: number;
  /** `n × n` means, row-major. */
  mean: Float64Array;
  /** `n × n` sample standard deviations across sequences (0 with one sequence). */
  std: Float64Array;
}

export interface SimilarityMemory {
  /** Bytes of one layer's packed maps: `H · T(T+1)/2 · 4`. */
  bytesPerLayer: number;
  layersPerBlock: number;
  /** Forward passes per sequence. */
  passes: number;
  /** The documented bound `(layersPerBlock + 1) · bytesPerLayer`. */
  boundBytes: number;
  /** Largest number of map bytes held at once during the run. */
  peakHeldBytes: number;
}

export interface SimilarityStats {
  numLayers: number;
  numHeads: number;
  seqLen: number;
  sequences: number;
  /** Head-averaged cosine, `L × L`. */
  cosine: MatrixStat;
  /** Head-averaged mean row Jensen–Shannon divergence (nats), `L × L`. */
  js: MatrixStat;
  /** `[h]`: cosine of head h of layer i with head h of layer j, `L × L`. */
  cosinePerHead: MatrixStat[];
  /** `[h]`: JS divergence, `L × L`. */
  jsPerHead: MatrixStat[];
  /** Cosine between any two heads of any two layers, `(L·H) × (L·H)`, index `l·H + h`; absent if disabled. */
  headPairs?: MatrixStat;
  memory: SimilarityMemory;
}

/** Running mean / variance of a vector of values, one update per sequence (Welford). */
export class RunningStat {
  count = 0;
  readonly mean: Float64Array;
  private readonly m2: Float64Array;
  constructor(readonly size: number) {
    this.mean = new Float64Array(size);
    this.m2 = new Float64Array(size);
  }
  add(x: ArrayLike<number>): void {
    this.count++;
    const n = this.count;
    for (let i = 0; i < this.size; i++) {
      const d = x[i] - this.mean[i];
      this.mean[i] += d / n;
      this.m2[i] += d * (x[i] - this.mean[i]);
    }
  }
  std(): Float64Array {
    const out = new Float64Array(this.size);
    if (this.count < 2) return out;
    for (let i = 0; i < this.size; i++) out[i] = Math.sqrt(Math.max(0, this.m2[i] / (this.count - 1)));
    return out;
  }
}

export interface SimilarityOptions {
  /** Budget for held attention maps, bytes (default 512 MiB); sets how many layers one forward pass keeps. */
  maxMapBytes?: number;
  /** Accumulate the `(L·H) × (L·H)` head-pair cosine (default true). */
  headPairs?: boolean;
  /** Kernels for the head-pair GEMM (default: `getBackend()`). */
  backend?: Backend;
}

/** Something with LlamaModel's forward signature (a teacher or a student). */
export interface ForwardModel {
  forward(ids: Int32Array, opts?: ForwardOptions): Float32Array;
  /** Its layers' attention kinds (LlamaModel has them): anchors then keep their own reused buffers. */
  readonly config?: { readonly attention: readonly LayerAttention[] };
}

export const DEFAULT_MAX_MAP_BYTES = 512 * 1024 * 1024;

/** One layer's packed maps with per-head squared norms and entropy totals. */
interface PackedLayer {
  data: Float32Array; // (H, K), K = T(T+1)/2
  stats: Float64Array; // (2H): [h] Σ p², [H + h] Σ over rows and columns of −p log p
}

/**
 * Streaming similarity accumulator for a fixed model shape and sequence length.
 *
 * @example
 * ```ts
 * const acc = new SimilarityAccumulator(cfg.numLayers, cfg.numHeads, 256);
 * for (const ids of sequences) acc.addSequence(model, ids);
 * const stats = acc.result();
 * ```
 */
export class SimilarityAccumulator {
  readonly numLayers: number;
  readonly numHeads: number;
  readonly seqLen: number;
  /** Layer blocks `[lo, hi)`; one forward pass per block and sequence. */
  readonly blocks: readonly (readonly [number, number])[];
  readonly bytesPerLayer: number;
  private readonly K: number;
  private readonly backend: Backend;
  private readonly headPairsOn: boolean;
  private readonly pairCos: RunningStat; // (L, L, H) per-head cosine
  private readonly pairJs: RunningStat;
  private readonly avgCos: RunningStat; // (L, L)
  private readonly avgJs: RunningStat;
  private readonly heads?: RunningStat; // (LH, LH)
  // per-sequence scratch
  private seqCos: Float64Array;
  private seqJs: Float64Array;
  private seqHeads?: Float64Array;
  private readonly gram: Float64Array;
  private readonly pairStats: Float64Array;
  /** Packed buffers of finished passes, reused by the next ones (a fresh 16 MB array per layer costs its zeroing). */
  private readonly spare: Float32Array[] = [];
  private held = 0;
  private peakHeld = 0;

  constructor(numLayers: number, numHeads: number, seqLen: number, opts: SimilarityOptions = {}) {
    const L = numLayers;
    const H = numHeads;
    this.numLayers = L;
    this.numHeads = H;
    this.seqLen = seqLen;
    this.K = (seqLen * (seqLen + 1)) / 2;
    this.bytesPerLayer = H * this.K * 4;
    const budget = opts.maxMapBytes ?? DEFAULT_MAX_MAP_BYTES;
    if (!(budget > 0)) throw new OptionError('maxMapBytes', `must be positive, got ${budget}`);
    const per = Math.max(1, Math.min(L, Math.floor(budget / this.bytesPerLayer)));
    const blocks: [number, number][] = [];
    for (let lo = 0; lo < L; lo += per) blocks.push([lo, Math.min(L, lo + per)]);
    this.blocks = blocks;
    this.backend = opts.backend ?? getBackend();
    this.headPairsOn = opts.headPairs ?? true;
    this.pairCos = new RunningStat(L * L * H);
    this.pairJs = new RunningStat(L * L * H);
    this.avgCos = new RunningStat(L * L);
    this.avgJs = new RunningStat(L * L);
    this.seqCos = new Float64Array(L * L * H);
    this.seqJs = new Float64Array(L * L * H);
    if (this.headPairsOn) {
      this.heads = new RunningStat(L * H * L * H);
      this.seqHeads = new Float64Array(L * H * L * H);
    }
    // One compareProbs call per layer: every held layer (at most layersPerBlock) and the layer itself.
    this.gram = new Float64Array((this.layersPerBlock + 1) * H * H);
    this.pairStats = new Float64Array((this.layersPerBlock + 1) * 2 * H);
  }

  /** Layers kept per forward pass. */
  get layersPerBlock(): number {
    return this.blocks[0][1] - this.blocks[0][0];
  }

  /** Number of sequences folded in so far. */
  get sequences(): number {
    return this.avgCos.count;
  }

  /**
   * Run `model` over one sequence (one forward pass per layer block) and fold its statistics in.
   * Returns the logits `(T, V)` of the first pass (the caller can compute the loss from them).
   * `onPass` is called after each forward pass.
   */
  addSequence(model: ForwardModel, ids: Int32Array, onPass?: (pass: number) => void): Float32Array {
    if (ids.length !== this.seqLen) throw new ShapeError('SimilarityAccumulator', `sequence has ${ids.length} tokens, expected ${this.seqLen}`);
    const L = this.numLayers;
    const H = this.numHeads;
    this.seqCos.fill(0);
    this.seqJs.fill(0);
    this.seqHeads?.fill(0);
    let logits: Float32Array | undefined;
    this.blocks.forEach(([lo, hi], p) => {
      const stored = new Map<number, PackedLayer>();
      const seen = new Set<number>();
      const probsLayers = new Set<number>();
      for (let l = lo; l < L; l++) probsLayers.add(l);
      const hook: AttentionProbsHook = (layer, probs, shape) => {
        if (shape.batch !== 1 || shape.tq !== this.seqLen || shape.s !== this.seqLen) {
          throw new ShapeError('SimilarityAccumulator', `expected probabilities (1, ${H}, ${this.seqLen}, ${this.seqLen}), got batch ${shape.batch}, ${shape.tq} × ${shape.s}`);
        }
        if (probs.length !== H * this.seqLen * this.seqLen) throw new ShapeError('SimilarityAccumulator', `layer ${layer}: ${probs.length} probabilities, expected ${H}·${this.seqLen}²`);
        if (layer < lo || seen.has(layer)) return;
        seen.add(layer);
        const cur = this.pack(probs);
        this.held += this.bytesPerLayer;
        this.peakHeld = Math.max(this.peakHeld, this.held);
        this.compareLayer(layer, cur, [...stored], layer < hi && this.seqHeads !== undefined);
        if (layer < hi) {
          stored.set(layer, cur);
        } else {
          this.held -= this.bytesPerLayer;
          this.spare.push(cur.data);
        }
      };
      // One probabilities buffer for every layer of the pass (the hook packs them before the next layer runs).
      const probsPool = newProbsPool(model.config?.attention ?? [], H * this.seqLen * this.seqLen);
      const out = model.forward(ids, { onAttentionProbs: hook, probsLayers, probsPool });
      if (p === 0) logits = out;
      for (let l = lo; l < L; l++) if (!seen.has(l)) throw new ShapeError('SimilarityAccumulator', `the model reported no probabilities for layer ${l}`);
      this.held -= stored.size * this.bytesPerLayer;
      for (const v of stored.values()) this.spare.push(v.data);
      stored.clear();
      onPass?.(p);
    });
    // Diagonal: a layer is identical to itself.
    for (let i = 0; i < L; i++) {
      for (let h = 0; h < H; h++) this.seqCos[(i * L + i) * H + h] = 1;
      if (this.seqHeads) for (let h = 0; h < H; h++) this.seqHeads[(i * H + h) * L * H + i * H + h] = 1;
    }
    this.pairCos.add(this.seqCos);
    this.pairJs.add(this.seqJs);
    const ac = new Float64Array(L * L);
    const aj = new Float64Array(L * L);
    for (let x = 0; x < L * L; x++) {
      let sc = 0;
      let sj = 0;
      for (let h = 0; h < H; h++) {
        sc += this.seqCos[x * H + h];
        sj += this.seqJs[x * H + h];
      }
      ac[x] = sc / H;
      aj[x] = sj / H;
    }
    this.avgCos.add(ac);
    this.avgJs.add(aj);
    if (this.heads && this.seqHeads) this.heads.add(this.seqHeads);
    return logits!;
  }

  /** Pack `(H, T, T)` to the causal triangles `(H, K)` with per-head norms and entropies (backend kernel). */
  private pack(probs: Float32Array): PackedLayer {
    const H = this.numHeads;
    const data = this.spare.pop() ?? new Float32Array(H * this.K);
    const stats = new Float64Array(2 * H);
    this.backend.packProbs(probs, data, H, this.seqLen, stats);
    return { data, stats };
  }

  /**
   * Layer j's packed maps against every earlier held layer (one backend call, which reads j's maps once for all), and
   * against itself when `self` (its head pairs with its own heads).
   */
  private compareLayer(j: number, cur: PackedLayer, earlier: readonly (readonly [number, PackedLayer])[], self: boolean): void {
    const H = this.numHeads;
    const maps = earlier.map(([, a]) => a.data);
    if (self) maps.push(cur.data);
    if (maps.length === 0) return;
    const gram = this.seqHeads ? this.gram : undefined;
    this.backend.compareProbs(maps, cur.data, H, this.K, this.pairStats, gram);
    earlier.forEach(([i, a], x) => this.recordPair(i, a, j, cur, this.pairStats.subarray(2 * H * x, 2 * H * (x + 1)), gram?.subarray(H * H * x, H * H * (x + 1))));
    if (self) this.fillHeadPairs(j, cur, j, cur, this.gram.subarray(H * H * earlier.length, H * H * (earlier.length + 1)));
  }

  /** Per-head cosine and JS of layer i (earlier) against layer j from their sums; fills (i, j) and (j, i), and head pairs. */
  private recordPair(i: number, a: PackedLayer, j: number, b: PackedLayer, st: Float64Array, gram?: Float64Array): void {
    const L = this.numLayers;
    const H = this.numHeads;
    for (let h = 0; h < H; h++) {
      const den = Math.sqrt(a.stats[h] * b.stats[h]);
      const cos = den > 0 ? Math.min(1, st[h] / den) : 0;
      const js = Math.max(0, st[H + h] - 0.5 * (a.stats[H + h] + b.stats[H + h])) / this.seqLen;
      this.seqCos[(i * L + j) * H + h] = cos;
      this.seqCos[(j * L + i) * H + h] = cos;
      this.seqJs[(i * L + j) * H + h] = js;
      this.seqJs[(j * L + i) * H + h] = js;
    }
    if (this.seqHeads && gram) {
      this.fillHeadPairs(i, a, j, b, gram);
      const LH = L * H;
      for (let h = 0; h < H; h++) {
        const c = this.seqCos[(i * L + j) * H + h]; // the per-head value for corresponding heads
        this.seqHeads[(i * H + h) * LH + j * H + h] = c;
        this.seqHeads[(j * H + h) * LH + i * H + h] = c;
      }
    }
  }

  /** Cosine between every head of layer i and every head of layer j from their Gram matrix `g` `(H, H)`. */
  private fillHeadPairs(i: number, a: PackedLayer, j: number, b: PackedLayer, g: Float64Array): void {
    const H = this.numHeads;
    const LH = this.numLayers * H;
    const s = this.seqHeads!;
    for (let x = 0; x < H; x++) {
      for (let y = 0; y < H; y++) {
        const den = Math.sqrt(a.stats[x] * b.stats[y]);
        const v = den > 0 ? Math.max(-1, Math.min(1, g[x * H + y] / den)) : 0;
        s[(i * H + x) * LH + j * H + y] = v;
        s[(j * H + y) * LH + i * H + x] = v;
      }
    }
  }

  /** Means and spreads so far. */
  result(): SimilarityStats {
    const L = this.numLayers;
    const H = this.numHeads;
    const perHead = (rs: RunningStat): MatrixStat[] => {
      const mean = rs.mean;
      const std = rs.std();
      return Array.from({ length: H }, (_, h) => {
        const m = new Float64Array(L * L);
        const s = new Float64Array(L * L);
        for (let x = 0; x < L * L; x++) {
          m[x] = mean[x * H + h];
          s[x] = std[x * H + h];
        }
        return { n: L, mean: m, std: s };
      });
    };
    const stat = (rs: RunningStat, n: number): MatrixStat => ({ n, mean: Float64Array.from(rs.mean), std: rs.std() });
    return {
      numLayers: L,
      numHeads: H,
      seqLen: this.seqLen,
      sequences: this.sequences,
      cosine: stat(this.avgCos, L),
      js: stat(this.avgJs, L),
      cosinePerHead: perHead(this.pairCos),
      jsPerHead: perHead(this.pairJs),
      ...(this.heads ? { headPairs: stat(this.heads, L * H) } : {}),
      memory: {
        bytesPerLayer: this.bytesPerLayer,
        layersPerBlock: this.layersPerBlock,
        passes: this.blocks.length,
        boundBytes: (this.layersPerBlock + 1) * this.bytesPerLayer,
        peakHeldBytes: this.peakHeld,
      },
    };
  }
}

/** `m[i·n + j]` of a row-major square matrix. */
export function at(m: MatrixStat, i: number, j: number): number {
  return m.mean[i * m.n + j];
}

/** A square row-major matrix as nested arrays (for JSON and charts), values rounded to `digits` significant digits. */
export function toRows(a: Float64Array, n: number, digits = 6): number[][] {
  return Array.from({ length: n }, (_, i) => Array.from(a.subarray(i * n, (i + 1) * n), (v) => Number(v.toPrecision(digits))));
}
