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
 * Training is the shared loop (`train/loop.ts`: AdamW, warmup + cosine, clipping, atomic checkpoints, resume with
 * the same data order); this file is the method's set-up and its loss.
 *
 * @example
 * ```ts
 * const res = await postShare(teacher, tokenizer, { shareRate: 0.3, data: ['corpus.txt'], steps: 200, lambda: 0.05 });
 * saveModel('out/ps30', res.model, tokenizerPath);
 * ```
 */
import type { Backend } from '../backend/backend.js';
import type { LlamaModel } from '../models/llama.js';
import type { HeadMap } from '../models/head-map.js';
import type { LlamaConfig } from '../models/config.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { accumulate, apply, defineOp, Param, Var } from '../autograd/tape.js';
import { OPS } from '../autograd/ops/index.js';
import { forwardTrain, modelParams, type ModelParams } from '../models/tape-ops.js';
import { copyModel, withHeadMap } from '../models/surgery.js';
import { AdamW } from '../train/optim.js';
import { lrAt } from '../train/schedule.js';
import { readCheckpointState } from '../train/checkpoint.js';
import { checkVocab, textSequences, type TokenDataset } from '../train/data.js';
import { train } from '../train/loop.js';
import { OptionError } from '../errors.js';
import {
  headShareReport, headSimilarity, selectHeadSharing, validateHeadShareOptions, type HeadShareReport, type HeadShareStrategy, type HeadSelection,
} from './headshare.js';

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

function penaltyArgs(params: ModelParams, map: HeadMap, dims: PenaltyArgs['dims'], kind: PenaltyKind, includeO: boolean): PenaltyArgs {
  const pick = (k: 'wq' | 'wk' | 'wv' | 'wo') => params.layers.map((lp) => lp[k] as Param);
  return { wq: pick('wq'), wk: pick('wk'), wv: pick('wv'), wo: pick('wo'), map, dims, kind, includeO };
}

