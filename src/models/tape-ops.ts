/**
 * The trainable forward: the same {@link runDecoder} as inference, run over autograd {@link Var}s with
 * {@link TapeOps}, so its loss equals the inference forward's (prefill, no KV cache) and every layer kind trains.
 *
 * An anchor's probabilities `P` are a Var; each echo layer computes `P[heads] · V_l` (`gatherHeads` then
 * `probsTimesV`), whose backward accumulates `∂L/∂P`, which the anchor's attention backward then receives as
 * `dProbsExtra`: the anchor's q/k learn from every layer that reuses them. Head-shared layers read views of the
 * storing layer's Params (`linearRuns`), so a shared group's weights get the gradients of every layer that uses them.
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
import type { Backend } from '../backend/backend.js';
import { apply, Param, type OpDef, type Tape, type Var } from '../autograd/tape.js';
import { OPS } from '../autograd/ops/index.js';
import type { LinearRunVar } from '../autograd/ops/linear.js';
import { requireF32 } from '../tensor/weight.js';
import { ShapeError } from '../errors.js';
import type { LlamaModel } from './llama.js';
import type { LlamaConfig } from './config.js';
import { tensorSpecs, type LayerKey, type NormKey } from './tensor-spec.js';
import { paramOf } from './params.js';
import { runDecoder, type BiasKey, type DecoderOps, type MatrixKey } from './decoder.js';
import type { Run } from './attention-kinds.js';
import { layerRope, layerTensor, normShape, outputBlocks, projectionBlocks, type ModelRopes, type RunBlock } from './layer-compute.js';

export interface ModelParams {
  embed: Param;
  /** Per layer, the Params it holds (by role; absent where its kind has no such tensor). */
  layers: Partial<Record<LayerKey, Param>>[];
  norm: Param;
  /** The same Param as `embed` when the embeddings are tied. */
  lmHead: Param;
  /** Every distinct Param once, in table order (embedding, layers, final norm, untied head). */
  list: Param[];
  /** Lookup by Hugging Face tensor name. */
  byName: Map<string, Param>;
}

/**
 * Wrap a model's parameter arrays as {@link Param}s (no copy: training updates the model in place), following the
 * tensor table. All start trainable; freeze with `p.requiresGrad = false`.
 */
