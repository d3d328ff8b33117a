/**
 * Token sampling: greedy, temperature, nucleus (top-p), seeded.
 * The random stream and the top-p procedure follow llama2.c's run.c (xorshift64* RNG, cutoff pre-filter, sort,
 * cumulative cut), so the same seed, temperature and top-p pick the same tokens as run.c does.
 */
import { OptionError } from '../errors.js';

const MASK64 = (1n << 64n) - 1n;

/** run.c's xorshift64* generator; `seed` must be non-zero (0 is mapped to 1). */
export class Rng {
  private state: bigint;
  constructor(seed: number | bigint) {
    this.state = BigInt.asUintN(64, BigInt(seed)) || 1n;
  }
  u32(): number {
    let s = this.state;
    s ^= s >> 12n;
    s = (s ^ (s << 25n)) & MASK64;
    s ^= s >> 27n;
    this.state = s;
    return Number(((s * 0x2545f4914f6cdd1dn) & MASK64) >> 32n);
  }
  /** Uniform in [0, 1) with 24 bits, as run.c's random_f32. */
  f32(): number {
    return Math.fround((this.u32() >>> 8) / 16777216);
  }
}

export interface SamplerOptions {
  /** 0 = greedy (argmax). Default 1. */
  temperature?: number;
  /** Nucleus threshold in (0, 1]; 1 or more disables it. Default 0.9 (run.c's default). */
  topP?: number;
  seed?: number | bigint;
}

export class Sampler {
  readonly temperature: number;
  readonly topP: number;
  readonly seed: bigint;
  private rng: Rng;

  constructor(opts: SamplerOptions = {}) {
    const temperature = opts.temperature ?? 1;
    const topP = opts.topP ?? 0.9;
    if (!(Number.isFinite(temperature) && temperature >= 0)) throw new OptionError('temperature', `must be a number >= 0, got ${temperature}`);
    if (!(Number.isFinite(topP) && topP > 0)) throw new OptionError('top-p', `must be a number > 0, got ${topP}`);
    this.temperature = temperature;
    this.topP = topP;
    this.seed = BigInt.asUintN(64, BigInt(opts.seed ?? Date.now()));
    this.rng = new Rng(this.seed);
  }

  /** Pick the next token from one row of logits `(V)`. The row may be modified. */
  sample(logits: Float32Array): number {
    if (this.temperature === 0) return argmax(logits);
    const n = logits.length;
    // Kept only when T is tiny enough that dividing may overflow, for the greedy fallback below.
    const raw = this.temperature < 1e-30 ? logits.slice() : null;
    let max = -Infinity;
    for (let i = 0; i < n; i++) {
      logits[i] = Math.fround(logits[i] / this.temperature);
      if (logits[i] > max) max = logits[i];
    }
    let sum = 0;
    for (let i = 0; i < n; i++) {
      logits[i] = Math.fround(Math.exp(logits[i] - max));
      sum += logits[i];
    }
    for (let i = 0; i < n; i++) logits[i] = Math.fround(logits[i] / sum);
    const coin = this.rng.f32();
    // A temperature so small that logits / T overflows float32 (1e-40) leaves no finite distribution: its limit is greedy.
    if (!(max < Infinity && sum < Infinity && sum > 0)) return argmax(raw ?? logits);
    return this.topP <= 0 || this.topP >= 1 ? sampleMult(logits, coin) : sampleTopP(logits, this.topP, coin);
  }
}

/** Index of the first maximum (ties go to the lower index, as run.c). */
export function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

function sampleMult(probs: Float32Array, coin: number): number {
  let cdf = 0;
  for (let i = 0; i < probs.length; i++) {
    cdf = Math.fround(cdf + probs[i]);
    if (coin < cdf) return i;
  }
  return probs.length - 1;
}

function sampleTopP(probs: Float32Array, topP: number, coin: number): number {
  const n = probs.length;
  // Tokens below this cutoff can never be in the nucleus; dropping them first keeps the sort small.
  const cutoff = Math.fround((1 - topP) / (n - 1));
  const idx: number[] = [];
  for (let i = 0; i < n; i++) if (probs[i] >= cutoff) idx.push(i);
  idx.sort((a, b) => probs[b] - probs[a] || a - b);
  let cum = 0;
  let last = idx.length - 1;
  for (let i = 0; i < idx.length; i++) {
    cum = Math.fround(cum + probs[idx[i]]);
    if (cum > topP) {
      last = i;
      break;
    }
  }
  const r = Math.fround(coin * cum);
  let cdf = 0;
  for (let i = 0; i <= last; i++) {
    cdf = Math.fround(cdf + probs[idx[i]]);
    if (r < cdf) return idx[i];
  }
  return last >= 0 ? idx[last] : argmax(probs); // no token above the cutoff (non-finite probabilities): the best one
}
