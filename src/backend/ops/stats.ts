/** Op-table entries of the statistics and training kernels whose operands are plain arrays and numbers. */
import type { OpTable } from './spec.js';
import { arr, f32In, f32Out, ints, N, ROWS, ROWS_COLS, scalar, VEC_SHAPE } from './operands.js';
import { klDivergenceRef, packProbsRef, sumSquaresRef } from '../reference-stats.js';
import { ShapeError } from '../../errors.js';

export const STATS_OPS = {
  packProbs: {
    operands: [
      ...f32In((s) => s.heads * s.t * s.t, 'probs'), ...f32Out((s) => (s.heads * s.t * (s.t + 1)) / 2, 'packed'),
      ...ints('heads', 't'), arr('stats', 'f64', (s) => 2 * s.heads, { written: true }),
    ],
    shape: (s) => `${s.heads} maps of ${s.t} × ${s.t}`,
    check(probs, packed) {
      if (overlaps(packed, probs)) throw new ShapeError('packProbs', 'packed must not overlap probs');
    },
    reference: packProbsRef,
  },
  klDivergence: {
    operands: [
      ...f32In(ROWS_COLS, 'student', 'teacher'), ...f32Out(ROWS, 'losses'), ...ints('rows', 'cols'), scalar('temperature', 'positive'),
      arr('dstudent', 'f32', ROWS_COLS, { optional: true, written: true }), scalar('gradScale', 'finite', 1),
    ],
    shape: (s) => `logits (${s.rows}, ${s.cols})`,
    reference: klDivergenceRef,
  },
  sumSquares: {
    operands: [...f32In(N, 'x'), ...ints('n')],
    shape: VEC_SHAPE,
    reference: sumSquaresRef,
  },
} as const satisfies OpTable<'packProbs' | 'klDivergence' | 'sumSquares'>;

function overlaps(a: Float32Array, b: Float32Array): boolean {
  return a.buffer === b.buffer && a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength;
}
