/**
 * Sharing plans: which layers reuse ("echo") the attention probabilities of which anchor layer, and (version 2)
 * which anchor head each query head of a shared layer reads.
 *
 * File format (JSON):
 * ```json
 * {
 *   "format": "echoatt-plan",
 *   "version": 2,
 *   "strategy": "search",              // how it was made: echoatt | span | budget | search | manual (informational)
 *   "groups": [ { "anchor": 2, "shared": [3, 4], "heads": { "4": [0, 0, 2, 3, 5, 5] } } ],
 *   "note": "free text"                // optional
 * }
 * ```
 * `heads` (version 2 only, optional per shared layer): query head `h` of the shared layer reuses the anchor's query
 * head `heads[h]` (head-aligned sharing after LiSA, arXiv 2408.01890; many-to-one allowed). A shared layer without
 * an entry reuses head `h` for head `h`. Version-1 files (no `heads`) keep loading; a plan without head maps is
 * written as version 1.
 *
 * `dropped` (version 3, optional): layers whose attention is removed altogether (output 0, no q/k/v/o, no cache;
 * the "attention drop" baseline of arXiv 2407.15516). A plan with dropped layers is written as version 3, so an older
 * echoatt refuses it instead of expecting those layers' projections.
 *
 * Rules, checked by {@link validatePlan} against a model: layer indices are integers in `[0, numLayers)`; every
 * shared layer comes after its anchor; a layer is shared at most once; an anchor is never itself shared (it must
 * compute its own attention); a head map names a shared layer of its group and has one anchor head per query head;
 * a dropped layer is neither an anchor nor shared, and is listed once.
 */
import fs from 'node:fs';
import { PlanError } from '../errors.js';

export interface PlanGroup {
  readonly anchor: number;
  readonly shared: readonly number[];
  /** Per shared layer (decimal key): the anchor query head each of its query heads reads. */
  readonly heads?: Readonly<Record<string, readonly number[]>>;
}

export interface SharingPlan {
  readonly format: 'echoatt-plan';
  readonly version: 1 | 2 | 3;
  readonly strategy: string;
  readonly groups: readonly PlanGroup[];
  /** Layers whose attention is dropped (version 3). */
  readonly dropped?: readonly number[];
  readonly note?: string;
}

/** The model dimensions a plan is checked against. */
export interface PlanDims {
  readonly numLayers: number;
  readonly numHeads: number;
}

/** Parse and validate an untrusted JSON value as a plan (structure only; see {@link validatePlan} for the model fit). */
export function parsePlan(json: unknown, where: string): SharingPlan {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new PlanError(where, 'plan must be a JSON object');
  const o = json as Record<string, unknown>;
  if (o.format !== undefined && o.format !== 'echoatt-plan') throw new PlanError(where, `field 'format' must be "echoatt-plan", got ${JSON.stringify(o.format)}`);
  if (o.version !== undefined && o.version !== 1 && o.version !== 2 && o.version !== 3) {
    throw new PlanError(where, `unsupported plan version ${JSON.stringify(o.version)} (this echoatt reads versions 1 to 3)`);
  }
  if (o.strategy !== undefined && typeof o.strategy !== 'string') throw new PlanError(where, `field 'strategy' must be a string`);
  if (o.note !== undefined && typeof o.note !== 'string') throw new PlanError(where, `field 'note' must be a string`);
  if (!Array.isArray(o.groups)) throw new PlanError(where, `field 'groups' must be an array of {anchor, shared}`);
  const groups = o.groups.map((g, i) => parseGroup(g, `groups[${i}]`, where, o.version === 1));
  const dropped = parseDropped(o.dropped, where, o.version);
  return Object.freeze({
    format: 'echoatt-plan',
    version: dropped ? 3 : groups.some((g) => g.heads) ? 2 : 1,
    strategy: (o.strategy as string | undefined) ?? 'manual',
    groups: Object.freeze(groups),
    ...(dropped ? { dropped } : {}),
    ...(o.note !== undefined ? { note: o.note as string } : {}),
  });
}

function parseGroup(g: unknown, at: string, where: string, v1: boolean): PlanGroup {
  if (typeof g !== 'object' || g === null || Array.isArray(g)) throw new PlanError(where, `${at} must be an object {anchor, shared}`);
  const gg = g as Record<string, unknown>;
  if (!isIndex(gg.anchor)) throw new PlanError(where, `${at}.anchor must be a non-negative integer, got ${JSON.stringify(gg.anchor)}`);
  if (!Array.isArray(gg.shared) || !gg.shared.every(isIndex)) {
    throw new PlanError(where, `${at}.shared must be an array of non-negative integers, got ${JSON.stringify(gg.shared)}`);
  }
  for (const k of Object.keys(gg)) if (k !== 'anchor' && k !== 'shared' && k !== 'heads') throw new PlanError(where, `${at} has unknown field '${k}'`);
  const shared = Object.freeze([...(gg.shared as number[])].sort((a, b) => a - b));
  if (gg.heads === undefined) return Object.freeze({ anchor: gg.anchor, shared });
  if (v1) throw new PlanError(where, `${at}.heads needs plan version 2 (the file says version 1)`);
  if (typeof gg.heads !== 'object' || gg.heads === null || Array.isArray(gg.heads)) {
    throw new PlanError(where, `${at}.heads must be an object {"<shared layer>": [anchor head per query head]}`);
  }
  const heads: Record<string, readonly number[]> = {};
  for (const [k, v] of Object.entries(gg.heads as Record<string, unknown>)) {
    if (!/^\d+$/.test(k) || !shared.includes(Number(k))) throw new PlanError(where, `${at}.heads names '${k}', which is not a shared layer of this group`);
    if (!Array.isArray(v) || v.length === 0 || !v.every(isIndex)) throw new PlanError(where, `${at}.heads.${k} must be a non-empty array of head indices, got ${JSON.stringify(v)}`);
    heads[String(Number(k))] = Object.freeze([...v]);
  }
  return Object.freeze({ anchor: gg.anchor, shared, ...(Object.keys(heads).length ? { heads: Object.freeze(heads) } : {}) });
}

