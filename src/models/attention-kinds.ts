/**
 * Per-layer attention kinds: the closed set of ways a decoder layer computes its attention, derived once from a
 * config's sharing description (a layer-wise plan and/or a head map) and stored on the resolved config.
 *
 * - `own`: q/k/v/o projections in the layer's own tensors (an ordinary Llama layer; also an anchor).
 * - `echo`: the layer reuses an anchor layer's post-softmax probabilities (EchoAtt / Shared Attention): it has no
 *   q/k projections and keeps only a V cache; query head `h` reads the anchor's head `heads[h]` (identity when null).
 * - `headShared`: the layer computes its own attention, but some of its K/V groups take their q/k/v rows and o_proj
 *   columns from a group stored in an earlier layer (DirectShare / PostShare); its own tensors hold only its own
 *   groups. `qRuns` / `kvRuns` say where every head's weights live, as runs of consecutive heads.
 *
 * - `dropped`: the layer has no attention at all (output 0): no q/k/v/o projections, no cache (the baseline every
 *   sharing method must beat).
 *
 * One model can mix them all: a plan that echoes some layers and drops others, combined with a head map over the rest.
 * What each kind stores ({@link attentionRows}) and caches ({@link kindCache}) is said here, once.
 *
 * @example
 * ```ts
 * const kinds = layerAttention(cfg, { plan, headMap: null }, 'config.json');
 * kinds[3]; // { kind: 'echo', anchor: 1, heads: null }
 * ```
 */
import { HeadMapError } from '../errors.js';
import { anchorMap, planHeads, validatePlan, type SharingPlan } from './sharing-plan.js';
import { headLayout, validateHeadMap, type HeadMap, type HeadMapDims } from './head-map.js';

/** Heads `[h0, h0+count)` of a layer whose weights are consecutive row blocks `[block, block+count)` of `srcLayer`'s compact tensor. */
export interface Run {
  readonly h0: number;
  readonly count: number;
  readonly srcLayer: number;
  readonly block: number;
}

export type LayerAttention =
  | { readonly kind: 'own' }
  | { readonly kind: 'echo'; readonly anchor: number; readonly heads: Int32Array | null }
  | { readonly kind: 'headShared'; readonly ownGroups: number; readonly qRuns: readonly Run[]; readonly kvRuns: readonly Run[] }
  | { readonly kind: 'dropped' };

export type KindName = LayerAttention['kind'];

/** The model dimensions a kind's tensors and cache depend on. */
export interface KindDims {
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
}

/**
 * Rows of a layer's attention projections as its kind stores them: `q` rows of q_proj (= columns of o_proj), `kv`
 * rows of k_proj / v_proj; `qk` whether q/k (and their norms and biases) exist, `vo` whether v/o do.
 */
export function attentionRows(d: KindDims, kind: LayerAttention): { q: number; kv: number; qk: boolean; vo: boolean } {
  const D = d.headDim;
  switch (kind.kind) {
    case 'own': return { q: d.numHeads * D, kv: d.numKvHeads * D, qk: true, vo: true };
    case 'echo': return { q: d.numHeads * D, kv: d.numKvHeads * D, qk: false, vo: true };
    case 'headShared': return { q: (kind.ownGroups * d.numHeads * D) / d.numKvHeads, kv: kind.ownGroups * D, qk: true, vo: true };
    case 'dropped': return { q: 0, kv: 0, qk: false, vo: false };
  }
}

/** What a layer of this kind keeps in the KV cache: echo layers read their anchor's probabilities (V only); dropped layers nothing. */
export function kindCache(kind: LayerAttention): { keys: boolean; values: boolean } {
  return { keys: kind.kind === 'own' || kind.kind === 'headShared', values: kind.kind !== 'dropped' };
}

/** How a model shares: the layer-wise plan and the head map as recorded in config.json (either may be null). */
export interface ModelSharing {
  readonly plan: SharingPlan | null;
  readonly headMap: HeadMap | null;
}

export const NO_SHARING: ModelSharing = Object.freeze({ plan: null, headMap: null });

/** Group per-head sources `[layer, block]` into runs of consecutive heads stored consecutively in one layer. */
function runs(src: readonly (readonly [number, number])[]): Run[] {
  const out: Run[] = [];
  src.forEach(([srcLayer, block], h) => {
    const last = out[out.length - 1];
    if (last && last.srcLayer === srcLayer && last.block + last.count === block && last.h0 + last.count === h) {
      out[out.length - 1] = { ...last, count: last.count + 1 };
    } else out.push({ h0: h, count: 1, srcLayer, block });
  });
  return out.map((r) => Object.freeze(r));
}

