/**
 * The one decoder of every family (Llama, Mistral, Qwen2/3, Gemma 3): embedding (scaled where the family says), then
 * per layer `x += attn(norm(x))`, `x += mlp(norm(x))` — with Gemma's norms around both sublayers' outputs — where each
 * layer's attention follows its kind (`own`, `echo`, `headShared`, `dropped`; see `attention-kinds.ts`) and the family's
 * fields of the config (q/k norms, activation, window, scale). It is written once over {@link DecoderOps}: inference
 * runs it on plain arrays with a KV cache (`inference-ops.ts`), training on the autograd tape (`tape-ops.ts`), and
 * tracing it writes a step program (`program-ops.ts`), so the trainable forward is this decoder, not a copy.
 *
 * @example
 * ```ts
 * const { x } = runDecoder(model.config, new InferenceOps(model, ids, opts), ids);
 * ```
 */
import type { LlamaConfig } from './config.js';
import type { LayerAttention, Run } from './attention-kinds.js';
import { anchorLastUse } from './attention-kinds.js';
import type { NormKey } from './tensor-spec.js';

/** Keys of the matrices a layer multiplies by. */
export type MatrixKey = 'wq' | 'wk' | 'wv' | 'wo' | 'wGate' | 'wUp' | 'wDown';
export type BiasKey = 'bq' | 'bk' | 'bv';

/**
 * The computations a decoder needs over activations `T` (`(N, features)` rows, `N = B·T` tokens). Each
 * implementation resolves weights itself from `(layer, key)` (through `layer-compute.ts`); the decoder only says which.
 */
export interface DecoderOps<T> {
  embed(ids: Int32Array): T;
  /** `x · alpha` (may update `x` in place and return it). */
  scale(x: T, alpha: number): T;
  /**
   * RMSNorm with `layer`'s weight `key`, scaling by `w + cfg.normOffset`: over the hidden size, or per head over
   * `headDim` for `qNorm` / `kNorm` (see `normShape`). May write in place (head norms) or into scratch.
   */
  norm(x: T, layer: number, key: NormKey): T;
  /** `x · W[layer][key]ᵀ (+ bias)`. */
  linear(x: T, layer: number, key: MatrixKey, bias: BiasKey | null, inDim: number, outDim: number): T;
  /** A head-shared layer's q/k/v projection: each run of heads read from the layer that stores it. */
  projectRuns(x: T, runs: readonly Run[], key: 'wq' | 'wk' | 'wv', bias: BiasKey | null, heads: number): T;
  /** A head-shared layer's o_proj: `Σ_runs att[:, run heads] · Wo_src[:, run columns]ᵀ`. */
  outRuns(att: T, runs: readonly Run[]): T;
  /** RoPE with `layer`'s table (see `layerRope`), in place. */
  rope(x: T, layer: number, heads: number): T;
  /**
   * Causal attention of `layer` (through the KV cache in inference), scaled by `cfg.attnScale`, within
   * `cfg.layerWindows[layer]` when it slides; `probs` `(B, H, T, S)` when `keepProbs`.
   */
  attend(layer: number, q: T, k: T, v: T, keepProbs: boolean): { out: T; probs: T | null };
  /** An echo layer: `out = P_anchor[heads] · V_layer`. */
  echo(layer: number, probs: T, v: T, heads: Int32Array | null): T;
  /** Residual add (may update `x` in place and return it). */
  add(x: T, y: T): T;
  /** The gated MLP's `act(gate) · up` with `cfg.hiddenAct` (may update `gate` in place and return it). */
  gatedAct(gate: T, up: T): T;
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
  let x = opts.from ? opts.from.x : embed(cfg, ops, ids);
  for (let l = start; l < cfg.numLayers; l++) {
    opts.onLayerInput?.(l, ops.keep(x));
    const kind = cfg.attention[l];
    if (kind.kind !== 'dropped') {
      const att = attentionBlock(cfg, ops, l, kind, ops.norm(x, l, 'inputNorm'), probsOf, lastUse.has(l));
      x = ops.add(x, cfg.sandwichNorms ? ops.norm(att, l, 'postNorm') : att);
    }
    const y = mlpBlock(cfg, ops, l, ops.norm(x, l, cfg.sandwichNorms ? 'preFfnNorm' : 'postNorm'));
    x = ops.add(x, cfg.sandwichNorms ? ops.norm(y, l, 'postFfnNorm') : y);
    for (const [a, last] of lastUse) if (last === l) probsOf.delete(a);
    if (want.has(l)) hidden.set(l, ops.keep(x));
  }
  return { x, hidden };
}

