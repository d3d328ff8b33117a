/**
 * Text generation with a KV cache, streaming each piece as soon as its token is chosen.
 * The loop follows llama2.c's run.c: the prompt is encoded with BOS, its pieces are printed as they are consumed,
 * generation stops at EOS (and at BOS for llama2.c models, which separate stories with it), and `steps` bounds the
 * total sequence length. The prompt is prefilled in one batched forward pass rather than token by token.
 *
 * @example
 * ```ts
 * const out = generate(model, tokenizer, { prompt: 'Once upon a time', maxTokens: 50, temperature: 0 },
 *   (bytes) => process.stdout.write(bytes));
 * console.error(out.decodeTokensPerSecond);
 * ```
 */
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { Sampler, type SamplerOptions } from './sampler.js';
import type { KVCache } from './kvcache.js';
import { OptionError } from '../errors.js';

/** What a model must offer to be generated from (the Llama model and sharing students both do). */
export interface CausalLM {
  readonly config: { readonly vocabSize: number; readonly maxPositions: number };
  newCache(batch: number, capacity: number): KVCache;
  forward(ids: Int32Array, opts: { cache?: KVCache; lastOnly?: boolean; batch?: number }): Float32Array;
  /** A compiled one-token step through `cache` (LlamaModel has one): generation then allocates nothing per token. */
  decodeStep?(cache: KVCache): { run(token: number): Float32Array };
  /** False: decode through `forward` instead of {@link decodeStep}. */
  useStepPrograms?: boolean;
}

export interface GenerateOptions extends SamplerOptions {
  prompt?: string;
  /** Maximum number of new tokens. Default 256. */
  maxTokens?: number;
  /** Bound on the total sequence length, prompt included (run.c's `-n`). Default: the model's context length. */
  steps?: number;
  /** Token ids that end generation. Default: the tokenizer's EOS ids. */
  stopIds?: readonly number[];
}

export interface GenerateResult {
  promptTokens: number[];
  tokens: number[];
  /** Why generation ended. */
  stop: 'eos' | 'max-tokens' | 'steps';
  prefillMs: number;
  decodeMs: number;
  /** New tokens per second, excluding the prefill. */
  decodeTokensPerSecond: number;
  seed: bigint;
}

const utf8 = new TextEncoder();

/** Generate from `model`, calling `onPiece` with each piece's raw bytes (prompt pieces included). */
export function generate(
  model: CausalLM, tokenizer: Tokenizer, opts: GenerateOptions, onPiece: (bytes: Uint8Array) => void,
): GenerateResult {
  const maxTokens = opts.maxTokens ?? 256;
  if (!(Number.isInteger(maxTokens) && maxTokens >= 0)) throw new OptionError('max-tokens', `must be a non-negative integer, got ${maxTokens}`);
  const steps = opts.steps ?? model.config.maxPositions;
  if (!(Number.isInteger(steps) && steps >= 1)) throw new OptionError('steps', `must be a positive integer, got ${steps}`);
  const sampler = new Sampler(opts);
  const prompt = tokenizer.encode(opts.prompt ?? '', { bos: true, eos: false });
  if (prompt.length === 0) throw new OptionError('prompt', 'encodes to no tokens and the tokenizer has no BOS token');
  const limit = Math.min(steps, model.config.maxPositions);
  if (prompt.length > limit) throw new OptionError('prompt', `${prompt.length} tokens exceed the ${limit}-token limit`);
  const stop = new Set(opts.stopIds ?? tokenizer.eosIds);
  const emit = (prev: number, id: number) => {
    const p = tokenizer.decodePiece(prev, id);
    const bytes = typeof p === 'string' ? utf8.encode(p) : p;
    if (bytes.length) onPiece(bytes);
  };
  for (let i = 1; i < prompt.length; i++) emit(prompt[i - 1], prompt[i]);

  const cache = model.newCache(1, Math.min(limit, prompt.length + maxTokens));
  const t0 = performance.now();
  let logits = model.forward(Int32Array.from(prompt), { cache, lastOnly: true });
  const t1 = performance.now();
  const tokens: number[] = [];
  const step = model.useStepPrograms === false ? undefined : model.decodeStep?.(cache); // its logits buffer is rewritten by each run; the sampler is done with it by then
  const next1 = new Int32Array(1);
  let prev = prompt[prompt.length - 1];
  let reason: GenerateResult['stop'] = 'max-tokens';
  for (;;) {
    if (tokens.length >= maxTokens) break;
    const next = sampler.sample(logits); // logits of position prompt.length + tokens.length - 1
    if (stop.has(next)) {
      reason = 'eos';
      break;
    }
    tokens.push(next);
    emit(prev, next);
    prev = next;
    if (tokens.length >= maxTokens) break;
    if (prompt.length + tokens.length - 1 >= limit) {
      reason = 'steps'; // as run.c: `steps` positions are run, each yielding one token
      break;
    }
    if (step) logits = step.run(next);
    else {
      next1[0] = next;
      logits = model.forward(next1, { cache, lastOnly: true });
    }
  }
  const t2 = performance.now();
  const decoded = Math.max(0, tokens.length - 1); // the first new token came from the prefill
  return {
    promptTokens: prompt,
    tokens,
    stop: reason,
    prefillMs: t1 - t0,
    decodeMs: t2 - t1,
    decodeTokensPerSecond: decoded > 0 ? (decoded * 1000) / (t2 - t1) : 0,
    seed: sampler.seed,
  };
}

