/**
 * Trainable forward pass of a {@link LlamaModel} or a shared-attention {@link SharedLlamaModel}, built from the
 * autograd ops; the same computation as `model.forward` (prefill, no KV cache), so its loss equals the inference
 * forward's.
 *
 * Student path: an anchor layer keeps its probabilities `P` as a Var; each of its shared layers computes
 * `P · V_l` with {@link OPS.probsTimesV}, whose backward accumulates `∂L/∂P` that the anchor's attention backward
 * then receives as `dProbsExtra`, so the anchor's q/k projections learn from every layer that reuses them.
 *
 * @example
 * ```ts
 * const params = modelParams(student);                  // Params wrap the model's own arrays
 * const tape = new Tape(student.backend);
 * const { logits } = forwardTrain(student, params, ids, { batch: 4, tape });
 * const loss = apply(tape, OPS.crossEntropy, { logits, targets, rows: ids.length, cols: V });
 * tape.backward(loss);                                   // params.list[i].grad filled
 * ```
 */
import { requireF32, type Weight } from '../tensor/weight.js';
import type { LlamaModel, LlamaLayerParams } from '../models/llama.js';
import { layerTensorNames } from '../models/llama.js';
import { SharedLlamaModel } from '../models/shared-llama.js';
import { ropeTables, type RopeTables } from '../models/rope.js';
import { ShapeError } from '../errors.js';
import { apply, Param, Tape, Var } from './tape.js';
import { OPS } from './ops/index.js';

/** The trainable view of one layer (q/k absent in shared layers; biases only for Qwen2-style models). */
export interface LayerParamVars {
  inputNorm: Param;
  wq?: Param;
  wk?: Param;
  wv: Param;
  wo: Param;
  bq?: Param;
  bk?: Param;
  bv?: Param;
  postNorm: Param;
  wGate: Param;
  wUp: Param;
  wDown: Param;
}

export interface ModelParams {
  embed: Param;
  layers: LayerParamVars[];
  norm: Param;
  /** The same Param as `embed` when the embeddings are tied. */
  lmHead: Param;
  /** Every distinct Param once, in a fixed order (embedding, layers, final norm, untied head). */
  list: Param[];
  /** Lookup by Hugging Face tensor name. */
  byName: Map<string, Param>;
}

/**
 * Wrap a model's parameter arrays as {@link Param}s (no copy: training updates the model in place). All start
 * trainable; freeze with `p.requiresGrad = false`.
 */
export function modelParams(model: LlamaModel): ModelParams {
  const c = model.config;
  const p = model.params;
  const { hiddenSize: d, numHeads: h, numKvHeads: kv, headDim: hd, intermediateSize: f, vocabSize: v } = c;
  const list: Param[] = [];
  const byName = new Map<string, Param>();
  const mk = (name: string, data: Weight, shape: number[]): Param => {
    const prm = new Param(name, requireF32(data, `training parameter ${name}`), shape);
    list.push(prm);
    byName.set(name, prm);
    return prm;
  };
  const opt = (name: string, data: Weight | undefined, shape: number[]): Param | undefined =>
    data && data.length ? mk(name, data, shape) : undefined;
  const embed = mk('model.embed_tokens.weight', p.embed, [v, d]);
  const layers = p.layers.map((lp: LlamaLayerParams, i: number): LayerParamVars => {
    const nm = layerTensorNames(i);
    return {
      inputNorm: mk(nm.inputNorm, lp.inputNorm, [d]),
      wq: opt(nm.wq, lp.wq, [h * hd, d]),
      wk: opt(nm.wk, lp.wk, [kv * hd, d]),
      bq: opt(nm.bq, lp.bq, [h * hd]),
      bk: opt(nm.bk, lp.bk, [kv * hd]),
      wv: mk(nm.wv, lp.wv, [kv * hd, d]),
      bv: opt(nm.bv, lp.bv, [kv * hd]),
      wo: mk(nm.wo, lp.wo, [d, h * hd]),
      postNorm: mk(nm.postNorm, lp.postNorm, [d]),
      wGate: mk(nm.wGate, lp.wGate, [f, d]),
      wUp: mk(nm.wUp, lp.wUp, [f, d]),
      wDown: mk(nm.wDown, lp.wDown, [d, f]),
    };
  });
  const norm = mk('model.norm.weight', p.norm, [d]);
  const lmHead = p.lmHead === p.embed ? embed : mk('lm_head.weight', p.lmHead, [v, d]);
  return { embed, layers, norm, lmHead, list, byName };
}

export interface TrainForwardOptions {
  /** Number of sequences in `ids` (each of length `ids.length / batch`). Default 1. */
  batch?: number;
  /** Record for backward; `null`/absent = inference mode (nothing recorded, no probabilities kept but anchors'). */
  tape?: Tape | null;
  /** Return the residual stream after these layers (`hidden.get(l)`, `(B·T, dim)`), e.g. for an MSE loss. */
  hiddenLayers?: readonly number[];
}

export interface TrainForwardResult {
  /** `(B·T, V)` */
  logits: Var;
  /** Residual stream after each requested layer. */
  hidden: Map<number, Var>;
}

const ropeCache = new WeakMap<LlamaModel, RopeTables>();

