/**
 * PostShare (arXiv 2402.11819): choose the pairs as DirectShare does, post-train the dense model with a penalty that
 * pulls every matched unit's weights towards its source's, then share.
 *
 * `loss = LM loss + λ · penalty`, with the penalty (the op {@link headSharePenalty}) a mean over matched pairs:
 * - `fro` (default, the paper's): `‖ΔW_q‖_F + ‖ΔW_k‖_F + ‖ΔW_v‖_F`, `ΔW` the difference of the unit's rows and its
 *   source's (a unit is a K/V group; see `models/head-map.ts`);
 * - `mse`: the mean squared element difference over the same q, k and v slices.
 * With `includeO`, the unit's o_proj columns enter the penalty the same way (they are shared too).
 *
 * Training uses the distillation pieces: `AdamW`, the warmup + cosine schedule `lrAt`, `clipGradNorm`, and the
 * atomic training checkpoints (`saveCheckpoint` / `loadCheckpoint`, resume with the same data order).
 *
 * @example
 * ```ts
 * const res = await postShare(teacher, tokenizer, { shareRate: 0.3, data: ['corpus.txt'], steps: 200, lambda: 0.05 });
 * saveHeadSharedModel('out/ps30', res.model, tokenizerPath);
 * ```
 */
import type { Backend } from '../backend/backend.js';
import { LlamaModel, type LlamaLayerParams } from '../models/llama.js';
import { HeadSharedLlamaModel } from '../models/headshared-llama.js';
import type { HeadMap } from '../models/head-map.js';
import type { LlamaConfig } from '../models/config.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { accumulate, apply, defineOp, Param, Tape, Var } from '../autograd/tape.js';
import { OPS } from '../autograd/ops/index.js';
import { forwardTrain, modelParams } from '../autograd/model.js';
import { AdamW, clipGradNorm, lrAt } from '../distill/optim.js';
import { CHECKPOINT_FORMAT, loadCheckpoint, readCheckpointState, saveCheckpoint, type TrainState, CheckpointStateError } from '../distill/checkpoint.js';
import { checkVocab, textSequences, type TokenDataset } from '../distill/data.js';
import { Rng32 } from '../distill/rng.js';
import { OptionError } from '../errors.js';
import {
  headShareReport, headSimilarity, selectHeadSharing, validateHeadShareOptions, type HeadShareReport, type HeadShareStrategy, type HeadSelection,
} from './headshare.js';
import { requireF32 } from '../tensor/weight.js';

export type PenaltyKind = 'fro' | 'mse';

interface PenaltyArgs {
  /** Per layer: its q/k/v (and o) Params (only layers named in `pairs` are read). */
  wq: readonly Param[];
  wk: readonly Param[];
  wv: readonly Param[];
  wo: readonly Param[];
  map: HeadMap;
  dims: Pick<LlamaConfig, 'numHeads' | 'numKvHeads' | 'headDim' | 'hiddenSize'>;
  kind: PenaltyKind;
  includeO: boolean;
}

/** Strided slice of a flat array: `rows` rows of `len` elements, `stride` apart, from `off`. */
interface Slice {
  off: number;
  rows: number;
  len: number;
  stride: number;
}

function unitSlices(d: PenaltyArgs['dims'], g: number): { q: Slice; kv: Slice; o: Slice } {
  const { numHeads: H, numKvHeads: U, headDim: D, hiddenSize: dim } = d;
  const G = H / U;
  return {
    q: { off: g * G * D * dim, rows: 1, len: G * D * dim, stride: 0 },
    kv: { off: g * D * dim, rows: 1, len: D * dim, stride: 0 },
    o: { off: g * G * D, rows: dim, len: G * D, stride: H * D },
  };
}

type Part = { a: Param; b: Param; sa: Slice; sb: Slice };

function pairParts(s: PenaltyArgs, e: HeadMap['shared'][number]): Part[] {
  const u = unitSlices(s.dims, e.group);
  const v = unitSlices(s.dims, e.source_group);
  const [l, m] = [e.layer, e.source_layer];
  const parts: Part[] = [
    { a: s.wq[l], b: s.wq[m], sa: u.q, sb: v.q },
    { a: s.wk[l], b: s.wk[m], sa: u.kv, sb: v.kv },
    { a: s.wv[l], b: s.wv[m], sa: u.kv, sb: v.kv },
  ];
  if (s.includeO) parts.push({ a: s.wo[l], b: s.wo[m], sa: u.o, sb: v.o });
  return parts;
}

