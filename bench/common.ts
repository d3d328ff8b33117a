/** Small helpers shared by the benchmarks. */
import fs from 'node:fs';

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
