/**
 * Head maps: which attention units of a head-wise weight-shared model (DirectShare / PostShare, arXiv 2402.11819)
 * take their q/k/v/o weights from a unit of an earlier layer instead of storing their own.
 *
 * ## The sharing unit (GQA)
 * The unit of sharing is a **K/V group**: one key/value head together with the `G = numHeads / numKvHeads` query heads
 * that read it (query heads `g·G … g·G+G−1` read K/V head `g`). A shared unit `(layer, group)` uses, for its i-th
 * query head, the q rows and o_proj columns of the i-th query head of `(source_layer, source_group)`, and that group's
 * k and v rows. For multi-head attention (`G = 1`) a unit is exactly one attention head, as in the paper. Sharing at
 * group granularity keeps K/V sharing sound: a K/V head is never half-shared between query heads that disagree about
 * where it comes from, and each unit's weights are the same size, so `share_rate` is also the fraction of
 * attention-projection weights removed.
 *
 * ## config.json (key `echoatt_head_sharing`, read in `config.ts`)
 * ```json
 * "echoatt_head_sharing": {
 *   "format": "echoatt-headmap", "version": 1, "unit": "kv_group", "strategy": "qk",
 *   "shared": [ { "layer": 3, "group": 1, "source_layer": 0, "source_group": 2, "cosine": 0.41 } ]
 * }
 * ```
 * Rules ({@link validateHeadMap}): `1 ≤ layer < numLayers`, `0 ≤ source_layer < layer`, groups in `[0, numKvHeads)`,
 * each `(layer, group)` listed once, and a source is never itself shared (no chains: every shared unit points at the
 * copy that is actually stored). `cosine` is informational.
 *
 * ## Storage
 * Layer `l` stores only its own (unshared) units, in ascending group order: `q_proj` is `(own_l·G·D, hidden)`,
 * `k_proj`/`v_proj` `(own_l·D, hidden)`, `o_proj` `(hidden, own_l·G·D)` (and biases likewise); a layer with no own
 * unit stores no attention projection at all; `tensor-spec.ts` lists exactly these tensors for loading and saving.
 *
 * A head map may combine with a layer-wise sharing plan (see `layers.ts`): it may only name layers that compute their
 * own attention, since a layer that echoes an anchor has no q/k projections to share.
 */
import { HeadMapError } from '../errors.js';


export interface HeadShareEntry {
  /** Layer whose unit is shared (≥ 1). */
  readonly layer: number;
  /** K/V group index within the layer (a head index for MHA). */
  readonly group: number;
  /** Layer holding the stored weights (< layer). */
  readonly source_layer: number;
  readonly source_group: number;
  /** Cosine similarity of the unit's original weights with the source's (informational). */
  readonly cosine?: number;
}

export interface HeadMap {
  readonly format: 'echoatt-headmap';
  readonly version: 1;
  readonly unit: 'kv_group';
  /** How the map was made: q | k | v | qk | qkv (similarity features), or manual. Informational. */
  readonly strategy: string;
  readonly shared: readonly HeadShareEntry[];
}

/** The model dimensions a head map is checked against. */
export interface HeadMapDims {
  readonly numLayers: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
}

type Dims = HeadMapDims;

const isIndex = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;

/** Parse an untrusted JSON value as a head map (structure only; {@link validateHeadMap} checks the model fit). */
export function parseHeadMap(json: unknown, where: string): HeadMap {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new HeadMapError(where, 'head map must be a JSON object');
  const o = json as Record<string, unknown>;
  if (o.format !== undefined && o.format !== 'echoatt-headmap') throw new HeadMapError(where, `field 'format' must be "echoatt-headmap", got ${JSON.stringify(o.format)}`);
  if (o.version !== undefined && o.version !== 1) throw new HeadMapError(where, `unsupported head map version ${JSON.stringify(o.version)} (this echoatt reads version 1)`);
  if (o.unit !== undefined && o.unit !== 'kv_group') throw new HeadMapError(where, `field 'unit' must be "kv_group", got ${JSON.stringify(o.unit)}`);
  if (o.strategy !== undefined && typeof o.strategy !== 'string') throw new HeadMapError(where, `field 'strategy' must be a string`);
  if (!Array.isArray(o.shared)) throw new HeadMapError(where, `field 'shared' must be an array of {layer, group, source_layer, source_group}`);
  const shared = o.shared.map((e, i): HeadShareEntry => {
    const at = `shared[${i}]`;
    if (typeof e !== 'object' || e === null || Array.isArray(e)) throw new HeadMapError(where, `${at} must be an object`);
    const r = e as Record<string, unknown>;
    for (const k of ['layer', 'group', 'source_layer', 'source_group']) {
      if (!isIndex(r[k])) throw new HeadMapError(where, `${at}.${k} must be a non-negative integer, got ${JSON.stringify(r[k])}`);
    }
    if (r.cosine !== undefined && (typeof r.cosine !== 'number' || !Number.isFinite(r.cosine))) {
      throw new HeadMapError(where, `${at}.cosine must be a finite number, got ${JSON.stringify(r.cosine)}`);
    }
    for (const k of Object.keys(r)) {
      if (!['layer', 'group', 'source_layer', 'source_group', 'cosine'].includes(k)) throw new HeadMapError(where, `${at} has unknown field '${k}'`);
    }
    return Object.freeze({
      layer: r.layer as number, group: r.group as number, source_layer: r.source_layer as number, source_group: r.source_group as number,
      ...(r.cosine !== undefined ? { cosine: r.cosine as number } : {}),
    });
  });
  shared.sort((a, b) => a.layer - b.layer || a.group - b.group);
  return Object.freeze({ format: 'echoatt-headmap', version: 1, unit: 'kv_group', strategy: (o.strategy as string | undefined) ?? 'manual', shared: Object.freeze(shared) });
}

