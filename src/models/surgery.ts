/**
 * Weight surgery between sharing descriptions: give a model a layer-wise plan (its echo layers drop q/k), give it a
 * head map (layers keep only their own K/V groups), or write every head-shared group out in full. Each returns a new
 * {@link LlamaModel} whose config records the result; arrays that do not change are shared with the input, which is
 * never modified.
 *
 * @example
 * ```ts
 * const student = withPlan(teacher, makePlan('manual', [{ anchor: 1, shared: [2, 3] }]));
 * const both = withHeadMap(student, map);          // layer-wise and head-wise sharing in one model
 * ```
 */
import { withSharing } from './config.js';
import type { LlamaConfig } from './config.js';
import { LlamaModel } from './llama.js';
import type { LlamaLayerParams } from './params.js';
import { layerTensorSpecs, type LayerKey } from './tensor-spec.js';
import { headLayout, type HeadMap } from './head-map.js';
import type { SharingPlan } from './sharing-plan.js';
import type { Backend } from '../backend/backend.js';
import { requireF32 } from '../tensor/weight.js';
import { HeadMapError, PlanError } from '../errors.js';

/**
 * `model` with `plan` (replacing any plan it had): each layer keeps exactly the tensors its new kind stores (echo
 * layers lose q/k and their norms, dropped layers their whole attention); arrays are shared, not copied.
 */
export function withPlan(model: LlamaModel, plan: SharingPlan | null, backend: Backend = model.backend): LlamaModel {
  const config = withSharing(model.config, { plan, headMap: model.headMap }, 'plan');
  const layers = model.params.layers.map((lp, l): LlamaLayerParams => {
    const out: Partial<Record<LayerKey, unknown>> = {};
    for (const { key } of layerTensorSpecs(config, l)) {
      const w = lp[key as LayerKey];
      if (!w) throw new PlanError('plan', `layer ${l} has no ${key} for its new kind '${config.attention[l].kind}' (it was '${model.config.attention[l].kind}')`);
      out[key as LayerKey] = w;
    }
    return out as unknown as LlamaLayerParams;
  });
  return new LlamaModel(config, { ...model.params, layers }, backend);
}

/** `model` with head-wise weight sharing `map` applied (layers keep compact copies of their own groups). */
export function withHeadMap(model: LlamaModel, map: HeadMap, backend: Backend = model.backend): LlamaModel {
  if (model.headMap) throw new HeadMapError('withHeadMap', 'the model is already head-shared; share its original instead');
  const config = withSharing(model.config, { plan: model.plan, headMap: map }, 'head map');
  const { ownGroups } = headLayout(config, map);
  const layers = model.params.layers.map((lp, l) => (config.attention[l].kind === 'headShared' ? compactLayer(config, lp, ownGroups[l]) : { ...lp }));
  return new LlamaModel(config, { ...model.params, layers }, backend);
}

/**
 * The same model with every head-shared group's weights written out in full (copies) and no head map; a layer-wise
 * plan is kept. For checks and for continuing training of the dense model.
 */
export function toDense(model: LlamaModel, backend: Backend = model.backend): LlamaModel {
  const c = model.config;
  const map = model.headMap;
  if (!map) return new LlamaModel(c, { ...model.params, layers: model.params.layers.map((lp) => ({ ...lp })) }, backend);
  const layout = headLayout(c, map);
  const p = model.params;
  const layers = p.layers.map((lp, l): LlamaLayerParams => (c.attention[l].kind === 'headShared' ? denseLayer(c, p.layers, layout, l) : { ...lp }));
  return new LlamaModel(withSharing(c, { plan: c.sharing.plan, headMap: null }, 'dense'), { ...p, layers }, backend);
}

const f32 = (w: LlamaLayerParams['wq'], what: string): Float32Array => {
  if (!w) throw new HeadMapError('head-shared model', `${what} is missing`);
  return requireF32(w, 'head-shared model');
};