function embed<T>(cfg: Readonly<LlamaConfig>, ops: DecoderOps<T>, ids: Int32Array): T {
  const x = ops.embed(ids); // (N, dim)
  return cfg.embedScale === 1 ? x : ops.scale(x, cfg.embedScale);
}

/** The attention of a layer that has one (every kind but `dropped`). */
function attentionBlock<T>(
  cfg: Readonly<LlamaConfig>, ops: DecoderOps<T>, l: number, kind: Exclude<LayerAttention, { kind: 'dropped' }>, xn: T, probsOf: Map<number, T>, isAnchor: boolean,
): T {
  const { hiddenSize: dim, numHeads: H, numKvHeads: Hkv, headDim: D } = cfg;
  // Queries and keys: per-head norm where the family has one (Qwen3, Gemma 3), then RoPE.
  const qk = (x: T, key: 'qNorm' | 'kNorm', heads: number) => ops.rope(cfg.qkNorm ? ops.norm(x, l, key) : x, l, heads);
  switch (kind.kind) {
    case 'echo': {
      const probs = probsOf.get(kind.anchor);
      if (probs === undefined) throw new Error(`layer ${l} echoes anchor ${kind.anchor}, whose probabilities were not kept`);
      const v = ops.linear(xn, l, 'wv', 'bv', dim, Hkv * D); // (N, Hkv·D)
      return ops.linear(ops.echo(l, probs, v, kind.heads), l, 'wo', null, H * D, dim);
    }
    case 'own': {
      const q = qk(ops.linear(xn, l, 'wq', 'bq', dim, H * D), 'qNorm', H); // (N, H·D)
      const k = qk(ops.linear(xn, l, 'wk', 'bk', dim, Hkv * D), 'kNorm', Hkv); // (N, Hkv·D)
      const v = ops.linear(xn, l, 'wv', 'bv', dim, Hkv * D);
      const r = ops.attend(l, q, k, v, isAnchor);
      if (isAnchor && r.probs !== null) probsOf.set(l, r.probs);
      return ops.linear(r.out, l, 'wo', null, H * D, dim);
    }
    case 'headShared': {
      const q = qk(ops.projectRuns(xn, kind.qRuns, 'wq', 'bq', H), 'qNorm', H);
      const k = qk(ops.projectRuns(xn, kind.kvRuns, 'wk', 'bk', Hkv), 'kNorm', Hkv);
      const v = ops.projectRuns(xn, kind.kvRuns, 'wv', 'bv', Hkv);
      const r = ops.attend(l, q, k, v, isAnchor);
      if (isAnchor && r.probs !== null) probsOf.set(l, r.probs);
      return ops.outRuns(r.out, kind.qRuns);
    }
  }
}

/** Gated MLP: `down(act(gate(x)) · up(x))` (SwiGLU, or GeGLU for Gemma). */
function mlpBlock<T>(cfg: Readonly<LlamaConfig>, ops: DecoderOps<T>, l: number, xn: T): T {
  const { hiddenSize: dim, intermediateSize: ff } = cfg;
  const gate = ops.linear(xn, l, 'wGate', null, dim, ff); // (N, F)
  const up = ops.linear(xn, l, 'wUp', null, dim, ff);
  return ops.linear(ops.gatedAct(gate, up), l, 'wDown', null, ff, dim); // (N, dim)
}
