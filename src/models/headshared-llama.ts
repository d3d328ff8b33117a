/**
 * Head-wise weight-shared Llama (DirectShare / PostShare, arXiv 2402.11819): some attention units of later layers
 * use the q/k/v rows and o_proj columns of a unit of an earlier layer instead of their own. See `head-map.ts` for the
 * unit (a K/V group; one head for MHA), the config.json format and the storage layout.
 *
 * Nothing is copied to run a shared unit: each layer's tensors hold only its own units (compact), and projections are
 * computed per run of consecutive heads straight out of whichever layer's tensor stores them — q/k/v rows are a
 * contiguous row block (`bOff = block·D·hidden`), o_proj columns a strided column block (`transB`, `bOff = block·D`,
 * `ldb = own·G·D`). A layer that owns all its units takes the ordinary path.
 *
 * What it saves: attention **weight memory** only (`parameterCount()` counts the stored weights). Every head still
 * computes its own queries, keys and values from its own input, so the KV cache and the FLOPs are unchanged.
 *
 * @example
 * ```ts
 * const model = HeadSharedLlamaModel.fromTeacher(teacher, makeHeadMap('manual', [{ layer: 3, group: 1, source_layer: 0, source_group: 0 }], teacher.config));
 * model.forward(ids);
 * ```
 */
import { requireF32, type Weight } from '../tensor/weight.js';
import type { Backend } from '../backend/backend.js';
import type { LlamaConfig } from './config.js';
import type { KVCache } from './kvcache.js';
import { LlamaModel, llamaParamsFromWeights, layerTensorNames, type AttentionProbsHook, type LlamaLayerParams, type LlamaParams } from './llama.js';
import {
  combinationRefusal, headLayout, headMapFromConfig, HeadMapError, HEAD_SHARING_CONFIG_KEY, validateHeadMap, type HeadLayout, type HeadMap,
} from './head-map.js';
import { planFromConfig } from './sharing-plan.js';
import type { StoredTensor } from '../tensor/tensor.js';
import { ShapeError } from '../errors.js';
import { attention } from '../nn/attention.js';

export { HEAD_SHARING_CONFIG_KEY, headMapFromConfig };

const EMPTY = new Float32Array(0);

/** A run of consecutive heads `[h0, h0+count)` of a layer whose weights are consecutive row blocks of one layer's tensor. */
interface Run {
  h0: number;
  count: number;
  srcLayer: number;
  block: number;
}

function runs(src: readonly (readonly [number, number])[]): Run[] {
  const out: Run[] = [];
  src.forEach(([sl, b], h) => {
    const last = out[out.length - 1];
    if (last && last.srcLayer === sl && last.block + last.count === b && last.h0 + last.count === h) last.count++;
    else out.push({ h0: h, count: 1, srcLayer: sl, block: b });
  });
  return out;
}

/** The config of a head-shared model: the original's, with the head map recorded. */
export function headSharedConfig(config: LlamaConfig, map: HeadMap): Readonly<LlamaConfig> {
  if (planFromConfig(config)) throw new HeadMapError('headSharedConfig', combinationRefusal());
  validateHeadMap(map, config);
  return Object.freeze({ ...config, extra: Object.freeze({ ...config.extra, [HEAD_SHARING_CONFIG_KEY]: map }) });
}

/** Head-shared weights are views into other layers' f32 arrays. */
const f32 = (w: Weight): Float32Array => requireF32(w, 'head-shared model');

export class HeadSharedLlamaModel extends LlamaModel {
  readonly headMap: HeadMap;
  readonly layout: HeadLayout;
  private readonly qRuns: Run[][];
  private readonly kvRuns: Run[][];
  /** Layers that use at least one unit stored elsewhere (the others take the ordinary path). */
  private readonly mixed: boolean[];