function denseLayer(c: Readonly<LlamaConfig>, src: readonly LlamaLayerParams[], layout: ReturnType<typeof headLayout>, l: number): LlamaLayerParams {
  const { numHeads: H, numKvHeads: U, headDim: D, hiddenSize: dim } = c;
  const bias = c.attentionBias;
  const wq = new Float32Array(H * D * dim);
  const wo = new Float32Array(dim * H * D);
  const wk = new Float32Array(U * D * dim);
  const wv = new Float32Array(U * D * dim);
  const bq = bias ? new Float32Array(H * D) : undefined;
  const bk = bias ? new Float32Array(U * D) : undefined;
  const bv = bias ? new Float32Array(U * D) : undefined;
  layout.qSrc[l].forEach(([sl, b], h) => {
    const s = src[sl];
    wq.set(f32(s.wq, 'q_proj').subarray(b * D * dim, (b + 1) * D * dim), h * D * dim);
    const ldo = layout.ownGroups[sl].length * (H / U) * D;
    const so = f32(s.wo, 'o_proj');
    for (let r = 0; r < dim; r++) wo.set(so.subarray(r * ldo + b * D, r * ldo + (b + 1) * D), r * H * D + h * D);
    bq?.set(s.bq!.subarray(b * D, (b + 1) * D), h * D);
  });
  layout.kvSrc[l].forEach(([sl, b], g) => {
    const s = src[sl];
    wk.set(f32(s.wk, 'k_proj').subarray(b * D * dim, (b + 1) * D * dim), g * D * dim);
    wv.set(f32(s.wv, 'v_proj').subarray(b * D * dim, (b + 1) * D * dim), g * D * dim);
    bk?.set(s.bk!.subarray(b * D, (b + 1) * D), g * D);
    bv?.set(s.bv!.subarray(b * D, (b + 1) * D), g * D);
  });
  return { ...src[l], wq, wk, wv, wo, bq, bk, bv };
}

/** A layer's attention tensors reduced to the groups in `own` (ascending); absent when it owns none. */
function compactLayer(c: Readonly<LlamaConfig>, lp: LlamaLayerParams, own: readonly number[]): LlamaLayerParams {
  const { numHeads: H, numKvHeads: U, headDim: D, hiddenSize: dim } = c;
  const { wq: _q, wk: _k, wv: _v, wo: _o, bq: _bq, bk: _bk, bv: _bv, ...rest } = lp;
  if (own.length === 0) return rest;
  const qRows = (H / U) * D; // rows of one group in q_proj
  const n = own.length;
  // q/k/v rows (and biases) of one group are contiguous: 1/U of the tensor each.
  const pick = (src: Float32Array) => {
    const per = src.length / U;
    const out = new Float32Array(n * per);
    own.forEach((g, i) => out.set(src.subarray(g * per, (g + 1) * per), i * per));
    return out;
  };
  const wo = new Float32Array(dim * n * qRows);
  const so = f32(lp.wo, 'o_proj');
  own.forEach((g, i) => {
    for (let r = 0; r < dim; r++) wo.set(so.subarray(r * H * D + g * qRows, r * H * D + (g + 1) * qRows), r * n * qRows + i * qRows);
  });
  return {
    ...rest, wq: pick(f32(lp.wq, 'q_proj')), wk: pick(f32(lp.wk, 'k_proj')), wv: pick(f32(lp.wv, 'v_proj')), wo,
    bq: lp.bq && pick(lp.bq), bk: lp.bk && pick(lp.bk), bv: lp.bv && pick(lp.bv),
  };
}

/**
 * A model with copies of its f32 arrays (tied embeddings stay tied), so training the copy leaves the original alone.
 * `only`: copy just these arrays (e.g. those a student shares with its teacher) and share the rest.
 */
export function copyModel(model: LlamaModel, only?: ReadonlySet<unknown>): LlamaModel {
  const copy = (a: Float32Array) => ((only === undefined || only.has(a)) && a.length ? a.slice() : a);
  const p = model.params;
  const embed = copy(requireF32(p.embed, 'model copy'));
  const layers = p.layers.map((lp) => Object.fromEntries(Object.entries(lp).map(([k, a]) => [k, a instanceof Float32Array ? copy(a) : a])) as LlamaLayerParams);
  const lmHead = p.lmHead === p.embed ? embed : copy(requireF32(p.lmHead, 'model copy'));
  return new LlamaModel(model.config, { embed, layers, norm: copy(p.norm), lmHead }, model.backend);
}

/** Every array a model holds (to pass as `copyModel`'s `only`). */
export function arraysOf(model: LlamaModel): Set<unknown> {
  const p = model.params;
  return new Set<unknown>([p.embed, p.norm, p.lmHead, ...p.layers.flatMap((lp) => Object.values(lp))]);
}
