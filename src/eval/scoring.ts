/**
 * lm-evaluation-harness log-likelihood scoring on echoatt models.
 *
 * **Tokenisation** (lm-eval `_encode_pair`): trailing whitespace of the context moves to the front of the
 * continuation; then `whole = encode(context + continuation)`, `ctx = encode(context)` and the continuation tokens are
 * `whole[ctx.length:]`. The model input is `ctx + cont` without its last token, so every request's input starts with
 * exactly `ctx`. BOS follows the tokenizer's own convention unless `bos` is given (current lm-eval delegates BOS to
 * the tokenizer as well; lm-eval before late 2025 defaulted to no BOS, which `bos: false` reproduces). An empty
 * context becomes the single prefix token (BOS, else the first EOS), as lm-eval does.
 *
 * **Log-likelihood** of a continuation: `Σ_j log softmax(logits at the position before token j)[token j]`, computed
 * from the model's f32 logits with the backend's `crossEntropy` kernel and summed in f64. `greedy` is true when every
 * continuation token is the argmax of its row (lm-eval `is_greedy`; ties go to the lowest id). Sequences longer than
 * the model's context are cut on the left to the last `maxPositions + 1` tokens, as lm-eval does; a continuation that
 * alone exceeds the context (lm-eval refuses it) is scored in consecutive windows (see `scoreLongContinuations`).
 *
 * **Prefix sharing**: the choices of one multiple-choice item share their context tokens, so the context is run once
 * into a KV cache, the cache is replicated into a batch with one entry per choice, and all continuations run as one
 * right-padded batch (padding after a sequence never influences it under a causal mask). This gives the same numbers
 * as scoring each `context + choice` on its own (tests hold it to the direct computation).
 *
 * **Metrics** (lm-eval `multiple_choice`): `acc` = 1 if the argmax of the summed log-likelihoods is the gold index,
 * `acc_norm` = the same with each log-likelihood divided by the character length (Unicode code points, like Python
 * `len`) of the choice text without the delimiter. Ties go to the FIRST maximum (NumPy `argmax`). The standard error
 * of a mean of per-item scores is lm-eval's `mean_stderr`: `sqrt(s² / n)` with the sample variance
 * `s² = Σ(x − x̄)² / (n − 1)`.
 */
import type { Backend } from '../backend/backend.js';
import type { ForwardOptions } from '../models/llama.js';
import type { KVCache } from '../models/kvcache.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { EvalError } from '../errors.js';
import type { Task, TaskItem } from './tasks/types.js';
import { aggregate, chanceLevel, selectItems, type ItemScore, type TaskResult } from './metrics.js';

export * from './metrics.js';

/** What scoring needs from a model; every `LlamaModel` (teacher or student) satisfies it. */
export interface ScoringModel {
  readonly config: { readonly vocabSize: number; readonly maxPositions: number };
  readonly backend: Backend;
  newCache(batch: number, capacity: number): KVCache;
  forward(ids: Int32Array, opts?: ForwardOptions): Float32Array;
}

export interface EncodeSettings {
  /** Prepend BOS to contexts. Default: the tokenizer's convention. */
  bos?: boolean;
}

export interface EncodedPair {
  context: number[];
  continuation: number[];
}

/** The token id lm-eval puts in front of an empty context and of rolling windows: BOS, else the first EOS. */
export function prefixTokenId(tok: Tokenizer): number {
  const id = tok.bosId ?? tok.eosIds[0];
  if (id === undefined || id === null) throw new EvalError('the tokenizer has neither a BOS nor an EOS token to use as prefix');
  return id;
}