/**
 * Validate a sharing description against the model's dimensions and derive every layer's attention kind.
 * Throws `PlanError` / `HeadMapError` naming `where`.
 */
export function layerAttention(dims: HeadMapDims, sharing: ModelSharing, where: string): readonly LayerAttention[] {
  const { plan, headMap } = sharing;
  const L = dims.numLayers;
  if (plan) validatePlan(plan, dims, `${where} (echoatt_sharing)`);
  if (headMap) validateHeadMap(headMap, dims, `${where} (echoatt_head_sharing)`);
  const anchorOf = plan ? anchorMap(plan, L) : new Int32Array(L).fill(-1);
  const dropped = new Set(plan?.dropped ?? []);
  if (headMap) refuseEchoInHeadMap(headMap, anchorOf, dropped, `${where} (echoatt_head_sharing)`);
  const layout = headMap ? headLayout(dims, headMap) : null;
  const U = dims.numKvHeads;
  const kinds = Array.from({ length: L }, (_, l): LayerAttention => {
    if (dropped.has(l)) return DROPPED;
    if (anchorOf[l] >= 0) {
      const heads = plan ? planHeads(plan, l) : null;
      return Object.freeze({ kind: 'echo', anchor: anchorOf[l], heads: heads ? Int32Array.from(heads) : null });
    }
    if (layout && layout.ownGroups[l].length !== U) {
      return Object.freeze({ kind: 'headShared', ownGroups: layout.ownGroups[l].length, qRuns: runs(layout.qSrc[l]), kvRuns: runs(layout.kvSrc[l]) });
    }
    return OWN;
  });
  return Object.freeze(kinds);
}

const OWN: LayerAttention = Object.freeze({ kind: 'own' });
const DROPPED: LayerAttention = Object.freeze({ kind: 'dropped' });

/** A head map may only name layers that compute their own attention (echo and dropped layers have no q/k to share). */
function refuseEchoInHeadMap(map: HeadMap, anchorOf: Int32Array, dropped: ReadonlySet<number>, where: string): void {
  const problems: string[] = [];
  map.shared.forEach((e, i) => {
    for (const l of [e.layer, e.source_layer]) {
      if (anchorOf[l] >= 0) {
        problems.push(`shared[${i}] names layer ${l}, which echoes layer ${anchorOf[l]}'s attention (echoatt_sharing) and has no q/k projections to share`);
      }
      if (dropped.has(l)) problems.push(`shared[${i}] names layer ${l}, whose attention is dropped (echoatt_sharing)`);
    }
  });
  if (problems.length) {
    throw new HeadMapError(where, `${problems.join('; ')}; head-wise sharing can only name layers that compute their own attention`);
  }
}

/** Layers whose attention is dropped, ascending. */
export function droppedLayers(kinds: readonly LayerAttention[]): number[] {
  return kinds.flatMap((k, l) => (k.kind === 'dropped' ? [l] : []));
}

/** Layers that echo an anchor, ascending. */
export function echoLayers(kinds: readonly LayerAttention[]): number[] {
  return kinds.flatMap((k, l) => (k.kind === 'echo' ? [l] : []));
}

/** For each anchor, the last layer that reads its probabilities (after which they can be dropped). */
export function anchorLastUse(kinds: readonly LayerAttention[]): Map<number, number> {
  const last = new Map<number, number>();
  kinds.forEach((k, l) => {
    if (k.kind === 'echo') last.set(k.anchor, Math.max(last.get(k.anchor) ?? -1, l));
  });
  return last;
}

/**
 * A buffer slot per anchor such that anchors whose probabilities are alive at the same time (from the anchor to its
 * last echo layer) never share one: anchors in separate spans reuse one buffer. Returns anchor → slot, and the count.
 */
export function probsSlots(kinds: readonly LayerAttention[]): { slotOf: Map<number, number>; count: number } {
  const last = anchorLastUse(kinds);
  const slotOf = new Map<number, number>();
  const freeAfter: number[] = []; // per slot: the last layer that still reads it
  for (const a of [...last.keys()].sort((x, y) => x - y)) {
    let slot = freeAfter.findIndex((end) => end < a);
    if (slot < 0) slot = freeAfter.push(0) - 1;
    freeAfter[slot] = last.get(a)!;
    slotOf.set(a, slot);
  }
  return { slotOf, count: freeAfter.length };
}