export function modelParams(model: LlamaModel): ModelParams {
  const list: Param[] = [];
  const byName = new Map<string, Param>();
  const layers: Partial<Record<LayerKey, Param>>[] = model.params.layers.map(() => ({}));
  const globals: Partial<Record<'embed' | 'norm' | 'lmHead', Param>> = {};
  for (const spec of tensorSpecs(model.config)) {
    const data = paramOf(model.params, spec);
    if (!data) throw new ShapeError('modelParams', `the model holds no '${spec.name}'`);
    const p = new Param(spec.name, requireF32(data, `training parameter ${spec.name}`), spec.shape);
    list.push(p);
    byName.set(spec.name, p);
    if (spec.layer >= 0) layers[spec.layer][spec.key as LayerKey] = p;
    else globals[spec.key as 'embed' | 'norm' | 'lmHead'] = p;
  }
  const embed = globals.embed!;
  return { embed, layers, norm: globals.norm!, lmHead: globals.lmHead ?? embed, list, byName };
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

/** Forward pass over `ids` `(B, T)` (positions 0..T-1 in each sequence) through the autograd ops. */
export function forwardTrain(model: LlamaModel, params: ModelParams, ids: Int32Array, opts: TrainForwardOptions = {}): TrainForwardResult {
  const c = model.config;
  const batch = opts.batch ?? 1;
  if (!(Number.isInteger(batch) && batch > 0) || ids.length % batch !== 0 || ids.length === 0) {
    throw new ShapeError('forwardTrain', `${ids.length} ids cannot be split into ${batch} sequences`);
  }
  const t = ids.length / batch;
  if (t > c.maxPositions) throw new ShapeError('forwardTrain', `sequence length ${t} exceeds max_position_embeddings ${c.maxPositions}`);
  model.ensurePositions(t);
  const ops = new TapeOps(c, model.backend, model, params, opts.tape ?? null, batch, t);
  const { x, hidden } = runDecoder(c, ops, ids, { hiddenLayers: opts.hiddenLayers });
  const xf = ops.apply(OPS.rmsnorm, { x, w: params.norm, rows: batch * t, dim: c.hiddenSize, eps: c.rmsNormEps, wOffset: c.normOffset });
  const logits = ops.apply(OPS.linear, { x: xf, w: params.lmHead, rows: batch * t, inDim: c.hiddenSize, outDim: c.vocabSize });
  return { logits: c.finalLogitSoftcap === null ? logits : ops.apply(OPS.softcap, { x: logits, cap: c.finalLogitSoftcap }), hidden };
}

/** {@link DecoderOps} over Vars: every op goes through `apply`, so it is recorded when a tape is given. */
export class TapeOps implements DecoderOps<Var> {
  private readonly n: number;
  private readonly pos: Int32Array;

  constructor(
    private readonly c: Readonly<LlamaConfig>, private readonly be: Backend, private readonly ropes: ModelRopes,
    private readonly params: ModelParams, private readonly tape: Tape | null, private readonly batch: number, private readonly t: number,
  ) {
    this.n = batch * t;
    this.pos = new Int32Array(this.n);
    for (let b = 0; b < batch; b++) for (let i = 0; i < t; i++) this.pos[b * t + i] = i;
  }

  apply<A extends object, O extends Var | { readonly [k: string]: Var }, S>(op: OpDef<A, O, S>, args: A): O {
    return apply(this.tape, op, args, this.be);
  }

  private p(l: number, key: LayerKey): Param {
    return layerTensor(this.c, this.params.layers, l, key, 'forwardTrain');
  }

  embed(ids: Int32Array): Var {
    return this.apply(OPS.embedding, { table: this.params.embed, ids, vocab: this.c.vocabSize, dim: this.c.hiddenSize });
  }

  scale(x: Var, alpha: number): Var {
    return this.apply(OPS.scale, { x, alpha });
  }

  norm(x: Var, l: number, key: NormKey): Var {
    const { rows, dim } = normShape(this.c, key, this.n);
    return this.apply(OPS.rmsnorm, { x, w: this.p(l, key), rows, dim, eps: this.c.rmsNormEps, wOffset: this.c.normOffset });
  }

  linear(x: Var, l: number, key: MatrixKey, bias: BiasKey | null, inDim: number, outDim: number): Var {
    const b = bias ? this.params.layers[l][bias] : undefined;
    return this.apply(OPS.linear, { x, w: this.p(l, key), b, rows: this.n, inDim, outDim });
  }

  projectRuns(x: Var, runs: readonly Run[], key: 'wq' | 'wk' | 'wv', bias: BiasKey | null, heads: number): Var {
    const { hiddenSize: dim, headDim: D } = this.c;
    const rv = varRuns(projectionBlocks(this.c, this.params.layers, runs, key, bias, 'forwardTrain'));
    return this.apply(OPS.linearRuns, { x, runs: rv, rows: this.n, xCols: dim, outDim: heads * D });
  }

  outRuns(att: Var, runs: readonly Run[]): Var {
    const { hiddenSize: dim, numHeads: H, headDim: D } = this.c;
    const rv = varRuns(outputBlocks(this.c, this.params.layers, runs, 'forwardTrain'));
    return this.apply(OPS.linearRuns, { x: att, runs: rv, rows: this.n, xCols: H * D, outDim: dim });
  }

  rope(x: Var, l: number, heads: number): Var {
    const { cos, sin } = layerRope(this.c, this.ropes, l);
    return this.apply(OPS.rope, { x, nHeads: heads, pos: this.pos, cos, sin, nTok: this.n, headDim: this.c.headDim, style: this.c.ropeStyle });
  }

  private get shape() {
    return { batch: this.batch, t: this.t, nHeads: this.c.numHeads, nKvHeads: this.c.numKvHeads, headDim: this.c.headDim };
  }

  attend(l: number, q: Var, k: Var, v: Var, keepProbs: boolean): { out: Var; probs: Var | null } {
    const r = this.apply(OPS.attention, { q, k, v, ...this.shape, scale: this.c.attnScale, window: this.c.layerWindows[l], keepProbs });
    return { out: r.out, probs: keepProbs ? r.probs : null };
  }

  echo(_l: number, probs: Var, v: Var, heads: Int32Array | null): Var {
    const p = heads ? this.apply(OPS.gatherHeads, { probs, heads, batch: this.batch, rows: this.t * this.t }) : probs;
    return this.apply(OPS.probsTimesV, { probs: p, v, ...this.shape });
  }

  add(x: Var, y: Var): Var {
    return this.apply(OPS.add, { a: x, b: y });
  }

  gatedAct(gate: Var, up: Var): Var {
    return this.apply(this.c.hiddenAct === 'silu' ? OPS.siluMul : OPS.geluTanhMul, { gate, up });
  }

  keep(x: Var): Var {
    return x;
  }
}

/** Head-run blocks as the `linearRuns` op takes them (the bias under `b`). */
function varRuns(blocks: readonly RunBlock<Param>[]): LinearRunVar[] {
  return blocks.map(({ bias, ...r }) => ({ ...r, b: bias }));
}