/** lm-eval's `_encode_pair` (see the module doc). */
export function encodePair(tok: Tokenizer, context: string, continuation: string, opts: EncodeSettings = {}): EncodedPair {
  let ctx = context;
  let cont = continuation;
  const nSpaces = ctx.length - ctx.trimEnd().length;
  if (nSpaces > 0) {
    cont = ctx.slice(ctx.length - nSpaces) + cont;
    ctx = ctx.slice(0, ctx.length - nSpaces);
  }
  let out: EncodedPair;
  if (ctx === '') {
    out = { context: [prefixTokenId(tok)], continuation: tok.encode(cont, { bos: false }) };
  } else {
    const enc = { bos: opts.bos };
    const whole = tok.encode(ctx + cont, enc);
    const c = tok.encode(ctx, enc);
    out = { context: c, continuation: whole.slice(c.length) };
    if (out.context.length === 0) out.context = [prefixTokenId(tok)];
  }
  if (out.continuation.length === 0) {
    throw new EvalError(`continuation ${JSON.stringify(continuation.slice(0, 40))} encodes to no tokens after context ${JSON.stringify(context.slice(-40))}`);
  }
  return out;
}

export interface ContinuationScore {
  /** Summed log-likelihood (natural log) of the continuation tokens. */
  logprob: number;
  /** Every continuation token is its row's argmax. */
  greedy: boolean;
  /** Number of continuation tokens scored. */
  tokens: number;
}

/** Largest logits buffer (elements) one batched forward may produce; bigger batches are split. */
const MAX_LOGITS = 1 << 25;

function argmaxRow(logits: Float32Array, off: number, v: number): number {
  let best = 0;
  let bv = logits[off];
  for (let j = 1; j < v; j++) {
    if (logits[off + j] > bv) {
      bv = logits[off + j];
      best = j;
    }
  }
  return best;
}

/**
 * Score rows of `logits` `(rows, V)`: `rowOf[i]` is the row that predicts `targets[i]`. Returns per-target
 * log-probabilities (f64 from the f32 kernel) and argmax flags.
 */
function scoreRows(be: Backend, logits: Float32Array, v: number, rowOf: number[], targets: number[]): { lp: Float64Array; top: Uint8Array } {
  const n = rowOf.length;
  const rows = new Float32Array(n * v);
  for (let i = 0; i < n; i++) rows.set(logits.subarray(rowOf[i] * v, (rowOf[i] + 1) * v), i * v);
  const losses = new Float32Array(n);
  be.crossEntropy(rows, Int32Array.from(targets), losses, n, v);
  const lp = new Float64Array(n);
  const top = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    lp[i] = -losses[i];
    top[i] = argmaxRow(rows, i * v, v) === targets[i] ? 1 : 0;
  }
  return { lp, top };
}

function collect(lp: Float64Array, top: Uint8Array, from: number, count: number): ContinuationScore {
  let s = 0;
  let g = true;
  for (let i = from; i < from + count; i++) {
    s += lp[i];
    if (!top[i]) g = false;
  }
  return { logprob: s, greedy: g, tokens: count };
}

/**
 * Score independent `(context, continuation)` requests as right-padded batches (no cache). Each input is lm-eval's
 * `(context + continuation)[-(maxPositions + 1):][:-1]`.
 */
export function scoreIndependent(model: ScoringModel, reqs: readonly EncodedPair[]): ContinuationScore[] {
  const maxPos = model.config.maxPositions;
  if (reqs.some((r) => r.continuation.length > maxPos)) return scoreLongContinuations(model, reqs);
  const v = model.config.vocabSize;
  const out: ContinuationScore[] = new Array(reqs.length);
  const inputs = reqs.map((r) => {
    const full = r.context.concat(r.continuation);
    return full.slice(Math.max(0, full.length - (maxPos + 1)), full.length - 1);
  });
  let i = 0;
  while (i < reqs.length) {
    // Greedily grow a batch while the padded logits stay under the memory bound.
    let j = i + 1;
    let tmax = inputs[i].length;
    while (j < reqs.length && (j + 1 - i) * Math.max(tmax, inputs[j].length) * v <= MAX_LOGITS) {
      tmax = Math.max(tmax, inputs[j].length);
      j++;
    }
    const b = j - i;
    const ids = new Int32Array(b * tmax); // padding id 0 sits after each sequence and cannot affect it
    const rowOf: number[] = [];
    const targets: number[] = [];
    for (let k = 0; k < b; k++) {
      const inp = inputs[i + k];
      ids.set(inp, k * tmax);
      const cont = reqs[i + k].continuation;
      for (let t = 0; t < cont.length; t++) {
        rowOf.push(k * tmax + inp.length - cont.length + t);
        targets.push(cont[t]);
      }
    }
    const logits = model.forward(ids, { batch: b });
    const { lp, top } = scoreRows(model.backend, logits, v, rowOf, targets);
    let at = 0;
    for (let k = 0; k < b; k++) {
      const n = reqs[i + k].continuation.length;
      out[i + k] = collect(lp, top, at, n);
      at += n;
    }
    i = j;
  }
  return out;
}

