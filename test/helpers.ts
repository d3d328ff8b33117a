import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { requireF32, type Weight } from '../src/tensor/weight.js';

/** The f32 array of a weight (test models are built with f32 weights). */
export const f32 = (w: Weight): Float32Array => requireF32(w, 'test');

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const sharedDir = path.resolve(repoRoot, '../shared');

/** Deterministic uniform floats in [lo, hi) (mulberry32). */
export function randn(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const u = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    out[i] = lo + (hi - lo) * u;
  }
  return out;
}

export function randInts(n: number, max: number, seed: number): Int32Array {
  const r = randn(n, seed, 0, 1);
  return Int32Array.from(r, (u) => Math.min(max - 1, Math.floor(u * max)));
}

/** Assert |a-b| <= atol + rtol·|b| elementwise, NaN matching NaN and ±Inf matching exactly. */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string, rtol = 1e-5, atol = 1e-5): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let worst = 0;
  let worstI = -1;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (Number.isNaN(e)) {
      assert.ok(Number.isNaN(a), `${what}[${i}]: expected NaN, got ${a}`);
      continue;
    }
    if (!Number.isFinite(e)) {
      assert.equal(a, e, `${what}[${i}]: expected ${e}, got ${a}`);
      continue;
    }
    const err = Math.abs(a - e) - (atol + rtol * Math.abs(e));
    if (!(err <= worst)) {
      worst = Number.isNaN(err) ? Infinity : err;
      worstI = i;
    }
  }
  if (worstI >= 0) {
    assert.fail(`${what}[${worstI}]: got ${actual[worstI]}, expected ${expected[worstI]} (rtol ${rtol}, atol ${atol})`);
  }
}

/**
 * Central finite difference of `Σ_j r[j] · f(x)[j]` with respect to every `x[i]` (step `h`): what a backward pass given
 * the upstream gradient `r` must return for `x`.
 */
export function finiteDifference(f: (x: Float32Array) => Float32Array, x: Float32Array, r: Float32Array, h = 1e-2): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const xp = x.slice();
    const xm = x.slice();
    xp[i] += h;
    xm[i] -= h;
    const fp = f(xp);
    const fm = f(xm);
    let s = 0;
    for (let j = 0; j < r.length; j++) s += r[j] * (fp[j] - fm[j]);
    g[i] = s / (2 * h);
  }
  return g;
}
