/**
 * Shared-attention student (EchoAtt / Shared Attention): in each plan group, the shared layers reuse the anchor
 * layer's post-softmax attention probabilities, `out_l = P_anchor · V_l`, with their own v_proj, o_proj, norms and MLP.
 * Shared layers have no q_proj and no k_proj at all (the public shareAtt code still computes Q; here nothing is
 * computed that is not used), keep only a V cache, and never run a softmax: during decode the anchor's new
 * probability row is handed straight to its shared layers.
 *
 * The plan is recorded in config.json under {@link SHARING_CONFIG_KEY}, so students load like any model.
 *
 * @example
 * ```ts
 * const teacher = LlamaModel.fromWeights(cfg, weights);
 * const student = SharedLlamaModel.fromTeacher(teacher, makePlan('manual', [{ anchor: 1, shared: [2, 3] }]));
 * const logits = student.forward(ids);
 * ```
 */
import type { Backend } from '../backend/backend.js';
import type { LlamaConfig } from './config.js';
import { KVCache, type LayerCacheSpec } from './kvcache.js';
import { LlamaModel, llamaParamsFromWeights, type WeightMode, type AttentionProbsHook, type ForwardOptions, type LlamaParams } from './llama.js';
import { anchorMap, planFromConfig, validatePlan, PlanError, SHARING_CONFIG_KEY, type SharingPlan } from './sharing-plan.js';
import { linear } from '../nn/layers.js';
import { probsTimesV } from '../nn/attention.js';
import type { StoredTensor } from '../tensor/tensor.js';

export { SHARING_CONFIG_KEY, planFromConfig };

const EMPTY = new Float32Array(0);

/** The config of a student: the teacher's, with the plan recorded. */
export function studentConfig(config: LlamaConfig, plan: SharingPlan): Readonly<LlamaConfig> {
  validatePlan(plan, config.numLayers);
  return Object.freeze({ ...config, extra: Object.freeze({ ...config.extra, [SHARING_CONFIG_KEY]: plan }) });
}

export class SharedLlamaModel extends LlamaModel {
  readonly plan: SharingPlan;
  /** `anchorOf[l]`: the layer whose probabilities layer `l` reuses, or -1. */
  readonly anchorOf: Int32Array;
  /** For each anchor, its last shared layer (after which its probabilities can be dropped). */
  private readonly lastDependent = new Map<number, number>();
  /** Anchor probabilities `(B, H, T, S)` of the forward pass in progress. */
  private readonly live = new Map<number, Float32Array>();

  constructor(config: LlamaConfig, params: LlamaParams, backend?: Backend) {
    const plan = planFromConfig(config);
    if (!plan) throw new PlanError('SharedLlamaModel', `config has no '${SHARING_CONFIG_KEY}' plan`);
    super(config, params, backend);
    this.plan = plan;
    this.anchorOf = anchorMap(plan, config.numLayers);
    for (const g of plan.groups) if (g.shared.length) this.lastDependent.set(g.anchor, Math.max(...g.shared));
  }

  /** Student inheriting every remaining weight of `teacher` (arrays shared, not copied); q/k of shared layers dropped. */
  static fromTeacher(teacher: LlamaModel, plan: SharingPlan, backend: Backend = teacher.backend): SharedLlamaModel {
    const config = studentConfig(teacher.config, plan);
    const anchorOf = anchorMap(plan, config.numLayers);
    const p = teacher.params;
    const layers = p.layers.map((lp, l) => (anchorOf[l] >= 0 ? { ...lp, wq: EMPTY, wk: EMPTY, bq: undefined, bk: undefined } : { ...lp }));
    return new SharedLlamaModel(config, { ...p, layers }, backend);
  }

