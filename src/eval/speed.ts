/**
 * Speed and memory of a model on this machine: prefill and decode throughput at chosen context lengths, peak RSS,
 * weight bytes and KV-cache bytes per token.
 *
 * - Prefill tokens/s at context C: one forward pass over C tokens into an empty KV cache, C / seconds.
 * - Decode tokens/s at context C: after that prefill, `decodeTokens` single-token forward passes with the cache
 *   (each attends to ~C earlier positions), decodeTokens / seconds. Logits are computed for the last position only,
 *   as in generation; no sampling cost is included.
 * - Each point runs `repeats` times (after one untimed warm-up pass) and reports the fastest run.
 * - Token ids are a fixed pseudo-random sequence (throughput does not depend on which ids).
 * - Weight bytes: the bytes of the parameter arrays the runtime holds (f32; tied embeddings counted once).
 * - KV bytes per token: what one more cached token costs across all layers (`KVCache.bytesPerToken`; a
 *   shared-attention student keeps no K for its shared layers).
 * - Peak RSS: the process's resident-set high-water mark (`process.resourceUsage().maxRSS`) when the measurement
 *   ends. It is process-wide: when several models are evaluated in one process, a later model's figure includes
 *   whatever earlier ones left behind.
 */
import type { Weight } from '../tensor/weight.js';
import type { LlamaModel } from '../models/llama.js';
import { tensorSpecs } from '../models/tensor-spec.js';
import { paramOf } from '../models/params.js';
import { OptionError } from '../errors.js';

export interface SpeedOptions {
  /** Context lengths to measure at (clipped so that context + decode tokens fit the model). Default [128, 512]. */
  contexts?: number[];
  /** Decode steps per point. Default 32. */
  decodeTokens?: number;
  /** Timed runs per point (fastest kept). Default 1. */
  repeats?: number;
}

export interface SpeedPoint {
  ctx: number;
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
  prefillMs: number;
  decodeMs: number;
}

export interface SpeedResult {
  backend: string;
  threads: number;
  decodeTokens: number;
  points: SpeedPoint[];
  parameters: number;
  weightBytes: number;
  kvBytesPerToken: number;
  peakRssBytes: number;
}

/** Bytes of the distinct parameter arrays of a model. */
export function weightBytes(model: LlamaModel): number {
  const seen = new Set<Weight>();
  for (const spec of tensorSpecs(model.config)) {
    const a = paramOf(model.params, spec);
    if (a && a.length) seen.add(a);
  }
  let b = 0;
  for (const a of seen) b += a.byteLength;
  return b;
}

export function peakRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}

function ids(n: number, vocab: number, seed: number): Int32Array {
  const out = new Int32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = 3 + ((s >>> 0) % Math.max(1, vocab - 3));
  }
  return out;
}

function once(model: LlamaModel, ctx: number, decode: number): { prefillMs: number; decodeMs: number } {
  const cache = model.newCache(1, ctx + decode);
  const seq = ids(ctx + decode, model.config.vocabSize, 12345);
  const t0 = performance.now();
  model.forward(seq.subarray(0, ctx), { cache, lastOnly: true });
  const t1 = performance.now();
  for (let i = 0; i < decode; i++) model.forward(seq.subarray(ctx + i, ctx + i + 1), { cache, lastOnly: true });
  const t2 = performance.now();
  return { prefillMs: t1 - t0, decodeMs: t2 - t1 };
}

/** Measure a model (see the module doc). */
export function measureSpeed(model: LlamaModel, opts: SpeedOptions = {}): SpeedResult {
  const maxPos = model.config.maxPositions;
  const decode = opts.decodeTokens ?? 32;
  const repeats = opts.repeats ?? 1;
  if (!(Number.isInteger(decode) && decode >= 1 && decode < maxPos)) throw new OptionError('--decode-tokens', `must be an integer in [1, ${maxPos - 1}], got ${decode}`);
  if (!(Number.isInteger(repeats) && repeats >= 1)) throw new OptionError('--speed-repeats', `must be a positive integer, got ${repeats}`);
  const contexts = [...new Set((opts.contexts ?? [128, 512]).map((c) => Math.min(c, maxPos - decode)))].sort((a, b) => a - b);
  for (const c of contexts) if (!(Number.isInteger(c) && c >= 1)) throw new OptionError('--speed-ctx', `context lengths must be positive integers, got ${c}`);
  once(model, Math.min(16, contexts[0]), 2); // warm-up: thread pool, allocator, JIT
  const points: SpeedPoint[] = contexts.map((ctx) => {
    let best = { prefillMs: Infinity, decodeMs: Infinity };
    for (let r = 0; r < repeats; r++) {
      const t = once(model, ctx, decode);
      best = { prefillMs: Math.min(best.prefillMs, t.prefillMs), decodeMs: Math.min(best.decodeMs, t.decodeMs) };
    }
    return {
      ctx,
      prefillMs: best.prefillMs,
      decodeMs: best.decodeMs,
      prefillTokensPerSecond: (ctx * 1000) / best.prefillMs,
      decodeTokensPerSecond: (decode * 1000) / best.decodeMs,
    };
  });
  return {
    backend: model.backend.name,
    threads: model.backend.threads,
    decodeTokens: decode,
    points,
    parameters: model.parameterCount(),
    weightBytes: weightBytes(model),
    kvBytesPerToken: model.newCache(1, 1).bytesPerToken(),
    peakRssBytes: peakRssBytes(),
  };
}

