/**
 * Sharing plans: which layers reuse ("echo") the attention probabilities of which anchor layer.
 *
 * File format (JSON, version 1):
 * ```json
 * {
 *   "format": "echoatt-plan",
 *   "version": 1,
 *   "strategy": "echoatt",            // how it was made: echoatt | span | budget | manual (informational)
 *   "groups": [ { "anchor": 2, "shared": [3, 4] } ],
 *   "note": "free text"               // optional
 * }
 * ```
 * Rules, checked by {@link validatePlan} against a model: layer indices are integers in `[0, numLayers)`; every
 * shared layer comes after its anchor; a layer is shared at most once; an anchor is never itself shared (it must
 * compute its own attention); groups may be empty of shared layers only if the plan says nothing at all.
 */
import { EchoattError } from '../errors.js';
import type { LlamaConfig } from './config.js';

export interface PlanGroup {
  readonly anchor: number;
  readonly shared: readonly number[];
}

export interface SharingPlan {
  readonly format: 'echoatt-plan';
  readonly version: 1;
  readonly strategy: string;
  readonly groups: readonly PlanGroup[];
  readonly note?: string;
}

/** A plan file or object is malformed or does not fit the model; `where` names the file or source. */
export class PlanError extends EchoattError {
  constructor(where: string, message: string) {
    super('E_PLAN', `${where}: ${message}`);
  }
}

/** Parse and validate an untrusted JSON value as a plan (structure only; see {@link validatePlan} for the model fit). */
export function parsePlan(json: unknown, where: string): SharingPlan {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new PlanError(where, 'plan must be a JSON object');
  const o = json as Record<string, unknown>;
  if (o.format !== undefined && o.format !== 'echoatt-plan') throw new PlanError(where, `field 'format' must be "echoatt-plan", got ${JSON.stringify(o.format)}`);
  if (o.version !== undefined && o.version !== 1) throw new PlanError(where, `unsupported plan version ${JSON.stringify(o.version)} (this echoatt reads version 1)`);
  if (o.strategy !== undefined && typeof o.strategy !== 'string') throw new PlanError(where, `field 'strategy' must be a string`);
  if (o.note !== undefined && typeof o.note !== 'string') throw new PlanError(where, `field 'note' must be a string`);
  if (!Array.isArray(o.groups)) throw new PlanError(where, `field 'groups' must be an array of {anchor, shared}`);
  const groups = o.groups.map((g, i): PlanGroup => {
    const at = `groups[${i}]`;
    if (typeof g !== 'object' || g === null || Array.isArray(g)) throw new PlanError(where, `${at} must be an object {anchor, shared}`);
    const gg = g as Record<string, unknown>;
    if (!isLayerIndex(gg.anchor)) throw new PlanError(where, `${at}.anchor must be a non-negative integer, got ${JSON.stringify(gg.anchor)}`);
    if (!Array.isArray(gg.shared) || !gg.shared.every(isLayerIndex)) {
      throw new PlanError(where, `${at}.shared must be an array of non-negative integers, got ${JSON.stringify(gg.shared)}`);
    }
    for (const k of Object.keys(gg)) if (k !== 'anchor' && k !== 'shared') throw new PlanError(where, `${at} has unknown field '${k}'`);
    return Object.freeze({ anchor: gg.anchor, shared: Object.freeze([...(gg.shared as number[])].sort((a, b) => a - b)) });
  });
  return Object.freeze({
    format: 'echoatt-plan',
    version: 1,
    strategy: (o.strategy as string | undefined) ?? 'manual',
    groups: Object.freeze(groups),
    ...(o.note !== undefined ? { note: o.note as string } : {}),
  });
}

function isLayerIndex(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0;
}

/** Check a plan against a model with `numLayers` layers; throws {@link PlanError} listing every problem. */
export function validatePlan(plan: SharingPlan, numLayers: number, where = 'plan'): void {
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
  });
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

/** Build a plan object (sorted, frozen) from groups. */
export function makePlan(strategy: string, groups: readonly PlanGroup[], note?: string): SharingPlan {
  return parsePlan({ format: 'echoatt-plan', version: 1, strategy, groups, ...(note ? { note } : {}) }, `${strategy} plan`);
}

/** config.json key holding the plan of a student checkpoint. */
export const SHARING_CONFIG_KEY = 'echoatt_sharing';

/** The plan recorded in a config, or null for an ordinary model. Throws {@link PlanError} if it is malformed. */
export function planFromConfig(config: Pick<LlamaConfig, 'extra' | 'numLayers'>, where = 'config.json'): SharingPlan | null {
  const raw = config.extra[SHARING_CONFIG_KEY];
  if (raw === undefined || raw === null) return null;
  const plan = parsePlan(raw, `${where} (${SHARING_CONFIG_KEY})`);
  validatePlan(plan, config.numLayers, `${where} (${SHARING_CONFIG_KEY})`);
  return plan;
}

