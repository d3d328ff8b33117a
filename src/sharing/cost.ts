/**
 * What a sharing plan saves, from the config alone (formulas; tests hold them against live measurements).
 *
 * Per decoded token at context length T, one layer's attention block costs (FLOPs, multiply-add = 2):
 *   q/k projections 2·dim·(H + Hkv)·D, v projection 2·dim·Hkv·D, o projection 2·H·D·dim,
 *   scores QKᵀ 2·H·D·T, softmax ≈ 5·H·T (max, subtract, exp, sum, divide), probabilities·V 2·H·D·T.
 * A shared layer skips the q/k projections, the scores and the softmax: it keeps v, o and P·V.
 * K cache: an ordinary layer stores K and V rows of Hkv·D floats per token; a shared layer stores V only.
 */
import type { LlamaConfig } from '../models/config.js';
import { anchorMap, type SharingPlan } from '../models/sharing-plan.js';

export interface SharingCost {
  /** All model parameters of the teacher, and those the student drops (q_proj/k_proj of shared layers). */
  params: { total: number; removed: number };
  /** Attention-block FLOPs per token at context `seqLen`, summed over layers. */
  attentionFlops: { seqLen: number; total: number; removed: number };
  /** KV-cache bytes per token (f32), all layers. */
  kvCacheBytesPerToken: { total: number; removedK: number };
  sharedLayers: number[];
}

export function layerAttentionFlops(cfg: LlamaConfig, seqLen: number, shared: boolean): number {
  const { hiddenSize: dim, numHeads: h, numKvHeads: kv, headDim: d } = cfg;
  const vo = 2 * dim * kv * d + 2 * h * d * dim;
  const pv = 2 * h * d * seqLen;
  if (shared) return vo + pv;
  return vo + pv + 2 * dim * (h + kv) * d + 2 * h * d * seqLen + 5 * h * seqLen;
}

export function totalParams(cfg: LlamaConfig): number {
  const { hiddenSize: dim, numHeads: h, numKvHeads: kv, headDim: d, intermediateSize: f, vocabSize: v, numLayers: L } = cfg;
  const bias = cfg.attentionBias ? (h + 2 * kv) * d : 0;
  const layer = 2 * dim + dim * (h + 2 * kv) * d + bias + h * d * dim + 3 * dim * f;
  return v * dim * (cfg.tieWordEmbeddings ? 1 : 2) + dim + L * layer;
}

/** Savings of `plan` on a model with config `cfg`, attention FLOPs counted at context `seqLen`. */
export function sharingCost(cfg: LlamaConfig, plan: SharingPlan, seqLen: number): SharingCost {
  const anchorOf = anchorMap(plan, cfg.numLayers);
  const sharedLayers = [...anchorOf.keys()].filter((l) => anchorOf[l] >= 0);
  const { hiddenSize: dim, numHeads: h, numKvHeads: kv, headDim: d, numLayers: L } = cfg;
  const qkParams = dim * (h + kv) * d + (cfg.attentionBias ? (h + kv) * d : 0);
  let flops = 0;
  let removedFlops = 0;
  for (let l = 0; l < L; l++) {
    const full = layerAttentionFlops(cfg, seqLen, false);
    flops += full;
    if (anchorOf[l] >= 0) removedFlops += full - layerAttentionFlops(cfg, seqLen, true);
  }
  const row = kv * d * 4;
  return {
    params: { total: totalParams(cfg), removed: sharedLayers.length * qkParams },
    attentionFlops: { seqLen, total: flops, removed: removedFlops },
    kvCacheBytesPerToken: { total: 2 * L * row, removedK: sharedLayers.length * row },
    sharedLayers,
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
    `shared layers: ${c.sharedLayers.join(', ') || '(none)'}`,
    `| what | teacher | removed | removed % |`,
    `|---|---:|---:|---:|`,
    `| parameters | ${human(c.params.total)} | ${human(c.params.removed)} | ${pct(c.params.removed, c.params.total)} |`,
    `| attention FLOPs/token @T=${c.attentionFlops.seqLen} | ${human(c.attentionFlops.total)} | ${human(c.attentionFlops.removed)} | ${pct(c.attentionFlops.removed, c.attentionFlops.total)} |`,
    `| KV-cache bytes/token (f32) | ${c.kvCacheBytesPerToken.total} | ${c.kvCacheBytesPerToken.removedK} | ${pct(c.kvCacheBytesPerToken.removedK, c.kvCacheBytesPerToken.total)} |`,
  ].join('\n');
}
