/**
 * Linear layer `y = x · Wᵀ (+ b)` with `W` stored `(outDim, inDim)` (PyTorch / Hugging Face layout), and its
 * gradient: `dx += dy · W`, `dW += dyᵀ · x`, `db += Σ_rows dy`, all as GEMMs on the backend (accumulating with
 * `beta = 1`, so no temporaries).
 */
import { linear as linearKernel, linearRuns as linearRunsKernel, type LinearRun } from '../../nn/layers.js';
import { defineVarOp, type Var } from '../tape.js';

export type LinearArgs = {
  x: Var; // (rows, inDim)
  w: Var; // (outDim, inDim)
  b?: Var; // (outDim)
  rows: number;
  inDim: number;
  outDim: number;
};

export const linear = defineVarOp<LinearArgs>({
  name: 'linear',
  forward(be, a) {
    return linearKernel(be, a.x.data, a.w.data, a.b?.data, a.rows, a.inDim, a.outDim);
  },
  backward(be, s, dy) {
    const { rows, inDim, outDim } = s;
    if (s.x.requiresGrad) {
      const beta = s.x.grad === null ? 0 : 1;
      be.gemm({ m: rows, n: inDim, k: outDim, a: dy, b: s.w.data, c: s.x.gradBuffer(), beta });
    }
    if (s.w.requiresGrad) {
      be.gemm({ m: outDim, n: inDim, k: rows, a: dy, b: s.x.data, c: s.w.gradBuffer(), transA: true, beta: 1 });
    }
    if (s.b?.requiresGrad) {
      const ones = new Float32Array(rows).fill(1);
      be.gemm({ m: 1, n: outDim, k: rows, a: ones, b: dy, c: s.b.gradBuffer(), beta: 1 });
    }
  },
});

/** One block of {@link linearRuns}: `nn/layers.ts`'s LinearRun over Vars (weight and bias views). */
export type LinearRunVar = Omit<LinearRun, 'w' | 'bias'> & { w: Var; b?: Var };

export type LinearRunsArgs = {
  x: Var; // (rows, xCols)
  runs: readonly LinearRunVar[];
  rows: number;
  xCols: number;
  outDim: number;
};

/**
 * `y = Σ_runs` of block products over views of other layers' weights (a head-shared layer's projections). Backward
 * per run: `dx[:, xOff:] += dy[:, yOff:] · W_view`, `dW_view += dy[:, yOff:]ᵀ · x[:, xOff:]`, `db_view += Σ dy`.
 */
export const linearRuns = defineVarOp<LinearRunsArgs>({
  name: 'linearRuns',
  forward(be, a) {
    const runs = a.runs.map((r) => ({ ...r, w: r.w.data, bias: r.b?.data }));
    return linearRunsKernel(be, a.x.data, runs, a.rows, a.xCols, a.outDim);
  },
  backward(be, s, dy) {
    const { rows, xCols, outDim } = s;
    for (const r of s.runs) {
      if (s.x.requiresGrad) {
        be.gemm({ m: rows, n: r.k, k: r.n, a: dy, aOff: r.yOff, lda: outDim, b: r.w.data, bOff: r.wOff, ldb: r.ldw, c: s.x.gradBuffer(), cOff: r.xOff, ldc: xCols, beta: 1 });
      }
      if (r.w.requiresGrad) {
        be.gemm({ m: r.n, n: r.k, k: rows, transA: true, a: dy, aOff: r.yOff, lda: outDim, b: s.x.data, bOff: r.xOff, ldb: xCols, c: r.w.gradBuffer(), cOff: r.wOff, ldc: r.ldw, beta: 1 });
      }
      if (r.b?.requiresGrad) {
        const ones = new Float32Array(rows).fill(1);
        be.gemm({ m: 1, n: r.n, k: rows, a: ones, b: dy, bOff: r.yOff, ldb: outDim, c: r.b.gradBuffer(), cOff: r.bOff ?? 0, beta: 1 });
      }
    }
  },
});
