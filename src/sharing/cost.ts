/**
 * What a sharing plan saves. Parameters are counted from the one tensor table (`models/tensor-spec.ts`) of the
 * teacher and of the student the plan makes, so every kind and family is counted as it is stored.
 *
 * Per decoded token at context length T (a sliding-window layer sees at most its window), one layer's attention block
 * costs (FLOPs, multiply-add = 2): q/k projections 2·dim·(H + Hkv)·D, v projection 2·dim·Hkv·D, o projection
 * 2·H·D·dim, scores QKᵀ 2·H·D·T, softmax ≈ 5·H·T (max, subtract, exp, sum, divide), probabilities·V 2·H·D·T. An echo
 * layer skips the q/k projections, the scores and the softmax: it keeps v, o and P·V. A dropped layer costs nothing.
 * KV cache: what each kind keeps (`kindCache`): K and V rows of Hkv·D floats per token, V only (echo), nothing (dropped).
 */
import type { LlamaConfig } from '../models/config.js';
import { withSharing } from '../models/config.js';
import { anchorMap, type SharingPlan } from '../models/sharing-plan.js';
import { kindCache, type LayerAttention } from '../models/attention-kinds.js';
import { tensorSpecs, type TensorSpec } from '../models/tensor-spec.js';

export interface SharingCost {
  /** All model parameters of the teacher, and those the student drops (q/k of echo layers, all attention of dropped ones). */
  params: { total: number; removed: number };
  /** Attention-block FLOPs per token at context `seqLen`, summed over layers. */
  attentionFlops: { seqLen: number; total: number; removed: number };
  /** KV-cache bytes per token (f32), all layers: the teacher's, the K bytes and all bytes the student does not keep. */
  kvCacheBytesPerToken: { total: number; removedK: number; removed: number };
  /** Layers that echo an anchor. */
  sharedLayers: number[];
  /** Layers whose attention is dropped. */
  droppedLayers: number[];
}

/** Attention FLOPs of one layer of kind `kind` (`true`/`false`: echo / own, as older callers say) per token at context `seqLen`. */
export function layerAttentionFlops(cfg: LlamaConfig, seqLen: number, kind: LayerAttention['kind'] | boolean, layer = 0): number {
  const k = kind === true ? 'echo' : kind === false ? 'own' : kind;
  if (k === 'dropped') return 0;
  const { hiddenSize: dim, numHeads: h, numKvHeads: kv, headDim: d } = cfg;
  const w = cfg.layerWindows[layer] ?? 0;
  const t = w > 0 ? Math.min(seqLen, w) : seqLen;
  const vo = 2 * dim * kv * d + 2 * h * d * dim;
  const pv = 2 * h * d * t;
  if (k === 'echo') return vo + pv;
  return vo + pv + 2 * dim * (h + kv) * d + 2 * h * d * t + 5 * h * t;
}

const size = (t: TensorSpec) => t.shape.reduce((a, b) => a * b, 1);

/** Stored parameters of a model of this config (tied embeddings once), from the tensor table. */
export function totalParams(cfg: Readonly<LlamaConfig>): number {
  return tensorSpecs(cfg).reduce((n, t) => n + size(t), 0);
}

const ATTENTION_KEYS = new Set(['wq', 'wk', 'wv', 'wo', 'bq', 'bk', 'bv', 'qNorm', 'kNorm']);

/** Parameters of the attention projections (q, k, v, o, their biases and per-head norms), all layers, from the tensor table. */
export function attentionParams(cfg: Readonly<LlamaConfig>): number {
  return tensorSpecs(cfg).reduce((n, t) => n + (ATTENTION_KEYS.has(t.key) ? size(t) : 0), 0);
}

/** Savings of `plan` on a model with config `cfg` (the teacher), attention FLOPs counted at context `seqLen`. */
export function sharingCost(cfg: Readonly<LlamaConfig>, plan: SharingPlan, seqLen: number): SharingCost {
  const student = withSharing(cfg, { plan, headMap: cfg.sharing.headMap }, 'plan');
  const anchorOf = anchorMap(plan, cfg.numLayers);
  const sharedLayers = [...anchorOf.keys()].filter((l) => anchorOf[l] >= 0);
  const row = cfg.numKvHeads * cfg.headDim * 4;
  let flops = 0;
  let studentFlops = 0;
  let kv = 0;
  let removedK = 0;
  let removed = 0;
  for (let l = 0; l < cfg.numLayers; l++) {
    const [t, s] = [cfg.attention[l], student.attention[l]];
    flops += layerAttentionFlops(cfg, seqLen, t.kind, l);
    studentFlops += layerAttentionFlops(cfg, seqLen, s.kind, l);
    const [tc, sc] = [kindCache(t), kindCache(s)];
    kv += row * (+tc.keys + +tc.values);
    removedK += row * (+tc.keys - +sc.keys);
    removed += row * (+tc.keys + +tc.values - +sc.keys - +sc.values);
  }
  return {
    params: { total: totalParams(cfg), removed: totalParams(cfg) - totalParams(student) },
    attentionFlops: { seqLen, total: flops, removed: flops - studentFlops },
    kvCacheBytesPerToken: { total: kv, removedK, removed },
    sharedLayers,
    droppedLayers: [...(plan.dropped ?? [])],
  };
}

function pct(part: number, whole: number): string {
  return whole ? `${((100 * part) / whole).toFixed(2)}%` : '0%';
}

function human(n: number): string {
  const units = ['', 'K', 'M', 'G', 'T'];
  let i = 0;
  while (Math.abs(n) >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${n.toFixed(n >= 100 || i === 0 ? 0 : 2)}${units[i]}`;
}

/** A short table of what the plan removes, absolute and %. */
export function formatSharingCost(c: SharingCost): string {
  return [
    `shared layers: ${c.sharedLayers.join(', ') || '(none)'}${c.droppedLayers.length ? `; attention dropped: ${c.droppedLayers.join(', ')}` : ''}`,
    `| what | teacher | removed | removed % |`,
    `|---|---:|---:|---:|`,
    `| parameters | ${human(c.params.total)} | ${human(c.params.removed)} | ${pct(c.params.removed, c.params.total)} |`,
    `| attention FLOPs/token @T=${c.attentionFlops.seqLen} | ${human(c.attentionFlops.total)} | ${human(c.attentionFlops.removed)} | ${pct(c.attentionFlops.removed, c.attentionFlops.total)} |`,
    `| KV-cache bytes/token (f32) | ${c.kvCacheBytesPerToken.total} | ${c.kvCacheBytesPerToken.removed} | ${pct(c.kvCacheBytesPerToken.removed, c.kvCacheBytesPerToken.total)} |`,
  ].join('\n');
}
