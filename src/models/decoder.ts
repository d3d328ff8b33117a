/**
 * The one Llama-family decoder: embedding, then per layer `x += attn(norm(x))`, `x += mlp(norm(x))`, where each
 * layer's attention follows its kind (`own`, `echo`, `headShared`; see `attention-kinds.ts`). It is written once
 * over {@link DecoderOps}: inference runs it on plain arrays with a KV cache (`inference-ops.ts`), training runs the
 * same code on the autograd tape (`tape-ops.ts`), so the trainable forward is this decoder, not a copy.
 *
 * @example
 * ```ts
 * const { x } = runDecoder(model.config, new InferenceOps(model, ids, opts), ids);
 * ```
 */
import type { LlamaConfig } from './config.js';
import type { LayerAttention, Run } from './attention-kinds.js';
import { anchorLastUse } from './attention-kinds.js';
import type { LayerKey } from './tensor-spec.js';

/** Keys of the matrices a layer multiplies by. */
export type MatrixKey = 'wq' | 'wk' | 'wv' | 'wo' | 'wGate' | 'wUp' | 'wDown';
export type BiasKey = 'bq' | 'bk' | 'bv';

/**
 * The computations a decoder needs over activations `T` (`(N, features)` rows, `N = B·T` tokens). Each
 * implementation resolves weights itself from `(layer, key)`; the decoder only says which.
 */
export interface DecoderOps<T> {
  embed(ids: Int32Array): T;
  rmsnorm(x: T, layer: number, key: Extract<LayerKey, 'inputNorm' | 'postNorm'>): T;
  /** `x · W[layer][key]ᵀ (+ bias)`. */
  linear(x: T, layer: number, key: MatrixKey, bias: BiasKey | null, inDim: number, outDim: number): T;
  /** A head-shared layer's q/k/v projection: each run of heads read from the layer that stores it. */
  projectRuns(x: T, runs: readonly Run[], key: 'wq' | 'wk' | 'wv', bias: BiasKey | null, heads: number): T;
  /** A head-shared layer's o_proj: `Σ_runs att[:, run heads] · Wo_src[:, run columns]ᵀ`. */
  outRuns(att: T, runs: readonly Run[]): T;
  rope(x: T, heads: number): T;
  /** Causal attention of `layer` (through the KV cache in inference); `probs` `(B, H, T, S)` when `keepProbs`. */
  attend(layer: number, q: T, k: T, v: T, keepProbs: boolean): { out: T; probs: T | null };
  /** An echo layer: `out = P_anchor[heads] · V_layer`. */
  echo(layer: number, probs: T, v: T, heads: Int32Array | null): T;
  /** Residual add (may update `x` in place and return it). */
  add(x: T, y: T): T;
  siluMul(gate: T, up: T): T;
  /** A copy of `x` that later in-place updates leave alone. */
  keep(x: T): T;
}

export interface DecoderOptions<T> {
  /** Return the residual stream after these layers. */
  hiddenLayers?: readonly number[];
  /**
   * Start at layer `layer` with residual stream `x` (its input there), instead of embedding `ids`; `probs` holds the
   * probabilities of anchors before `layer` that later echo layers read. For evaluating many variants of a model
   * that share their first layers (the plan search) without recomputing those layers.
   */
  from?: { layer: number; x: T; probs: ReadonlyMap<number, T> };
  /** Receives a copy of every layer's input residual stream, and every anchor's probabilities as they are computed. */
  onLayerInput?: (layer: number, x: T) => void;
}

export interface DecoderResult<T> {
  /** Residual stream after the last layer `(N, dim)`. */
  x: T;
  hidden: Map<number, T>;
}

/** Run every layer over `ids`. Anchor probabilities are kept exactly as long as a later echo layer needs them. */
export function runDecoder<T>(cfg: Readonly<LlamaConfig>, ops: DecoderOps<T>, ids: Int32Array, opts: DecoderOptions<T> = {}): DecoderResult<T> {
  const lastUse = anchorLastUse(cfg.attention);
  const start = opts.from?.layer ?? 0;
  const probsOf = new Map<number, T>();
  for (const [a, last] of lastUse) {
    const p = a < start && last >= start ? opts.from?.probs.get(a) : undefined;
    if (p !== undefined) probsOf.set(a, p);
  }
  const want = new Set(opts.hiddenLayers ?? []);
  const hidden = new Map<number, T>();
  let x = opts.from ? opts.from.x : ops.embed(ids);
  for (let l = start; l < cfg.numLayers; l++) {
    opts.onLayerInput?.(l, ops.keep(x));
    const xn = ops.rmsnorm(x, l, 'inputNorm');
    const att = attentionBlock(cfg, ops, l, cfg.attention[l], xn, probsOf, lastUse.has(l));
    x = ops.add(x, att);
    x = ops.add(x, mlpBlock(cfg, ops, l, ops.rmsnorm(x, l, 'postNorm')));
    for (const [a, last] of lastUse) if (last === l) probsOf.delete(a);
    if (want.has(l)) hidden.set(l, ops.keep(x));
  }
  return { x, hidden };
}

function attentionBlock<T>(
  cfg: Readonly<LlamaConfig>, ops: DecoderOps<T>, l: number, kind: LayerAttention, xn: T, probsOf: Map<number, T>, isAnchor: boolean,
): T {
  const { hiddenSize: dim, numHeads: H, numKvHeads: Hkv, headDim: D } = cfg;
  switch (kind.kind) {
    case 'echo': {
      const probs = probsOf.get(kind.anchor);
      if (probs === undefined) throw new Error(`layer ${l} echoes anchor ${kind.anchor}, whose probabilities were not kept`);
      const v = ops.linear(xn, l, 'wv', 'bv', dim, Hkv * D); // (N, Hkv·D)
      return ops.linear(ops.echo(l, probs, v, kind.heads), l, 'wo', null, H * D, dim);
    }
    case 'own': {
      const q = ops.rope(ops.linear(xn, l, 'wq', 'bq', dim, H * D), H); // (N, H·D)
      const k = ops.rope(ops.linear(xn, l, 'wk', 'bk', dim, Hkv * D), Hkv); // (N, Hkv·D)
      const v = ops.linear(xn, l, 'wv', 'bv', dim, Hkv * D);
      const r = ops.attend(l, q, k, v, isAnchor);
      if (isAnchor && r.probs !== null) probsOf.set(l, r.probs);
      return ops.linear(r.out, l, 'wo', null, H * D, dim);
    }
    case 'headShared': {
      const q = ops.rope(ops.projectRuns(xn, kind.qRuns, 'wq', 'bq', H), H);
      const k = ops.rope(ops.projectRuns(xn, kind.kvRuns, 'wk', 'bk', Hkv), Hkv);
      const v = ops.projectRuns(xn, kind.kvRuns, 'wv', 'bv', Hkv);
      const r = ops.attend(l, q, k, v, isAnchor);
      if (isAnchor && r.probs !== null) probsOf.set(l, r.probs);
      return ops.outRuns(r.out, kind.qRuns);
    }
  }
}

/** SwiGLU: `down(silu(gate(x)) · up(x))`. */
function mlpBlock<T>(cfg: Readonly<LlamaConfig>, ops: DecoderOps<T>, l: number, xn: T): T {
  const { hiddenSize: dim, intermediateSize: ff } = cfg;
  const gate = ops.linear(xn, l, 'wGate', null, dim, ff); // (N, F)
  const up = ops.linear(xn, l, 'wUp', null, dim, ff);
  return ops.linear(ops.siluMul(gate, up), l, 'wDown', null, ff, dim); // (N, dim)
}