/**
 * Requests whose continuation alone is longer than the model's context (lm-eval asserts there; it happens with
 * small-vocabulary models, e.g. a 600-token PIQA solution under a 512-token window): the continuation is scored in
 * consecutive blocks of up to `maxPositions` tokens, each block predicted from the `maxPositions + 1 − block` tokens
 * before it (context included), and the blocks' log-likelihoods add up (greedy: all blocks greedy). Requests that fit
 * are scored exactly as lm-eval does.
 */
function scoreLongContinuations(model: ScoringModel, reqs: readonly EncodedPair[]): ContinuationScore[] {
  const maxPos = model.config.maxPositions;
  const parts: EncodedPair[] = [];
  const owner: number[] = [];
  reqs.forEach((r, i) => {
    const full = r.context.concat(r.continuation);
    for (let s = r.context.length; s < full.length; s += maxPos) {
      const end = Math.min(s + maxPos, full.length);
      const begin = Math.max(0, end - maxPos - 1);
      parts.push({ context: full.slice(begin, s), continuation: full.slice(s, end) });
      owner.push(i);
    }
  });
  const scored = scoreIndependent(model, parts);
  const out = reqs.map((): ContinuationScore => ({ logprob: 0, greedy: true, tokens: 0 }));
  scored.forEach((s, k) => {
    const o = out[owner[k]];
    o.logprob += s.logprob;
    o.greedy &&= s.greedy;
    o.tokens += s.tokens;
  });
  return out;
}

/**
 * Score several continuations of ONE context: the context runs once into a KV cache that is then replicated into a
 * batch of the continuations (see the module doc). Falls back to {@link scoreIndependent} when a sequence would not
 * fit the model's context (lm-eval then cuts each request on the left separately).
 */
export function scoreContinuations(model: ScoringModel, context: readonly number[], continuations: readonly (readonly number[])[]): ContinuationScore[] {
  const maxPos = model.config.maxPositions;
  const v = model.config.vocabSize;
  if (context.length === 0) throw new EvalError('empty context (encodePair puts the prefix token there)');
  const maxCont = Math.max(...continuations.map((c) => c.length));
  if (continuations.length < 2 || context.length + maxCont - 1 > maxPos) {
    return scoreIndependent(model, continuations.map((c) => ({ context: [...context], continuation: [...c] })));
  }
  const lc = context.length;
  const c1 = model.newCache(1, lc);
  const last = model.forward(Int32Array.from(context), { cache: c1, lastOnly: true }); // (1, V): predicts token 0
  const out: ContinuationScore[] = new Array(continuations.length);
  const t = maxCont - 1;
  const per = Math.max(1, Math.floor(MAX_LOGITS / Math.max(1, t * v)));
  for (let i0 = 0; i0 < continuations.length; i0 += per) {
    const group = continuations.slice(i0, i0 + per);
    const b = group.length;
    let logits: Float32Array = new Float32Array(0);
    if (t > 0) {
      const cb = model.newCache(b, lc + t);
      replicateCache(c1, cb);
      const ids = new Int32Array(b * t);
      group.forEach((c, k) => ids.set(c.slice(0, c.length - 1), k * t));
      logits = model.forward(ids, { batch: b, cache: cb }); // (B·T, V)
    }
    // Row index space: 0 = the context's last position; 1 + k·T + j = continuation k, position j.
    const all = new Float32Array((1 + b * t) * v);
    all.set(last, 0);
    if (t > 0) all.set(logits, v);
    const rowOf: number[] = [];
    const targets: number[] = [];
    group.forEach((c, k) => {
      for (let j = 0; j < c.length; j++) {
        rowOf.push(j === 0 ? 0 : 1 + k * t + (j - 1));
        targets.push(c[j]);
      }
    });
    const { lp, top } = scoreRows(model.backend, all, v, rowOf, targets);
    let at = 0;
    group.forEach((c, k) => {
      out[i0 + k] = collect(lp, top, at, c.length);
      at += c.length;
    });
  }
  return out;
}