function parseDropped(d: unknown, where: string, version: unknown): readonly number[] | null {
  if (d === undefined || (Array.isArray(d) && d.length === 0)) return null;
  if (version === 1 || version === 2) throw new PlanError(where, `field 'dropped' needs plan version 3 (the file says version ${version})`);
  if (!Array.isArray(d) || !d.every(isIndex)) throw new PlanError(where, `field 'dropped' must be an array of layer indices, got ${JSON.stringify(d)}`);
  return Object.freeze([...d].sort((a, b) => a - b));
}

function isIndex(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0;
}

/**
 * Check a plan against a model (`dims`, or just its layer count, which leaves head maps' lengths unchecked); throws
 * {@link PlanError} listing every problem.
 */
export function validatePlan(plan: SharingPlan, dims: number | PlanDims, where = 'plan'): void {
  const numLayers = typeof dims === 'number' ? dims : dims.numLayers;
  const numHeads = typeof dims === 'number' ? undefined : dims.numHeads;
  const problems: string[] = [];
  const sharedBy = new Map<number, number>();
  const anchors = new Set<number>();
  plan.groups.forEach((g, i) => {
    if (g.anchor >= numLayers) problems.push(`groups[${i}].anchor ${g.anchor} is not a layer (model has ${numLayers}: 0..${numLayers - 1})`);
    anchors.add(g.anchor);
    for (const s of g.shared) {
      if (s >= numLayers) problems.push(`groups[${i}] shares layer ${s}, which does not exist (model has ${numLayers})`);
      if (s <= g.anchor) problems.push(`groups[${i}] shares layer ${s}, which does not come after its anchor ${g.anchor}`);
      const prev = sharedBy.get(s);
      if (prev !== undefined) problems.push(`layer ${s} is shared twice (groups[${prev}] and groups[${i}])`);
      sharedBy.set(s, i);
    }
    for (const [k, map] of Object.entries(g.heads ?? {})) {
      if (numHeads === undefined) continue;
      if (map.length !== numHeads) problems.push(`groups[${i}].heads.${k} has ${map.length} entries, the model has ${numHeads} query heads`);
      const bad = map.find((h) => h >= numHeads);
      if (bad !== undefined) problems.push(`groups[${i}].heads.${k} names anchor head ${bad} (the model has heads 0..${numHeads - 1})`);
    }
  });
  const seen = new Set<number>();
  for (const d of plan.dropped ?? []) {
    if (d >= numLayers) problems.push(`dropped layer ${d} does not exist (model has ${numLayers})`);
    if (seen.has(d)) problems.push(`layer ${d} is dropped twice`);
    if (anchors.has(d)) problems.push(`layer ${d} is dropped and is an anchor other layers echo`);
    if (sharedBy.has(d)) problems.push(`layer ${d} is dropped and also shared (groups[${sharedBy.get(d)}])`);
    seen.add(d);
  }
  for (const a of anchors) {
    if (sharedBy.has(a)) problems.push(`layer ${a} is an anchor and also shared (groups[${sharedBy.get(a)}]); an anchor must compute its own attention`);
  }
  if (problems.length) throw new PlanError(where, problems.length === 1 ? problems[0] : `${problems.length} problems:\n  - ${problems.join('\n  - ')}`);
}

/** `anchorOf[l]` = the anchor layer whose probabilities layer `l` reuses, or -1 if `l` computes its own. */
export function anchorMap(plan: SharingPlan, numLayers: number): Int32Array {
  const m = new Int32Array(numLayers).fill(-1);
  for (const g of plan.groups) for (const s of g.shared) m[s] = g.anchor;
  return m;
}

/** The head map of shared layer `l` (anchor head per query head), or null when it reads head `h` for head `h`. */
export function planHeads(plan: SharingPlan, l: number): readonly number[] | null {
  for (const g of plan.groups) if (g.heads?.[String(l)]) return g.heads[String(l)];
  return null;
}

/** Build a plan object (sorted, frozen) from groups. */
export function makePlan(strategy: string, groups: readonly PlanGroup[], note?: string, dropped: readonly number[] = []): SharingPlan {
  const version = dropped.length ? 3 : groups.some((g) => g.heads && Object.keys(g.heads).length) ? 2 : 1;
  return parsePlan({ format: 'echoatt-plan', version, strategy, groups, ...(dropped.length ? { dropped } : {}), ...(note ? { note } : {}) }, `${strategy} plan`);
}

/** Layers a plan shares, ascending. */
export function sharedLayersOf(plan: SharingPlan): number[] {
  return plan.groups.flatMap((g) => g.shared).sort((a, b) => a - b);
}

/** Read and parse a plan file (structure only; the model fit is checked where the plan is applied). */
export function readPlanFile(file: string): SharingPlan {
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new PlanError(file, `cannot read plan JSON (${(e as Error).message})`);
  }
  return parsePlan(json, file);
}
