/** Small helpers shared by the benchmarks. */
import fs from 'node:fs';
import type { NativeBackend } from '../src/backend/native.js';
import { makePlan, type SharingPlan } from '../src/models/sharing-plan.js';
import os from 'node:os';

/** Peak resident memory of this process in GiB: VmHWM (getrusage's maxrss is inherited from the parent across exec). */
export function peakRssGiB(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 / 1024 : process.resourceUsage().maxRSS / 1024 / 1024;
}

/** `n` deterministic pseudo-random token ids in [1, vocab) (a 32-bit LCG). */
export function tokens(n: number, vocab: number, seed: number): Int32Array {
  const out = new Int32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    out[i] = 1 + (s % (vocab - 1));
  }
  return out;
}

/** The speed benches' student: 9 of 22 TinyLlama layers echo an anchor (3 spans of 3), or one layer of a smaller model. */
export function benchPlan(L: number): SharingPlan {
  if (L === 22) return makePlan('manual', [{ anchor: 4, shared: [5, 6, 7] }, { anchor: 9, shared: [10, 11, 12] }, { anchor: 14, shared: [15, 16, 17] }]);
  const mid = Math.floor(L / 2);
  return makePlan('manual', [{ anchor: mid - 1, shared: [mid] }]);
}

/** Median, min and max of `xs` (the per-round figures of a bench). */
export function spread(xs: readonly number[]): { median: number; min: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return { median: s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2, min: s[0], max: s[s.length - 1] };
}

/** `median (min–max)` with `d` decimals. */
export function fmtSpread(xs: readonly number[], d = 1, unit = ''): string {
  const { median, min, max } = spread(xs);
  return `${median.toFixed(d)}${unit} (${min.toFixed(d)}–${max.toFixed(d)}${unit})`;
}

/** Median and range of positive values, e.g. per-round speed ratios: `0.83× (0.75–0.91)`. */
export function medianRange(values: readonly number[], digits = 2, unit = '×'): string {
  const { median, min, max } = spread(values);
  return `${median.toFixed(digits)}${unit} (${min.toFixed(digits)}–${max.toFixed(digits)})`;
}

/** The CPU model as Linux reports it (`/proc/cpuinfo` "model name"), else Node's. */
export function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) return m[1].trim();
  } catch {
    // not Linux
  }
  return os.cpus()[0]?.model ?? 'unknown CPU';
}

/**
 * The memory streaming rate of decode-shaped work: GB/s of f16 weights read by matmulHalf over 8 different
 * TinyLlama FFN-sized matrices (2048 × 5632, 22 MiB each, 176 MiB in all: far past the caches), one pass over all of
 * them timed, best of `passes` (bench:gemm's decode measurement, as one step of a model reads its matrices in turn).
 * Returns a function that measures again (to take it in every round of a bench).
 */
export function streamingRate(be: NativeBackend, passes = 3): () => number {
  const n = 5632, k = 2048, count = 8;
  const ws = Array.from({ length: count }, (_, i) => new Uint16Array(n * k).fill(0x3c00 + i));
  const x = new Float32Array(k).fill(0.5), out = new Float32Array(n);
  const pass = () => {
    const t0 = performance.now();
    for (const w of ws) be.matmulHalf(x, w, 'f16', out, 1, n, k);
    return performance.now() - t0;
  };
  pass(); // first touch
  return () => {
    let best = Infinity;
    for (let r = 0; r < passes; r++) best = Math.min(best, pass());
    return (count * n * k * 2) / (best / 1000) / 1e9;
  };
}