export interface SampleSequencesOptions {
  /** Number of sequences. */
  count: number;
  /** Tokens per sequence, BOS included. */
  length: number;
  /** Default 1 (the model's own distribution). */
  temperature?: number;
  /** Default 1 (no nucleus cut). */
  topP?: number;
  /** Sequence `i` samples with seed `seed + i`. Default 1. */
  seed?: number;
  /** Sequences generated together in one batched pass (default 16). */
  batch?: number;
  bosId: number;
}

/**
 * Sequences sampled from the model's own distribution: each is BOS followed by `length − 1` sampled tokens (nothing
 * stops it early, so every sequence has exactly `length` tokens). Sequences are decoded `batch` at a time through one
 * batched KV cache; sequence `i` always uses seed `seed + i`, so the result does not depend on `batch`.
 *
 * @example
 * const calib = sampleSequences(teacher, { count: 16, length: 256, bosId: tokenizer.bosId!, seed: 7 });
 */
export function sampleSequences(model: CausalLM, opts: SampleSequencesOptions): Int32Array[] {
  const { count, length } = opts;
  if (!(Number.isInteger(count) && count >= 0)) throw new OptionError('count', `must be a non-negative integer, got ${count}`);
  if (!(Number.isInteger(length) && length >= 1 && length <= model.config.maxPositions)) {
    throw new OptionError('length', `must be an integer from 1 to ${model.config.maxPositions}, got ${length}`);
  }
  const out: Int32Array[] = [];
  const per = Math.max(1, opts.batch ?? 16);
  for (let first = 0; first < count; first += per) {
    const B = Math.min(per, count - first);
    const samplers = Array.from({ length: B }, (_, b) => new Sampler({ temperature: opts.temperature ?? 1, topP: opts.topP ?? 1, seed: (opts.seed ?? 1) + first + b }));
    const seqs = Array.from({ length: B }, () => new Int32Array(length).fill(opts.bosId, 0, 1));
    const cache = model.newCache(B, length);
    let step = Int32Array.from(seqs, (s) => s[0]);
    for (let t = 1; t < length; t++) {
      const logits = model.forward(step, { cache, batch: B, lastOnly: true }); // (B, V)
      const V = model.config.vocabSize;
      step = Int32Array.from(samplers, (s, b) => s.sample(logits.subarray(b * V, (b + 1) * V)));
      seqs.forEach((s, b) => (s[t] = step[b]));
    }
    out.push(...seqs);
  }
  return out;
}
