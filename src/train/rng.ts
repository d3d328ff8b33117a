/** A seeded, serialisable random stream (mulberry32: one uint32 of state) and a Fisher–Yates shuffle on it. */
export class Rng32 {
  /** The whole state; save it to resume the stream exactly. */
  state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  /** Uniform uint32. */
  u32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** Uniform integer in `[0, n)`. */
  below(n: number): number {
    return Math.floor((this.u32() / 4294967296) * n);
  }
  /** A uniformly random permutation of `0 .. n-1`. */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = this.below(i + 1);
      const t = p[i];
      p[i] = p[j];
      p[j] = t;
    }
    return p;
  }
}
