/**
 * Linear layer `y = x · Wᵀ (+ b)` with `W` stored `(outDim, inDim)` (PyTorch / Hugging Face layout), and its
 * gradient: `dx += dy · W`, `dW += dyᵀ · x`, `db += Σ_rows dy`, all as GEMMs on the backend (accumulating with
 * `beta = 1`, so no temporaries).
 */
import { linear as linearKernel } from '../../nn/layers.js';
import { defineOp, Var } from '../tape.js';

export type LinearArgs = {
  x: Var; // (rows, inDim)
  w: Var; // (outDim, inDim)
  b?: Var; // (outDim)
  rows: number;
  inDim: number;
  outDim: number;
};

type Saved = LinearArgs & { y: Var };

export const linear = defineOp<LinearArgs, Var, Saved>({
  name: 'linear',
  forward(be, a) {
    const y = new Var(linearKernel(be, a.x.data, a.w.data, a.b?.data, a.rows, a.inDim, a.outDim));
    return { out: y, saved: { ...a, y } };
  },
  backward(be, s) {
    const dy = s.y.grad;
    if (!dy) return;
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