/** Penalty value of a model's current weights under `map` (no gradient). */
export function headSharePenaltyValue(model: LlamaModel, map: HeadMap, kind: PenaltyKind = 'fro', includeO = false): number {
  return apply(null, headSharePenalty, penaltyArgs(modelParams(model), map, model.config, kind, includeO), model.backend).data[0];
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
  model: LlamaModel;
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

/** Options with defaults applied, every bad value an OptionError naming its flag. */
function resolvePostShare(opts: PostShareOptions, cfg: Readonly<LlamaConfig>) {
  const steps = opts.steps;
  const r = {
    lambda: opts.lambda ?? 0.1, kind: opts.penalty ?? 'fro', seqLen: opts.seqLen ?? Math.min(256, cfg.maxPositions), batch: opts.batch ?? 8,
    lr: opts.lr ?? 1e-3, clip: opts.clip ?? 1, every: opts.checkpointEvery ?? 50, seed: opts.seed ?? 1,
    warmup: opts.warmup ?? Math.min(20, Math.floor(steps / 10)),
  };
  const minLr = opts.minLr ?? r.lr / 10;
  check('--steps', steps, Number.isInteger(steps) && steps >= 1, 'an integer >= 1');
  check('--lambda', r.lambda, Number.isFinite(r.lambda) && r.lambda >= 0, 'a number >= 0');
  if (r.kind !== 'fro' && r.kind !== 'mse') throw new OptionError('--penalty', `expected fro or mse, got ${JSON.stringify(r.kind)}`);
  check('--seq-len', r.seqLen, Number.isInteger(r.seqLen) && r.seqLen >= 1 && r.seqLen <= cfg.maxPositions, `an integer in [1, ${cfg.maxPositions}]`);
  check('--batch', r.batch, Number.isInteger(r.batch) && r.batch >= 1, 'an integer >= 1');
  check('--lr', r.lr, Number.isFinite(r.lr) && r.lr > 0, 'a number > 0');
  check('--min-lr', minLr, Number.isFinite(minLr) && minLr >= 0 && minLr <= r.lr, `a number in [0, ${r.lr}]`);
  check('--warmup', r.warmup, Number.isInteger(r.warmup) && r.warmup >= 0 && r.warmup < steps, `an integer in [0, ${steps - 1}]`);
  if (!opts.dataset && !opts.data?.length) throw new OptionError('--data', 'PostShare needs training text');
  return { ...r, minLr, kind: r.kind as PenaltyKind };
}

/** PostShare: select pairs on the original weights, post-train a copy with the penalty, then share (original untouched). */
export async function postShare(original: LlamaModel, tokenizer: Tokenizer, opts: PostShareOptions): Promise<PostShareResult> {
  const o = validateHeadShareOptions(opts, original.config);
  const r = resolvePostShare(opts, original.config);
  const selection: HeadSelection = selectHeadSharing(headSimilarity(original, o.strategy), o.count, original.config);
  const map = selection.map;
  const model = copyModel(original);
  const ds = opts.dataset ?? (await textSequences(tokenizer, opts.data!, { seqLen: r.seqLen, maxTokens: Math.max(r.batch * (r.seqLen + 1) * opts.steps, 1 << 16) }));
  if (ds.sequences.some((q) => q.length !== r.seqLen + 1)) throw new OptionError('--seq-len', `the dataset's sequences are not ${r.seqLen + 1} tokens long`);
  if (ds.sequences.length < r.batch) throw new OptionError('--data', `${ds.description} gives ${ds.sequences.length} sequences of ${r.seqLen + 1} tokens, fewer than one batch of ${r.batch}`);
  checkVocab(ds, model.config.vocabSize, '--data');

  const params = modelParams(model);
  const penArgs = penaltyArgs(params, map, model.config, r.kind, opts.includeO ?? false);
  const penaltyBefore = apply(null, headSharePenalty, penArgs, model.backend).data[0];
  const fingerprint = {
    method: 'postshare', shareRate: o.shareRate, strategy: o.strategy, lambda: r.lambda, kind: r.kind, includeO: penArgs.includeO, seqLen: r.seqLen,
    batch: r.batch, lr: r.lr, minLr: r.minLr, warmup: r.warmup, steps: opts.steps, seed: r.seed, data: ds.fingerprint,
    pairs: map.shared.map((e) => [e.layer, e.group, e.source_layer, e.source_group]),
  };
  const V = model.config.vocabSize;
  const run = await train({
    backend: model.backend, params: params.list, trainable: params.list, optimizer: new AdamW(params.list, { weightDecay: opts.weightDecay ?? 0, backend: model.backend }),
    data: ds, steps: opts.steps, batch: r.batch, seqLen: r.seqLen, clip: r.clip, seed: r.seed,
    schedule: (step) => lrAt(step, opts.steps, r.lr, r.minLr, r.warmup),
    checkpoint: opts.checkpoint ? { file: opts.checkpoint, every: r.every, fingerprint } : undefined,
    resume: opts.resume && opts.checkpoint ? readCheckpointState(opts.checkpoint) : null,
    loss: (b, tape) => {
      const { logits } = forwardTrain(model, params, b.ids, { batch: b.batch, tape });
      const lm = apply(tape, OPS.crossEntropy, { logits, targets: b.targets, rows: b.ids.length, cols: V });
      const pen = apply(tape, headSharePenalty, penArgs);
      return { loss: apply(tape, OPS.weightedSum, { terms: [lm, pen], weights: [1, r.lambda] }), parts: { lm: lm.data[0], penalty: pen.data[0] } };
    },
    onStep: (s) => opts.onStep?.({ step: s.step, steps: s.steps, loss: s.loss, lm: s.parts.lm, penalty: s.parts.penalty, lr: s.lr, gradNorm: s.gradNorm }),
  });
  const penaltyAfter = apply(null, headSharePenalty, penArgs, model.backend).data[0];
  const shared = withHeadMap(model, map);
  const report = headShareReport(original, shared, selection, { shareRate: o.shareRate, strategy: o.strategy, method: 'PostShare' });
  return { model: shared, map, trained: model, report, penaltyBefore, penaltyAfter, steps: run.state.step };
}