  /** `params` hold compact per-layer attention tensors (own units only), as {@link fromWeights} and {@link fromTeacher} build. */
  constructor(config: LlamaConfig, params: LlamaParams, backend?: Backend) {
    const map = headMapFromConfig(config);
    if (!map) throw new HeadMapError('HeadSharedLlamaModel', `config has no '${HEAD_SHARING_CONFIG_KEY}' head map`);
    super(config, params, backend);
    this.headMap = map;
    this.layout = headLayout(config, map);
    const { numHeads: H, numKvHeads: U, headDim: D, hiddenSize: dim } = config;
    const G = H / U;
    this.layout.ownGroups.forEach((own, l) => {
      const lp = params.layers[l];
      const q = own.length * G * D;
      const kv = own.length * D;
      const bad = (what: string, got: number, want: number) => {
        if (got !== want) throw new ShapeError('HeadSharedLlamaModel', `layer ${l} ${what} has ${got} elements, expected ${want} (${own.length} own K/V groups)`);
      };
      bad('q_proj', lp.wq.length, q * dim);
      bad('k_proj', lp.wk.length, kv * dim);
      bad('v_proj', lp.wv.length, kv * dim);
      bad('o_proj', lp.wo.length, dim * q);
      if (config.attentionBias) {
        bad('q_proj bias', lp.bq?.length ?? 0, q);
        bad('k_proj bias', lp.bk?.length ?? 0, kv);
        bad('v_proj bias', lp.bv?.length ?? 0, kv);
      }
    });
    this.qRuns = this.layout.qSrc.map(runs);
    this.kvRuns = this.layout.kvSrc.map(runs);
    this.mixed = this.layout.ownGroups.map((own) => own.length !== U);
  }

  /**
   * Share `teacher`'s units as `map` says. Layers that keep every unit reuse the teacher's arrays; the others get
   * compact copies of their own units (the build step's only copy). The teacher is not modified.
   */
  static fromTeacher(teacher: LlamaModel, map: HeadMap, backend: Backend = teacher.backend): HeadSharedLlamaModel {
    if (teacher instanceof HeadSharedLlamaModel) throw new HeadMapError('HeadSharedLlamaModel.fromTeacher', 'the model is already head-shared; share its original instead');
    const config = headSharedConfig(teacher.config, map);
    const { ownGroups } = headLayout(config, map);
    const layers = teacher.params.layers.map((lp, l) => compactLayer(config, lp, ownGroups[l]));
    return new HeadSharedLlamaModel(config, { ...teacher.params, layers }, backend);
  }

  /** Load from a name → tensor map whose config records the head map (compact attention tensors; views, no copy). */
  static override fromWeights(config: LlamaConfig, weights: ReadonlyMap<string, StoredTensor>, backend?: Backend): HeadSharedLlamaModel {
    const map = headMapFromConfig(config);
    if (!map) throw new HeadMapError('HeadSharedLlamaModel.fromWeights', `config has no '${HEAD_SHARING_CONFIG_KEY}' head map`);
    const { ownGroups } = headLayout(config, map);
    // Layers owning no unit store no projections: fill placeholders so the common resolver accepts the map.
    const withPlaceholders = new Map(weights);
    const placeholder: StoredTensor = { dtype: 'f32', shape: [0], data: EMPTY };
    ownGroups.forEach((own, l) => {
      if (own.length) return;
      const nm = layerTensorNames(l);
      for (const n of [nm.wq, nm.wk, nm.wv, nm.wo]) withPlaceholders.set(n, placeholder);
      if (config.attentionBias) for (const n of [nm.bq, nm.bk, nm.bv]) withPlaceholders.set(n, placeholder);
    });
    return new HeadSharedLlamaModel(config, llamaParamsFromWeights(config, withPlaceholders), backend);
  }

  /** Number of stored units over all layers and how many are shared. */
  unitCounts(): { total: number; shared: number } {
    const total = this.config.numLayers * this.config.numKvHeads;
    return { total, shared: this.headMap.shared.length };
  }

  /**
   * An ordinary {@link LlamaModel} with every unit's weights written out in full (copies). For checks and for
   * continuing training of the dense model; the head-shared model itself never materialises them.
   */
  toDense(backend: Backend = this.backend): LlamaModel {
    const c = this.config;
    const { numHeads: H, numKvHeads: U, headDim: D, hiddenSize: dim } = c;
    const p = this.params;
    const layers = p.layers.map((lp, l): LlamaLayerParams => {
      if (!this.mixed[l]) return { ...lp };
      const wq = new Float32Array(H * D * dim);
      const wo = new Float32Array(dim * H * D);
      const wk = new Float32Array(U * D * dim);
      const wv = new Float32Array(U * D * dim);
      const bias = c.attentionBias;
      const bq = bias ? new Float32Array(H * D) : undefined;
      const bk = bias ? new Float32Array(U * D) : undefined;
      const bv = bias ? new Float32Array(U * D) : undefined;
      this.layout.qSrc[l].forEach(([sl, b], h) => {
        const s = p.layers[sl];
        wq.set(f32(s.wq).subarray(b * D * dim, (b + 1) * D * dim), h * D * dim);
        const ldo = this.layout.ownGroups[sl].length * (H / U) * D;
        for (let r = 0; r < dim; r++) wo.set(f32(s.wo).subarray(r * ldo + b * D, r * ldo + (b + 1) * D), r * H * D + h * D);
        bq?.set(s.bq!.subarray(b * D, (b + 1) * D), h * D);
      });
      this.layout.kvSrc[l].forEach(([sl, b], g) => {
        const s = p.layers[sl];
        wk.set(f32(s.wk).subarray(b * D * dim, (b + 1) * D * dim), g * D * dim);
        wv.set(f32(s.wv).subarray(b * D * dim, (b + 1) * D * dim), g * D * dim);
        bk?.set(s.bk!.subarray(b * D, (b + 1) * D), g * D);
        bv?.set(s.bv!.subarray(b * D, (b + 1) * D), g * D);
      });
      return { ...lp, wq, wk, wv, wo, bq, bk, bv };
    });
    const extra: Record<string, unknown> = { ...c.extra };
    delete extra[HEAD_SHARING_CONFIG_KEY];
    return new LlamaModel(Object.freeze({ ...c, extra: Object.freeze(extra) }), { ...p, layers }, backend);
  }

