/**
 * Leaf computations of a layer that every interpreter of the decoder shares (inference on arrays, training on the
 * tape, step programs): looking a layer's tensor up, the weight blocks a head-shared layer's runs read, the shape of
 * each norm, and the RoPE table of a layer. Written once here, so the three `DecoderOps` differ only in what they do
 * with a block (compute it, record it, or emit it).
 */
import type { LlamaConfig } from './config.js';
import type { Run } from './attention-kinds.js';
import { attentionRows } from './attention-kinds.js';
import type { LayerKey, NormKey } from './tensor-spec.js';
import type { RopeTables } from './rope.js';
import type { BiasKey } from './decoder.js';
import { ShapeError } from '../errors.js';
import type { LinearRunOf } from '../nn/layers.js';

/** A layer's tensor by role, or a `ShapeError` naming the layer, the role and the layer's kind. */
export function layerTensor<W>(cfg: Readonly<LlamaConfig>, layers: readonly Partial<Record<LayerKey, W>>[], l: number, key: LayerKey, op: string): W {
  const w = layers[l]?.[key];
  if (w === undefined) throw new ShapeError(op, `layer ${l} has no ${key} (its attention kind is ${cfg.attention[l].kind})`);
  return w;
}

/** One block of a head-run product (see `nn/layers.ts` `LinearRunOf`), over whatever holds a weight. */
export type RunBlock<W> = LinearRunOf<W>;

/** A head-shared layer's q/k/v projection: each run of heads reads a row block of the storing layer's compact tensor. */
export function projectionBlocks<W>(
  cfg: Readonly<LlamaConfig>, layers: readonly Partial<Record<LayerKey, W>>[], runs: readonly Run[], key: 'wq' | 'wk' | 'wv', bias: BiasKey | null, op: string,
): RunBlock<W>[] {
  const { hiddenSize: dim, headDim: D } = cfg;
  return runs.map((r) => ({
    w: layerTensor(cfg, layers, r.srcLayer, key, op), wOff: r.block * D * dim, ldw: dim, xOff: 0, k: dim, yOff: r.h0 * D, n: r.count * D,
    bias: bias ? layers[r.srcLayer][bias] : undefined, bOff: r.block * D,
  }));
}

/** A head-shared layer's o_proj: each run of heads reads a column block of the storing layer's compact `(dim, own·G·D)` o_proj. */
export function outputBlocks<W>(cfg: Readonly<LlamaConfig>, layers: readonly Partial<Record<LayerKey, W>>[], runs: readonly Run[], op: string): RunBlock<W>[] {
  const D = cfg.headDim;
  return runs.map((r) => ({
    w: layerTensor(cfg, layers, r.srcLayer, 'wo', op), wOff: r.block * D, ldw: attentionRows(cfg, cfg.attention[r.srcLayer]).q,
    xOff: r.h0 * D, k: r.count * D, yOff: 0, n: cfg.hiddenSize, bOff: 0,
  }));
}

/** Rows and width of a norm over `tokens` tokens: the hidden size, or per head over `headDim` for the q/k norms. */
export function normShape(cfg: Readonly<LlamaConfig>, key: NormKey, tokens: number): { rows: number; dim: number } {
  if (key === 'qNorm') return { rows: tokens * cfg.numHeads, dim: cfg.headDim };
  if (key === 'kNorm') return { rows: tokens * cfg.numKvHeads, dim: cfg.headDim };
  return { rows: tokens, dim: cfg.hiddenSize };
}

/** A model's RoPE tables: every layer's, or the sliding-window layers' own base where the family has one (Gemma 3). */
export interface ModelRopes {
  readonly rope: RopeTables;
  readonly ropeLocal: RopeTables | null;
}

/** The RoPE table layer `l` rotates with. */
export function layerRope(cfg: Readonly<LlamaConfig>, m: ModelRopes, l: number): RopeTables {
  return cfg.layerWindows[l] > 0 && m.ropeLocal ? m.ropeLocal : m.rope;
}

/** Final-logit soft-capping in place: `z ← cap·tanh(z / cap)` (Gemma); nothing when `cap` is null. */
export function softcapLogits(z: Float32Array, cap: number | null): Float32Array {
  if (cap !== null) for (let i = 0; i < z.length; i++) z[i] = cap * Math.tanh(z[i] / cap);
  return z;
}