/** Σ (a − b)² over a pair of equally shaped slices, and their element count. */
function sqDiff(p: Part): { sq: number; n: number } {
  let sq = 0;
  const { a, b, sa, sb } = p;
  for (let r = 0; r < sa.rows; r++) {
    const oa = sa.off + r * sa.stride;
    const ob = sb.off + r * sb.stride;
    for (let i = 0; i < sa.len; i++) {
      const x = a.data[oa + i] - b.data[ob + i];
      sq += x * x;
    }
  }
  return { sq, n: sa.rows * sa.len };
}

/** `grad(a) += k·(a − b)`, `grad(b) −= k·(a − b)` over the slices (a and b may be the same Param). */
function addDiffGrad(be: Backend, p: Part, k: number): void {
  const { a, b, sa, sb } = p;
  const ga = a.requiresGrad ? new Float32Array(a.data.length) : null;
  const gb = b.requiresGrad ? (a === b ? ga : new Float32Array(b.data.length)) : null;
  for (let r = 0; r < sa.rows; r++) {
    const oa = sa.off + r * sa.stride;
    const ob = sb.off + r * sb.stride;
    for (let i = 0; i < sa.len; i++) {
      const x = k * (a.data[oa + i] - b.data[ob + i]);
      if (ga) ga[oa + i] += x;
      if (gb) gb[ob + i] -= x;
    }
  }
  if (ga) accumulate(be, a, ga, true);
  if (gb && gb !== ga) accumulate(be, b, gb, true);
}

/**
 * The PostShare penalty as an autograd op: a scalar, mean over the map's pairs of `Σ_parts ‖ΔW‖_F` (`fro`) or of the
 * mean squared difference over the concatenated parts (`mse`). Its backward is exact: `∂‖Δ‖_F/∂W_unit = Δ/‖Δ‖_F`
 * (0 where `Δ = 0`), the source gets the negative; for `mse`, `2Δ/n`.
 */
export const headSharePenalty = defineOp<PenaltyArgs, Var, { args: PenaltyArgs; y: Var }>({
  name: 'headSharePenalty',
  forward(_be, args) {
    const pairs = args.map.shared;
    let total = 0;
    for (const e of pairs) {
      const parts = pairParts(args, e);
      if (args.kind === 'fro') for (const p of parts) total += Math.sqrt(sqDiff(p).sq);
      else {
        let sq = 0;
        let n = 0;
        for (const p of parts) {
          const r = sqDiff(p);
          sq += r.sq;
          n += r.n;
        }
        total += n ? sq / n : 0;
      }
    }
    const y = new Var(Float32Array.of(pairs.length ? total / pairs.length : 0));
    return { out: y, saved: { args, y } };
  },
  backward(be, s) {
    const dy = s.y.grad;
    const pairs = s.args.map.shared;
    if (!dy || !pairs.length) return;
    const scale = dy[0] / pairs.length;
    for (const e of pairs) {
      const parts = pairParts(s.args, e);
      if (s.args.kind === 'fro') {
        for (const p of parts) {
          const norm = Math.sqrt(sqDiff(p).sq);
          if (norm > 0) addDiffGrad(be, p, scale / norm);
        }
      } else {
        const n = parts.reduce((t, p) => t + p.sa.rows * p.sa.len, 0);
        for (const p of parts) addDiffGrad(be, p, (2 * scale) / n);
      }
    }
  },
});

/** Penalty value of a model's current weights under `map` (no gradient). */
export function headSharePenaltyValue(model: LlamaModel, map: HeadMap, kind: PenaltyKind = 'fro', includeO = false): number {
  const params = modelParams(model);
  const pick = (k: 'wq' | 'wk' | 'wv' | 'wo') => params.layers.map((lp) => lp[k] as Param);
  return apply(null, headSharePenalty, { wq: pick('wq'), wk: pick('wk'), wv: pick('wv'), wo: pick('wo'), map, dims: model.config, kind, includeO }, model.backend).data[0];
}