/** Copy the `src.length` cached positions of batch entry 0 of `src` into every batch entry of `dst`. */
export function replicateCache(src: KVCache, dst: KVCache): void {
  if (src.k.length !== dst.k.length || src.nKvHeads !== dst.nKvHeads || src.headDim !== dst.headDim) {
    throw new EvalError('replicateCache: caches of different models');
  }
  const row = src.nKvHeads * src.headDim;
  const n = src.length * row;
  if (src.length > dst.capacity) throw new EvalError(`replicateCache: ${src.length} positions exceed capacity ${dst.capacity}`);
  for (const [a, b] of [[src.k, dst.k], [src.v, dst.v]] as const) {
    for (let l = 0; l < a.length; l++) {
      const s = a[l];
      const d = b[l];
      if (!s || !d) continue;
      const part = s.subarray(0, n);
      for (let e = 0; e < dst.batch; e++) d.set(part, e * dst.batchStride);
    }
  }
  dst.length = src.length;
}

/** Score one task item (see {@link TaskItem} for the three shapes). */
export function scoreItem(model: ScoringModel, tok: Tokenizer, item: TaskItem, delimiter: string, enc: EncodeSettings = {}): ItemScore {
  let scores: ContinuationScore[];
  if (item.kind === 'choice') {
    const pairs = item.choices.map((c) => encodePair(tok, item.context, delimiter + c, enc));
    // All pairs share the context encoding (it depends on the context only), so the prefix can be shared.
    scores = scoreContinuations(model, pairs[0].context, pairs.map((p) => p.continuation));
  } else if (item.kind === 'partial') {
    scores = scoreIndependent(model, item.contexts.map((c) => encodePair(tok, c, delimiter + item.continuation, enc)));
  } else {
    scores = scoreIndependent(model, [encodePair(tok, item.context, delimiter + item.continuation, enc)]);
  }
  return { lls: scores.map((s) => s.logprob), greedy: scores.map((s) => s.greedy), tokens: scores.reduce((a, s) => a + s.tokens, 0) };
}

export interface RunTaskOptions extends EncodeSettings {
  limit?: number;
  limitSeed?: number;
  /** Called after each item with (done, total). */
  onItem?: (done: number, total: number) => void;
}

/** Score a task on a model: select items, score each, aggregate. */
export function runTask(model: ScoringModel, tok: Tokenizer, task: Task, opts: RunTaskOptions = {}): TaskResult {
  const t0 = performance.now();
  const items = selectItems(task.items, opts.limit, opts.limitSeed);
  const scores: ItemScore[] = [];
  let tokens = 0;
  items.forEach((item, i) => {
    const s = scoreItem(model, tok, item, task.delimiter, opts);
    scores.push(s);
    tokens += s.tokens;
    opts.onItem?.(i + 1, items.length);
  });
  return {
    task: task.name,
    n: items.length,
    total: task.items.length,
    metrics: aggregate(task, items, scores),
    chance: chanceLevel(items),
    tokens,
    seconds: (performance.now() - t0) / 1000,
    prompt: task.prompt,
    source: task.source,
  };
}