/** Check a head map against a model's dimensions; throws {@link HeadMapError} listing every problem. */
export function validateHeadMap(map: HeadMap, cfg: Dims, where = 'head map'): void {
  const problems: string[] = [];
  const L = cfg.numLayers;
  const U = cfg.numKvHeads;
  const seen = new Map<string, number>();
  const key = (l: number, g: number) => `${l}:${g}`;
  map.shared.forEach((e, i) => {
    const at = `shared[${i}] (layer ${e.layer} group ${e.group})`;
    if (e.layer >= L) problems.push(`${at}: layer ${e.layer} does not exist (model has ${L} layers)`);
    if (e.layer === 0) problems.push(`${at}: layer 0 has no earlier layer to share with`);
    if (e.group >= U) problems.push(`${at}: group ${e.group} does not exist (model has ${U} K/V groups)`);
    if (e.source_group >= U) problems.push(`${at}: source_group ${e.source_group} does not exist (model has ${U} K/V groups)`);
    if (e.source_layer >= e.layer) problems.push(`${at}: source_layer ${e.source_layer} does not come before layer ${e.layer}`);
    const k = key(e.layer, e.group);
    if (seen.has(k)) problems.push(`${at}: listed twice (also shared[${seen.get(k)}])`);
    seen.set(k, i);
  });
  map.shared.forEach((e, i) => {
    const s = seen.get(key(e.source_layer, e.source_group));
    if (s !== undefined) {
      problems.push(`shared[${i}] (layer ${e.layer} group ${e.group}) points at layer ${e.source_layer} group ${e.source_group}, which is itself shared (shared[${s}]); point at the stored copy instead`);
    }
  });
  if (problems.length) throw new HeadMapError(where, problems.length === 1 ? problems[0] : `${problems.length} problems:\n  - ${problems.join('\n  - ')}`);
}

/** Build a validated head map. */
export function makeHeadMap(strategy: string, shared: readonly HeadShareEntry[], cfg: Dims): HeadMap {
  const map = parseHeadMap({ format: 'echoatt-headmap', version: 1, unit: 'kv_group', strategy, shared }, `${strategy} head map`);
  validateHeadMap(map, cfg);
  return map;
}

/** Per layer: the groups that keep their own weights (ascending), and where every query / K/V head's weights live. */
export interface HeadLayout {
  /** `ownGroups[l]`: groups of layer `l` stored in `l`'s own (compact) tensors, ascending. */
  readonly ownGroups: readonly (readonly number[])[];
  /** `qSrc[l][h] = [layer, row block]`: query head `h` of layer `l` is row block `rowBlock` (of D rows) of that layer's compact q_proj. */
  readonly qSrc: readonly (readonly (readonly [number, number])[])[];
  /** `kvSrc[l][g] = [layer, row block]` likewise for K/V head `g` in compact k_proj / v_proj. */
  readonly kvSrc: readonly (readonly (readonly [number, number])[])[];
}

/** Where every head's weights are stored under `map` (`map` null: every layer stores everything). */
export function headLayout(cfg: Dims, map: HeadMap | null): HeadLayout {
  const L = cfg.numLayers;
  const U = cfg.numKvHeads;
  const G = cfg.numHeads / cfg.numKvHeads;
  const src: [number, number][][] = Array.from({ length: L }, (_, l) => Array.from({ length: U }, (_, g) => [l, g] as [number, number]));
  for (const e of map?.shared ?? []) src[e.layer][e.group] = [e.source_layer, e.source_group];
  const ownGroups = src.map((row, l) => row.flatMap(([sl], g) => (sl === l ? [g] : [])));
  const rank = ownGroups.map((own) => {
    const r = new Map<number, number>();
    own.forEach((g, i) => r.set(g, i));
    return r;
  });
  const kvSrc = src.map((row) => row.map(([sl, sg]) => [sl, rank[sl].get(sg)!] as const));
  const qSrc = src.map((row) =>
    Array.from({ length: cfg.numHeads }, (_, h) => {
      const [sl, sg] = row[Math.floor(h / G)];
      return [sl, rank[sl].get(sg)! * G + (h % G)] as const;
    }),
  );
  return { ownGroups, qSrc, kvSrc };
}