export interface PostShareOptions {
  shareRate: number;
  strategy?: HeadShareStrategy;
  /** Text sources for the LM loss (`.txt`, folder, `.jsonl`, `.parquet`), read in order. */
  data?: readonly string[];
  /** Or ready token sequences of `seqLen + 1` tokens (e.g. teacher samples packed with `packDocuments`). */
  dataset?: TokenDataset;
  /** Optimizer steps (total, counting resumed ones). */
  steps: number;
  /** Penalty weight λ. Default 0.1. */
  lambda?: number;
  penalty?: PenaltyKind;
  /** Also pull the o_proj columns together. Default false (the paper's q/k/v). */
  includeO?: boolean;
  seqLen?: number;
  batch?: number;
  lr?: number;
  minLr?: number;
  warmup?: number;
  clip?: number;
  weightDecay?: number;
  seed?: number;
  /** Training checkpoint file (written every `checkpointEvery` steps and at the end). */
  checkpoint?: string;
  checkpointEvery?: number;
  /** Continue from `checkpoint` if it exists (same options and data required). */
  resume?: boolean;
  onStep?: (s: { step: number; steps: number; loss: number; lm: number; penalty: number; lr: number; gradNorm: number }) => void;
}

export interface PostShareResult {
  model: HeadSharedLlamaModel;
  map: HeadMap;
  /** The post-trained dense model (before sharing). */
  trained: LlamaModel;
  report: HeadShareReport;
  penaltyBefore: number;
  penaltyAfter: number;
  steps: number;
}

function check(flag: string, v: number, ok: boolean, want: string): void {
  if (!ok) throw new OptionError(flag, `expected ${want}, got ${v}`);
}

/** A copy of `m` with its own arrays (tied embeddings stay tied). */
function cloneModel(m: LlamaModel): LlamaModel {
  const p = m.params;
  const embed = requireF32(p.embed, 'PostShare').slice();
  const layers = p.layers.map((lp): LlamaLayerParams => {
    const out = { ...lp } as unknown as Record<string, Float32Array | undefined>;
    for (const [k, v] of Object.entries(lp)) out[k] = v instanceof Float32Array ? v.slice() : v;
    return out as unknown as LlamaLayerParams;
  });
  return new LlamaModel(m.config, { embed, layers, norm: p.norm.slice(), lmHead: p.lmHead === p.embed ? embed : requireF32(p.lmHead, 'PostShare').slice() }, m.backend);
}