  /** Load a student from a name → tensor map whose config records the plan (q/k of shared layers must be absent). */
  static override fromWeights(config: LlamaConfig, weights: ReadonlyMap<string, StoredTensor>, backend?: Backend, mode: WeightMode = 'f32'): SharedLlamaModel {
    const plan = planFromConfig(config);
    if (!plan) throw new PlanError('SharedLlamaModel.fromWeights', `config has no '${SHARING_CONFIG_KEY}' plan`);
    const anchorOf = anchorMap(plan, config.numLayers);
    // Fill the q/k slots of shared layers with placeholders so the common resolver accepts the map, then drop them.
    const withPlaceholders = new Map(weights);
    const placeholder: StoredTensor = { dtype: 'f32', shape: [0], data: EMPTY };
    for (let l = 0; l < config.numLayers; l++) {
      if (anchorOf[l] < 0) continue;
      for (const w of ['q', 'k']) {
        withPlaceholders.set(`model.layers.${l}.self_attn.${w}_proj.weight`, placeholder);
        if (config.attentionBias) withPlaceholders.set(`model.layers.${l}.self_attn.${w}_proj.bias`, placeholder);
      }
    }
    const params = llamaParamsFromWeights(config, withPlaceholders, mode);
    params.layers.forEach((lp, l) => {
      if (anchorOf[l] >= 0) Object.assign(lp, { wq: EMPTY, wk: EMPTY, bq: undefined, bk: undefined });
    });
    return new SharedLlamaModel(config, params, backend);
  }

  /** Anchors and ordinary layers keep K and V; shared layers keep V only. */
  override newCache(batch: number, capacity: number): KVCache {
    const c = this.config;
    const spec: LayerCacheSpec[] = Array.from(this.anchorOf, (a) => ({ keys: a < 0, values: true }));
    return new KVCache(spec, batch, Math.min(capacity, c.maxPositions), c.numKvHeads, c.headDim);
  }

  /** Indices of the layers that reuse another layer's attention. */
  sharedLayers(): number[] {
    return [...this.anchorOf.keys()].filter((l) => this.anchorOf[l] >= 0);
  }

  override forward(ids: Int32Array, opts: ForwardOptions = {}): Float32Array {
    try {
      return super.forward(ids, opts);
    } finally {
      this.live.clear();
    }
  }

  protected override selfAttention(
    l: number, xn: Float32Array, pos: Int32Array, batch: number, t: number, cache: KVCache | undefined,
    hook: AttentionProbsHook | undefined,
  ): Float32Array {
    const anchor = this.anchorOf[l];
    if (anchor < 0) {
      if (!this.lastDependent.has(l)) return super.selfAttention(l, xn, pos, batch, t, cache, hook);
      const keep: AttentionProbsHook = (layer, probs, shape) => {
        this.live.set(layer, probs);
        hook?.(layer, probs, shape);
      };
      return super.selfAttention(l, xn, pos, batch, t, cache, keep);
    }
    const c = this.config;
    const be = this.backend;
    const lp = this.params.layers[l];
    const probs = this.live.get(anchor);
    if (!probs) throw new PlanError('SharedLlamaModel', `layer ${l} needs the probabilities of anchor ${anchor}, which were not computed`);
    const n = batch * t;
    const { hiddenSize: dim, numHeads: nh, numKvHeads: nkv, headDim: d } = c;
    const v = linear(be, xn, lp.wv, lp.bv, n, dim, nkv * d); // (B, T, Hkv, D)
    let vAll = v;
    let s = t;
    let kvBatchStride: number | undefined;
    if (cache) {
      const vc = cache.v[l];
      if (!vc) throw new PlanError('SharedLlamaModel', `layer ${l} has no V cache`);
      cache.write(vc, v, t);
      vAll = vc;
      s = cache.length + t;
      kvBatchStride = cache.batchStride;
    }
    const out = new Float32Array(n * nh * d); // (B, T, H, D)
    probsTimesV(be, { probs, v: vAll, out, batch, tq: t, s, nHeads: nh, nKvHeads: nkv, headDim: d, kvBatchStride }, s - t);
    hook?.(l, probs, { batch, tq: t, s });
    if (this.lastDependent.get(anchor) === l) this.live.delete(anchor);
    return linear(be, out, lp.wo, undefined, n, nh * d, dim);
  }
}