/** Forward pass over `ids` `(B, T)` (positions 0..T-1 in each sequence) through the autograd ops. */
export function forwardTrain(model: LlamaModel, params: ModelParams, ids: Int32Array, opts: TrainForwardOptions = {}): TrainForwardResult {
  const c = model.config;
  const be = model.backend;
  const tape = opts.tape ?? null;
  const batch = opts.batch ?? 1;
  if (!(Number.isInteger(batch) && batch > 0) || ids.length % batch !== 0 || ids.length === 0) {
    throw new ShapeError('forwardTrain', `${ids.length} ids cannot be split into ${batch} sequences`);
  }
  const t = ids.length / batch;
  if (t > c.maxPositions) throw new ShapeError('forwardTrain', `sequence length ${t} exceeds max_position_embeddings ${c.maxPositions}`);
  let rope = ropeCache.get(model);
  if (!rope) ropeCache.set(model, (rope = ropeTables(c, Math.max(1, c.maxPositions))));
  const n = batch * t;
  const { hiddenSize: dim, numHeads: nh, numKvHeads: nkv, headDim: hd, intermediateSize: ff, rmsNormEps: eps } = c;
  const pos = new Int32Array(n);
  for (let b = 0; b < batch; b++) for (let i = 0; i < t; i++) pos[b * t + i] = i;

  const anchorOf = model instanceof SharedLlamaModel ? model.anchorOf : new Int32Array(c.numLayers).fill(-1);
  const isAnchor = new Set<number>();
  for (const a of anchorOf) if (a >= 0) isAnchor.add(a);
  const probsOf = new Map<number, Var>();
  const want = new Set(opts.hiddenLayers ?? []);
  const hidden = new Map<number, Var>();
  const shape = { batch, t, nHeads: nh, nKvHeads: nkv, headDim: hd };

  let x = apply(tape, OPS.embedding, { table: params.embed, ids, vocab: c.vocabSize, dim }, be);
  for (let l = 0; l < c.numLayers; l++) {
    const lp = params.layers[l];
    const xn = apply(tape, OPS.rmsnorm, { x, w: lp.inputNorm, rows: n, dim, eps }, be);
    const v = apply(tape, OPS.linear, { x: xn, w: lp.wv, b: lp.bv, rows: n, inDim: dim, outDim: nkv * hd }, be);
    let att: Var;
    const anchor = anchorOf[l];
    if (anchor >= 0) {
      const probs = probsOf.get(anchor);
      if (!probs) throw new ShapeError('forwardTrain', `layer ${l} needs the probabilities of anchor ${anchor}, which were not computed`);
      att = apply(tape, OPS.probsTimesV, { probs, v, ...shape }, be);
    } else {
      if (!lp.wq || !lp.wk) throw new ShapeError('forwardTrain', `layer ${l} has no q/k projection but is not a shared layer`);
      const q0 = apply(tape, OPS.linear, { x: xn, w: lp.wq, b: lp.bq, rows: n, inDim: dim, outDim: nh * hd }, be);
      const k0 = apply(tape, OPS.linear, { x: xn, w: lp.wk, b: lp.bk, rows: n, inDim: dim, outDim: nkv * hd }, be);
      const rargs = { pos, cos: rope.cos, sin: rope.sin, nTok: n, headDim: hd, style: c.ropeStyle };
      const q = apply(tape, OPS.rope, { x: q0, nHeads: nh, ...rargs }, be);
      const k = apply(tape, OPS.rope, { x: k0, nHeads: nkv, ...rargs }, be);
      const r = apply(tape, OPS.attention, { q, k, v, ...shape, scale: 1 / Math.sqrt(hd), keepProbs: isAnchor.has(l) }, be);
      if (isAnchor.has(l)) probsOf.set(l, r.probs);
      att = r.out;
    }
    const o = apply(tape, OPS.linear, { x: att, w: lp.wo, rows: n, inDim: nh * hd, outDim: dim }, be);
    x = apply(tape, OPS.add, { a: x, b: o }, be);
    const xn2 = apply(tape, OPS.rmsnorm, { x, w: lp.postNorm, rows: n, dim, eps }, be);
    const gate = apply(tape, OPS.linear, { x: xn2, w: lp.wGate, rows: n, inDim: dim, outDim: ff }, be);
    const up = apply(tape, OPS.linear, { x: xn2, w: lp.wUp, rows: n, inDim: dim, outDim: ff }, be);
    const act = apply(tape, OPS.siluMul, { gate, up }, be);
    const down = apply(tape, OPS.linear, { x: act, w: lp.wDown, rows: n, inDim: ff, outDim: dim }, be);
    x = apply(tape, OPS.add, { a: x, b: down }, be);
    if (want.has(l)) hidden.set(l, x);
    if (!tape) for (const [a] of probsOf) if (lastUser(anchorOf, a) <= l) probsOf.delete(a); // free early in inference
  }
  const xf = apply(tape, OPS.rmsnorm, { x, w: params.norm, rows: n, dim, eps }, be);
  const logits = apply(tape, OPS.linear, { x: xf, w: params.lmHead, rows: n, inDim: dim, outDim: c.vocabSize }, be);
  return { logits, hidden };
}

function lastUser(anchorOf: Int32Array, a: number): number {
  let last = a;
  for (let l = 0; l < anchorOf.length; l++) if (anchorOf[l] === a) last = l;
  return last;
}