/** PostShare: select pairs on the original weights, post-train a copy with the penalty, then share (original untouched). */
export async function postShare(original: LlamaModel, tokenizer: Tokenizer, opts: PostShareOptions): Promise<PostShareResult> {
  const o = validateHeadShareOptions(opts, original.config);
  const lambda = opts.lambda ?? 0.1;
  const kind = opts.penalty ?? 'fro';
  const seqLen = opts.seqLen ?? Math.min(256, original.config.maxPositions);
  const batch = opts.batch ?? 8;
  const lr = opts.lr ?? 1e-3;
  const minLr = opts.minLr ?? lr / 10;
  const warmup = opts.warmup ?? Math.min(20, Math.floor(opts.steps / 10));
  const clip = opts.clip ?? 1;
  const every = opts.checkpointEvery ?? 50;
  check('--steps', opts.steps, Number.isInteger(opts.steps) && opts.steps >= 1, 'an integer >= 1');
  check('--lambda', lambda, Number.isFinite(lambda) && lambda >= 0, 'a number >= 0');
  if (kind !== 'fro' && kind !== 'mse') throw new OptionError('--penalty', `expected fro or mse, got ${JSON.stringify(kind)}`);
  check('--seq-len', seqLen, Number.isInteger(seqLen) && seqLen >= 1 && seqLen <= original.config.maxPositions, `an integer in [1, ${original.config.maxPositions}]`);
  check('--batch', batch, Number.isInteger(batch) && batch >= 1, 'an integer >= 1');
  check('--lr', lr, Number.isFinite(lr) && lr > 0, 'a number > 0');
  check('--min-lr', minLr, Number.isFinite(minLr) && minLr >= 0 && minLr <= lr, `a number in [0, ${lr}]`);
  check('--warmup', warmup, Number.isInteger(warmup) && warmup >= 0 && warmup < opts.steps, `an integer in [0, ${opts.steps - 1}]`);
  if (!opts.dataset && !opts.data?.length) throw new OptionError('--data', 'PostShare needs training text');

  const similarity = headSimilarity(original, o.strategy);
  const selection: HeadSelection = selectHeadSharing(similarity, o.count, original.config);
  const map = selection.map;
  const model = cloneModel(original);
  const be = model.backend;
  const ds = opts.dataset ?? (await textSequences(tokenizer, opts.data!, { seqLen, maxTokens: Math.max(batch * (seqLen + 1) * opts.steps, 1 << 16) }));
  if (ds.sequences.some((q) => q.length !== seqLen + 1)) throw new OptionError('--seq-len', `the dataset's sequences are not ${seqLen + 1} tokens long`);
  if (ds.sequences.length < batch) throw new OptionError('--data', `${ds.description} gives ${ds.sequences.length} sequences of ${seqLen + 1} tokens, fewer than one batch of ${batch}`);
  checkVocab(ds, model.config.vocabSize, '--data');

  const params = modelParams(model);
  const pick = (k: 'wq' | 'wk' | 'wv' | 'wo') => params.layers.map((lp) => lp[k] as Param);
  const penArgs = { wq: pick('wq'), wk: pick('wk'), wv: pick('wv'), wo: pick('wo'), map, dims: model.config, kind, includeO: opts.includeO ?? false };
  const penaltyBefore = apply(null, headSharePenalty, penArgs, be).data[0];
  const opt = new AdamW(params.list, { weightDecay: opts.weightDecay ?? 0 });
  const fp = {
    method: 'postshare', shareRate: o.shareRate, strategy: o.strategy, lambda, kind, includeO: penArgs.includeO, seqLen, batch, lr, minLr,
    warmup, steps: opts.steps, seed: opts.seed ?? 1, data: ds.fingerprint, pairs: map.shared.map((e) => [e.layer, e.group, e.source_layer, e.source_group]),
  };
  const rng = new Rng32(opts.seed ?? 1);
  let state: TrainState = {
    format: CHECKPOINT_FORMAT, version: 1, step: 0, adamT: 0, epoch: 0, cursor: 0, rng: rng.state, epochRng: rng.state, tokens: 0, trainMs: 0, fingerprint: fp,
  };
  if (opts.resume && opts.checkpoint && readCheckpointState(opts.checkpoint)) {
    const st = loadCheckpoint(opts.checkpoint, params.list, opt);
    if (JSON.stringify(st.fingerprint) !== JSON.stringify(fp)) {
      throw new CheckpointStateError(opts.checkpoint, 'was written by a PostShare run with other options or data; remove it or run without --resume');
    }
    state = st;
  }
  const epochRng = new Rng32(state.epochRng);
  let order = epochRng.permutation(ds.sequences.length);
  const V = model.config.vocabSize;
  const ids = new Int32Array(batch * seqLen);
  const targets = new Int32Array(batch * seqLen);
  const t0 = performance.now() - state.trainMs;
  while (state.step < opts.steps) {
    for (let b = 0; b < batch; b++) {
      if (state.cursor >= order.length) {
        state.epoch++;
        state.cursor = 0;
        state.epochRng = epochRng.state;
        order = epochRng.permutation(ds.sequences.length);
      }
      const s = ds.sequences[order[state.cursor++]];
      ids.set(s.subarray(0, seqLen), b * seqLen);
      targets.set(s.subarray(1, seqLen + 1), b * seqLen);
    }
    const tape = new Tape(be);
    const { logits } = forwardTrain(model, params, ids, { batch, tape });
    const lm = apply(tape, OPS.crossEntropy, { logits, targets, rows: batch * seqLen, cols: V }, be);
    const pen = apply(tape, headSharePenalty, penArgs, be);
    const loss = apply(tape, OPS.weightedSum, { terms: [lm, pen], weights: [1, lambda] }, be);
    tape.backward(loss);
    const gradNorm = clipGradNorm(params.list, clip);
    const step = state.step + 1;
    const rate = lrAt(step, opts.steps, lr, minLr, warmup);
    opt.step(rate);
    opt.zeroGrad();
    state = { ...state, step, adamT: opt.t, tokens: state.tokens + batch * seqLen, trainMs: performance.now() - t0, rng: rng.state };
    opts.onStep?.({ step, steps: opts.steps, loss: loss.data[0], lm: lm.data[0], penalty: pen.data[0], lr: rate, gradNorm });
    if (opts.checkpoint && (step % every === 0 || step === opts.steps)) saveCheckpoint(opts.checkpoint, params.list, opt, state);
  }
  const penaltyAfter = apply(null, headSharePenalty, penArgs, be).data[0];
  const shared = HeadSharedLlamaModel.fromTeacher(model, map);
  const report = headShareReport(original, shared, selection, { shareRate: o.shareRate, strategy: o.strategy, method: 'PostShare' });
  return { model: shared, map, trained: model, report, penaltyBefore, penaltyAfter, steps: state.step };
}
