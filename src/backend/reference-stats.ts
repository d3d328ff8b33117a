/**
 * The reference (TypeScript, float64) implementations of the statistics and training kernels: attention-map packing
 * and comparison (`echoatt analyze`), the distillation KL, AdamW and the squared norm. `ReferenceBackend` delegates
 * its methods of the same names here; semantics are documented on the {@link Backend} interface.
 */
import type { AdamWParams } from './kernel-types.js';

/** `Backend.packProbs`: causal triangles of `(heads, t, t)` into `(heads, K)`, with Σ p² and Σ −p ln p per head. */
export function packProbsRef(probs: Float32Array, packed: Float32Array, heads: number, t: number, stats: Float64Array): void {
  const K = (t * (t + 1)) / 2;
  for (let h = 0; h < heads; h++) {
    let o = h * K;
    let n2 = 0;
    let e = 0;
    for (let r = 0; r < t; r++) {
      const base = (h * t + r) * t;
      for (let c = 0; c <= r; c++) {
        const v = probs[base + c];
        packed[o++] = v;
        n2 += v * v;
        // Same expression as compareProbs' m = (a + b)/2 with a = b = v, so identical maps give JS exactly 0.
        const m = 0.5 * (v + v);
        if (m > 0) e -= m * Math.log(m);
      }
    }
    stats[h] = n2;
    stats[heads + h] = e;
  }
}

/** `Backend.compareProbs`: per map and head Σ a·b and Σ −m ln m (m = (a + b)/2), and the optional Gram matrices. */
export function compareProbsRef(maps: readonly Float32Array[], b: Float32Array, heads: number, k: number, stats: Float64Array, gram?: Float64Array): void {
  maps.forEach((a, i) => comparePair(a, b, heads, k, stats.subarray(2 * heads * i), gram?.subarray(heads * heads * i)));
}

function comparePair(a: Float32Array, b: Float32Array, heads: number, k: number, stats: Float64Array, gram?: Float64Array): void {
  for (let h = 0; h < heads; h++) {
    let dot = 0;
    let em = 0;
    const end = (h + 1) * k;
    for (let i = h * k; i < end; i++) {
      const x = a[i];
      const y = b[i];
      dot += x * y;
      const m = 0.5 * (x + y);
      if (m > 0) em -= m * Math.log(m);
    }
    stats[h] = dot;
    stats[heads + h] = em;
  }
  if (!gram) return;
  for (let x = 0; x < heads; x++) {
    for (let y = 0; y < heads; y++) {
      let s = 0;
      for (let i = 0; i < k; i++) s += a[x * k + i] * b[y * k + i];
      gram[x * heads + y] = s;
    }
  }
}

/** log Σ_j e^(scale · x[o + j]) over n entries (−Infinity for an all −Infinity row). */
function logSumExpScaled(x: Float32Array, o: number, n: number, scale: number): number {
  let max = -Infinity;
  for (let j = 0; j < n; j++) max = Math.max(max, x[o + j] * scale);
  if (max === -Infinity) return -Infinity;
  let sum = 0;
  for (let j = 0; j < n; j++) sum += Math.exp(x[o + j] * scale - max);
  return max + Math.log(sum);
}

/** `Backend.klDivergence`: per-row KL(softmax(teacher/T) ‖ softmax(student/T)) and `gradScale · (q − p)`. */
export function klDivergenceRef(
  student: Float32Array, teacher: Float32Array, losses: Float32Array, rows: number, cols: number, temperature: number,
  dstudent?: Float32Array, gradScale = 1,
): void {
  const inv = 1 / temperature;
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const ls = logSumExpScaled(student, o, cols, inv);
    const lt = logSumExpScaled(teacher, o, cols, inv);
    let sum = 0;
    for (let j = 0; j < cols; j++) {
      const logP = teacher[o + j] * inv - lt;
      const logQ = student[o + j] * inv - ls; // read before dstudent (which may alias student) is written
      const p = Math.exp(logP);
      if (p > 0) sum += p * (logP - logQ);
      if (dstudent) dstudent[o + j] = gradScale * (Math.exp(logQ) - p);
    }
    losses[r] = sum;
  }
}

/** `Backend.adamw`: one AdamW update in place, in float64 arithmetic. */
export function adamwRef(p: AdamWParams): void {
  const { w, g, m, v, n, lr, beta1: b1, beta2: b2, eps } = p;
  const c1 = 1 - b1 ** p.step;
  const c2 = 1 - b2 ** p.step;
  const decay = 1 - lr * p.weightDecay;
  const scale = p.gradScale ?? 1;
  for (let j = 0; j < n; j++) {
    const gj = g[j] * scale;
    m[j] = b1 * m[j] + (1 - b1) * gj;
    v[j] = b2 * v[j] + (1 - b2) * gj * gj;
    w[j] = w[j] * decay - (lr * (m[j] / c1)) / (Math.sqrt(v[j] / c2) + eps);
  }
}

/** `Backend.sumSquares`. */
export function sumSquaresRef(x: Float32Array, n: number): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += x[i] * x[i];
  return s;
}