  protected override selfAttention(
    l: number, xn: Float32Array, pos: Int32Array, batch: number, t: number, cache: KVCache | undefined,
    hook: AttentionProbsHook | undefined,
  ): Float32Array {
    if (!this.mixed[l]) return super.selfAttention(l, xn, pos, batch, t, cache, hook);
    const c = this.config;
    const be = this.backend;
    const n = batch * t;
    const { hiddenSize: dim, numHeads: nh, numKvHeads: nkv, headDim: d } = c;
    const q = this.project(xn, n, this.qRuns[l], nh, 'q'); // (B, T, H, D)
    const k = this.project(xn, n, this.kvRuns[l], nkv, 'k'); // (B, T, Hkv, D)
    const v = this.project(xn, n, this.kvRuns[l], nkv, 'v');
    be.rope(q, n, nh, d, pos, this.rope.cos, this.rope.sin, c.ropeStyle);
    be.rope(k, n, nkv, d, pos, this.rope.cos, this.rope.sin, c.ropeStyle);
    let kAll = k;
    let vAll = v;
    let s = t;
    let kvBatchStride: number | undefined;
    let qPos0 = 0;
    if (cache) {
      const kc = cache.k[l];
      const vc = cache.v[l];
      if (!kc || !vc) throw new ShapeError('HeadSharedLlamaModel.forward', `layer ${l} has no K/V cache`);
      cache.write(kc, k, t);
      cache.write(vc, v, t);
      kAll = kc;
      vAll = vc;
      qPos0 = cache.length;
      s = cache.length + t;
      kvBatchStride = cache.batchStride;
    }
    const out = new Float32Array(n * nh * d); // (B, T, H, D)
    const probs = hook ? new Float32Array(batch * nh * t * s) : undefined;
    attention(be, {
      q, k: kAll, v: vAll, out, probs, batch, tq: t, s, nHeads: nh, nKvHeads: nkv, headDim: d, qPos0,
      scale: 1 / Math.sqrt(d), kvBatchStride,
    });
    if (hook && probs) hook(l, probs, { batch, tq: t, s });
    // o_proj: Σ over runs of out[:, run heads] · Wo_src[:, column block]ᵀ, straight from the storing layer's tensor.
    const res = new Float32Array(n * dim);
    const G = nh / nkv;
    this.qRuns[l].forEach((r, i) => {
      const ldo = this.layout.ownGroups[r.srcLayer].length * G * d;
      be.gemm({
        m: n, n: dim, k: r.count * d, a: out, aOff: r.h0 * d, lda: nh * d,
        b: f32(this.params.layers[r.srcLayer].wo), transB: true, bOff: r.block * d, ldb: ldo, c: res, beta: i === 0 ? 0 : 1,
      });
    });
    return res;
  }

