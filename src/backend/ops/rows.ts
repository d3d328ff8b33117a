/** Op-table entries of the row-wise kernels: softmax, log-softmax, cross-entropy, embedding lookups. */
import { op, type Scalars } from './spec.js';
import { arr, f32In, f32Out, ints, ROWS, ROWS_COLS, scalar } from './operands.js';
import { ShapeError } from '../../errors.js';

type F32 = Float32Array;

const MATRIX_SHAPE = (s: Scalars): string => `(${s.rows}, ${s.cols})`;
const TABLE = (s: Scalars): number => s.vocab * s.dim;
const ROWS_OF_IDS = (s: Scalars, len: (name: string) => number): number => len('ids') * s.dim;
const EMBEDDING_SHAPE = (s: Scalars, len: (name: string) => number): string => `table (${s.vocab}, ${s.dim}), ${len('ids')} ids`;

export const ROW_OPS = {
  /**
   * Row softmax of `x` `(rows, cols)` into `out` (may alias `x`). With `causalOffset = c`, row `r` keeps columns
   * `0 ..= r + c` and the rest become exactly 0 (a row with no kept column is all 0).
   */
  softmax: op({
    operands: [...f32In(ROWS_COLS, 'x'), ...f32Out(ROWS_COLS, 'out'), ...ints('rows', 'cols'), scalar('causalOffset', 'sint')],
    shape: MATRIX_SHAPE,
    reference(x: F32, out: F32, rows: number, cols: number, causalOffset?: number): void {
      for (let r = 0; r < rows; r++) {
        const o = r * cols;
        const last = causalOffset === undefined ? cols - 1 : Math.min(cols - 1, r + causalOffset);
        let max = -Infinity;
        for (let j = 0; j <= last; j++) max = Math.max(max, x[o + j]);
        let sum = 0;
        const e = new Float64Array(cols);
        for (let j = 0; j <= last; j++) {
          e[j] = Math.exp(x[o + j] - max);
          sum += e[j];
        }
        for (let j = 0; j < cols; j++) out[o + j] = j <= last ? e[j] / sum : 0;
      }
    },
  }),
  /** Backward of softmax: `dx[r, j] = p[r, j] · (dp[r, j] − Σ_k p[r, k] · dp[r, k])`. `dx` may alias `dp`. */
  softmaxBackward: op({
    operands: [...f32In(ROWS_COLS, 'p', 'dp'), ...f32Out(ROWS_COLS, 'dx'), ...ints('rows', 'cols')],
    shape: MATRIX_SHAPE,
    reference: softmaxBackwardRef,
  }),
  /** Log-softmax of each row of `x` `(rows, cols)` into `out` (may alias `x`). */
  logSoftmax: op({
    operands: [...f32In(ROWS_COLS, 'x'), ...f32Out(ROWS_COLS, 'out'), ...ints('rows', 'cols')],
    shape: MATRIX_SHAPE,
    reference(x: F32, out: F32, rows: number, cols: number): void {
      for (let r = 0; r < rows; r++) {
        const o = r * cols;
        const lse = logSumExp(x, o, cols);
        for (let j = 0; j < cols; j++) out[o + j] = x[o + j] - lse;
      }
    },
  }),
  /**
   * Cross-entropy of `logits` `(rows, cols)` against `targets` `(rows)`. Writes each row's loss
   * `−log softmax(logits[r])[targets[r]]` into `losses` `(rows)` (0 where `targets[r] === ignoreIndex`).
   * If `dlogits` is given, writes `gradScale · (softmax(logits[r]) − onehot(targets[r]))` into it (0 rows for ignored
   * targets); `dlogits` may alias `logits`. Throws on a target outside `[0, cols)` other than `ignoreIndex`.
   */
  crossEntropy: op({
    operands: [
      ...f32In(ROWS_COLS, 'logits'), arr('targets', 'i32', ROWS), ...f32Out(ROWS, 'losses'), ...ints('rows', 'cols'),
      arr('dlogits', 'f32', ROWS_COLS, { optional: true, written: true }), scalar('gradScale', 'num', 1), scalar('ignoreIndex', 'num', -100),
    ],
    shape: (s) => `logits (${s.rows}, ${s.cols})`,
    reference: crossEntropyRef,
    check: (_logits, targets, _losses, rows, cols, _dlogits, _gradScale, ignoreIndex = -100) => checkTargets(targets, rows, cols, ignoreIndex),
  }),
  /** Row gather: `out[t, :] = table[ids[t], :]`, `table` `(vocab, dim)`, `out` `(ids.length, dim)`. Throws on an id out of range. */
  embedding: op({
    operands: [...f32In(TABLE, 'table'), arr('ids', 'i32', () => 0), ...f32Out(ROWS_OF_IDS, 'out'), ...ints('vocab', 'dim')],
    shape: EMBEDDING_SHAPE,
    reference(table: F32, ids: Int32Array, out: F32, vocab: number, dim: number): void {
      checkIds('embedding', ids, vocab);
      for (let t = 0; t < ids.length; t++) out.set(table.subarray(ids[t] * dim, ids[t] * dim + dim), t * dim);
    },
    check: (_table, ids, _out, vocab) => checkIds('embedding', ids, vocab),
  }),
  /** Backward of `embedding`: ACCUMULATES `dTable[ids[t], :] += dOut[t, :]` (repeated ids add up). */
  embeddingBackward: op({
    operands: [...f32In(ROWS_OF_IDS, 'dOut'), arr('ids', 'i32', () => 0), ...f32Out(TABLE, 'dTable'), ...ints('vocab', 'dim')],
    shape: EMBEDDING_SHAPE,
    reference(dOut: F32, ids: Int32Array, dTable: F32, vocab: number, dim: number): void {
      checkIds('embeddingBackward', ids, vocab);
      for (let t = 0; t < ids.length; t++) {
        const id = ids[t];
        for (let j = 0; j < dim; j++) dTable[id * dim + j] += dOut[t * dim + j];
      }
    },
    check: (_dOut, ids, _dTable, vocab) => checkIds('embeddingBackward', ids, vocab),
  }),
};

