/** Small helpers shared by the benchmarks. */
import fs from 'node:fs';
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

/** Median and range of positive values, e.g. per-round speed ratios: `0.83× (0.75–0.91)`. */
export function medianRange(values: readonly number[], digits = 2, unit = '×'): string {
  const s = [...values].sort((a, b) => a - b);
  const n = s.length;
  const med = n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
  return `${med.toFixed(digits)}${unit} (${s[0].toFixed(digits)}–${s[n - 1].toFixed(digits)})`;
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