  /** `x · W_headsᵀ (+ b)` for every head, each run read from the layer that stores it; returns `(n, heads·D)`. */
  private project(xn: Float32Array, n: number, rs: Run[], heads: number, which: 'q' | 'k' | 'v'): Float32Array {
    const be = this.backend;
    const { hiddenSize: dim, headDim: d } = this.config;
    const out = new Float32Array(n * heads * d);
    const ld = heads * d;
    for (const r of rs) {
      const sp = this.params.layers[r.srcLayer];
      const w = f32(which === 'q' ? sp.wq : which === 'k' ? sp.wk : sp.wv);
      const cols = r.count * d;
      if (n === 1) be.matvec(w, xn, out.subarray(r.h0 * d, r.h0 * d + cols), cols, dim, r.block * d * dim);
      else be.gemm({ m: n, n: cols, k: dim, a: xn, b: w, transB: true, bOff: r.block * d * dim, ldb: dim, c: out, cOff: r.h0 * d, ldc: ld });
      const bias = which === 'q' ? sp.bq : which === 'k' ? sp.bk : sp.bv;
      if (bias) {
        const bs = bias.subarray(r.block * d, r.block * d + cols);
        for (let row = 0; row < n; row++) {
          const o = out.subarray(row * ld + r.h0 * d, row * ld + r.h0 * d + cols);
          be.add(o, bs, o, cols);
        }
      }
    }
    return out;
  }
}

/** A layer's attention tensors reduced to the units in `own` (ascending); the input arrays when it owns all. */
function compactLayer(c: Readonly<LlamaConfig>, lp: LlamaLayerParams, own: readonly number[]): LlamaLayerParams {
  const { numHeads: H, numKvHeads: U, headDim: D, hiddenSize: dim } = c;
  if (own.length === U) return { ...lp };
  const G = H / U;
  const qRows = G * D; // rows of one unit in q_proj
  const n = own.length;
  const wq = new Float32Array(n * qRows * dim);
  const wk = new Float32Array(n * D * dim);
  const wv = new Float32Array(n * D * dim);
  const wo = new Float32Array(dim * n * qRows);
  const bq = lp.bq ? new Float32Array(n * qRows) : undefined;
  const bk = lp.bk ? new Float32Array(n * D) : undefined;
  const bv = lp.bv ? new Float32Array(n * D) : undefined;
  own.forEach((g, i) => {
    wq.set(f32(lp.wq).subarray(g * qRows * dim, (g + 1) * qRows * dim), i * qRows * dim);
    wk.set(f32(lp.wk).subarray(g * D * dim, (g + 1) * D * dim), i * D * dim);
    wv.set(f32(lp.wv).subarray(g * D * dim, (g + 1) * D * dim), i * D * dim);
    for (let r = 0; r < dim; r++) wo.set(f32(lp.wo).subarray(r * H * D + g * qRows, r * H * D + (g + 1) * qRows), r * n * qRows + i * qRows);
    bq?.set(lp.bq!.subarray(g * qRows, (g + 1) * qRows), i * qRows);
    bk?.set(lp.bk!.subarray(g * D, (g + 1) * D), i * D);
    bv?.set(lp.bv!.subarray(g * D, (g + 1) * D), i * D);
  });
  return { ...lp, wq, wk, wv, wo, bq, bk, bv };
}

/**
 * The model's parameters as an HF-named tensor map with the compact attention shapes of {@link headSharedTensorShapes}
 * (arrays shared with the model, not copied). Layers that own no unit contribute no attention projection.
 */
export function headSharedWeights(model: HeadSharedLlamaModel): Map<string, StoredTensor> {
  const c = model.config;
  const { hiddenSize: d, numHeads: H, numKvHeads: U, headDim: D, intermediateSize: f, vocabSize: v } = c;
  const G = H / U;
  const p = model.params;
  const out = new Map<string, StoredTensor>();
  const put = (name: string, a: Weight | undefined, shape: number[]) => {
    if (a && a.length) out.set(name, { dtype: 'f32', shape, data: f32(a) });
  };
  put('model.embed_tokens.weight', p.embed, [v, d]);
  p.layers.forEach((lp, l) => {
    const nm = layerTensorNames(l);
    const own = model.layout.ownGroups[l].length;
    put(nm.inputNorm, lp.inputNorm, [d]);
    put(nm.wq, lp.wq, [own * G * D, d]);
    put(nm.wk, lp.wk, [own * D, d]);
    put(nm.wv, lp.wv, [own * D, d]);
    put(nm.bq, lp.bq, [own * G * D]);
    put(nm.bk, lp.bk, [own * D]);
    put(nm.bv, lp.bv, [own * D]);
    put(nm.wo, lp.wo, [d, own * G * D]);
    put(nm.postNorm, lp.postNorm, [d]);
    put(nm.wGate, lp.wGate, [f, d]);
    put(nm.wUp, lp.wUp, [f, d]);
    put(nm.wDown, lp.wDown, [d, f]);
  });
  put('model.norm.weight', p.norm, [d]);
  if (!c.tieWordEmbeddings) put('lm_head.weight', p.lmHead, [v, d]);
  return out;
}