export interface SpeedComparison {
  /** Prefill of `prefill` tokens into an empty cache; decode of `decodeTokens` tokens after a `decodeFrom`-token prompt. */
  settings: { prefill: number; decodeFrom: number; decodeTokens: number; rounds: number; backend: string; threads: number };
  /** Per model: the fastest round's tok/s, and every round's milliseconds (round r of every model ran back to back). */
  models: { name: string; prefillTokensPerSecond: number; decodeTokensPerSecond: number; rounds: { prefillMs: number[]; decodeMs: number[] } }[];
}

/**
 * Prefill and decode throughput of several models measured side by side: `rounds` rounds, each running every model
 * once in turn (so drifts of a shared machine hit all of them alike), keeping each model's fastest round and every
 * round's time (for {@link speedRatio}).
 *
 * @example
 * const s = compareSpeed([{ name: 'teacher', model: teacher }, { name: 'student', model: student }], { prefill: 256 });
 * speedRatio(s, 1).decode.median; // the student's decode speed-up over the teacher, median of the rounds
 */
export function compareSpeed(
  models: readonly { name: string; model: LlamaModel }[], o: { prefill?: number; decodeFrom?: number; decodeTokens?: number; rounds?: number } = {},
): SpeedComparison {
  const maxPos = Math.min(...models.map((m) => m.model.config.maxPositions));
  const prefill = Math.min(o.prefill ?? maxPos, maxPos);
  const decodeTokens = Math.min(o.decodeTokens ?? Math.floor(maxPos / 2), maxPos - 1);
  const decodeFrom = Math.min(o.decodeFrom ?? maxPos - decodeTokens, maxPos - decodeTokens);
  const rounds = o.rounds ?? 5;
  const times = models.map(() => ({ prefillMs: [] as number[], decodeMs: [] as number[] }));
  for (const m of models) once(m.model, Math.min(16, prefill), 2); // warm-up
  for (let r = 0; r < rounds; r++) {
    models.forEach((m, i) => {
      times[i].prefillMs.push(once(m.model, prefill, 0).prefillMs);
      times[i].decodeMs.push(once(m.model, decodeFrom, decodeTokens).decodeMs);
    });
  }
  const be = models[0].model.backend;
  return {
    settings: { prefill, decodeFrom, decodeTokens, rounds, backend: be.name, threads: be.threads },
    models: models.map((m, i) => ({
      name: m.name, rounds: times[i],
      prefillTokensPerSecond: (prefill * 1000) / Math.min(...times[i].prefillMs), decodeTokensPerSecond: (decodeTokens * 1000) / Math.min(...times[i].decodeMs),
    })),
  };
}

export interface RatioStats {
  median: number;
  min: number;
  max: number;
}

/** Model `i`'s speed over model `base`'s, round by round (rounds ran back to back): median, min and max. */
export function speedRatio(s: SpeedComparison, i: number, base = 0): { prefill: RatioStats; decode: RatioStats } {
  const stats = (a: number[], b: number[]): RatioStats => {
    const r = a.map((x, k) => x / b[k]).sort((x, y) => x - y); // base ms / model ms: > 1 means faster
    const mid = r.length >> 1;
    return { median: r.length % 2 ? r[mid] : (r[mid - 1] + r[mid]) / 2, min: r[0], max: r[r.length - 1] };
  };
  const m = s.models[i].rounds;
  const t = s.models[base].rounds;
  return { prefill: stats(t.prefillMs, m.prefillMs), decode: stats(t.decodeMs, m.decodeMs) };
}
