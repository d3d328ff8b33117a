/** Op-table entries of the statistics and training kernels whose operands are plain arrays and numbers. */
import { op } from './spec.js';
import { arr, f32In, f32Out, ints, N, ROWS, ROWS_COLS, scalar, VEC_SHAPE } from './operands.js';
import { klDivergenceRef, packProbsRef, sumSquaresRef } from '../reference-stats.js';
import { ShapeError } from '../../errors.js';

export const STATS_OPS = {
  /**
   * Attention-map statistics, step 1 (`echoatt analyze`): pack `heads` causal maps `probs` `(heads, t, t)` (row `r`
   * keeps columns `0 ..= r`) to their lower triangles, row after row, into `packed` `(heads, K)`, `K = t(t+1)/2`, and
   * write per head `stats[h] = Σ p²` and `stats[heads + h] = Σ −p ln p` (`0 ln 0 = 0`), summed in float64 as
   * `Backend.compareProbs` sums (the entropy is exactly `compareProbs(packed, packed)`'s, so identical maps compare
   * to a Jensen–Shannon divergence of exactly 0). `stats` is a `Float64Array` of `2 · heads`.
   */
  packProbs: op({
    operands: [
      ...f32In((s) => s.heads * s.t * s.t, 'probs'), ...f32Out((s) => (s.heads * s.t * (s.t + 1)) / 2, 'packed'),
      ...ints('heads', 't'), arr('stats', 'f64', (s) => 2 * s.heads, { written: true }),
    ],
    shape: (s) => `${s.heads} maps of ${s.t} × ${s.t}`,
    reference: packProbsRef,
    check(probs, packed) {
      if (overlaps(packed, probs)) throw new ShapeError('packProbs', 'packed must not overlap probs');
    },
  }),
  /**
   * Distillation KL per row of `(rows, cols)` logits at temperature `temperature` (> 0): with
   * `p = softmax(teacher[r] / T)`, `q = softmax(student[r] / T)`, writes `losses[r] = Σ_j p_j (log p_j − log q_j)`
   * (terms with `p_j = 0` add 0). If `dstudent` is given, writes `gradScale · (q − p)` into it (`dstudent` may
   * alias `student`); the gradient of `losses[r]` with respect to `student[r]` is that with `gradScale = 1 / T`.
   */
  klDivergence: op({
    operands: [
      ...f32In(ROWS_COLS, 'student', 'teacher'), ...f32Out(ROWS, 'losses'), ...ints('rows', 'cols'), scalar('temperature', 'positive'),
      arr('dstudent', 'f32', ROWS_COLS, { optional: true, written: true }), scalar('gradScale', 'finite', 1),
    ],
    shape: (s) => `logits (${s.rows}, ${s.cols})`,
    reference: klDivergenceRef,
  }),
  /** `Σ x[i]²` over the first `n` elements, accumulated in float64 (for gradient-norm clipping). */
  sumSquares: op({
    operands: [...f32In(N, 'x'), ...ints('n')],
    shape: VEC_SHAPE,
    reference: sumSquaresRef,
  }),
};

function overlaps(a: Float32Array, b: Float32Array): boolean {
  return a.buffer === b.buffer && a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength;
}