/** `Backend.softmaxBackward` (also used by the reference attention backward). */
export function softmaxBackwardRef(p: F32, dp: F32, dx: F32, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let dot = 0;
    for (let j = 0; j < cols; j++) dot += p[o + j] * dp[o + j];
    for (let j = 0; j < cols; j++) dx[o + j] = p[o + j] * (dp[o + j] - dot);
  }
}

function crossEntropyRef(
  logits: F32, targets: Int32Array, losses: F32, rows: number, cols: number, dlogits?: F32, gradScale = 1, ignoreIndex = -100,
): void {
  checkTargets(targets, rows, cols, ignoreIndex);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const t = targets[r];
    if (t === ignoreIndex) {
      losses[r] = 0;
      if (dlogits) dlogits.fill(0, o, o + cols);
      continue;
    }
    const lse = logSumExp(logits, o, cols);
    losses[r] = lse - logits[o + t];
    if (dlogits) {
      for (let j = 0; j < cols; j++) dlogits[o + j] = gradScale * (Math.exp(logits[o + j] - lse) - (j === t ? 1 : 0));
    }
  }
}

function checkTargets(targets: Int32Array, rows: number, cols: number, ignoreIndex: number): void {
  for (let r = 0; r < rows; r++) {
    const t = targets[r];
    if (t !== ignoreIndex && !(t >= 0 && t < cols)) throw new ShapeError('crossEntropy', `target ${t} at row ${r} is outside [0, ${cols})`);
  }
}

function checkIds(op: string, ids: Int32Array, vocab: number): void {
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t];
    if (!(id >= 0 && id < vocab)) throw new ShapeError(op, `token id ${id} at position ${t} is outside [0, ${vocab})`);
  }
}

function logSumExp(x: F32, o: number, n: number): number {
  let max = -Infinity;
  for (let j = 0; j < n; j++) max = Math.max(max, x[o + j]);
  if (max === -Infinity) return -Infinity;
  let sum = 0;
  for (let j = 0; j < n; j++) sum += Math.exp(x[o + j] - max);
  return max + Math.log(sum);
}
