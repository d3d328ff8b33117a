/** RMSNorm over the last dimension and its gradient (the backend's fused `rmsnormBackward`). */
import { commitGrad, defineVarOp, gradTarget, type Var } from '../tape.js';

export type RmsNormArgs = {
  x: Var; // (rows, dim)
  w: Var; // (dim)
  rows: number;
  dim: number;
  eps: number;
  /** The scale is `w + wOffset` (Gemma: 1); default 0. */
  wOffset?: number;
};

export const rmsnorm = defineVarOp<RmsNormArgs>({
  name: 'rmsnorm',
  forward(be, a) {
    const y = new Float32Array(a.rows * a.dim);
    be.rmsnorm(a.x.data, a.w.data, y, a.rows, a.dim, a.eps, a.wOffset ?? 0);
    return y;
  },
  backward(be, s, dy) {
    // The kernel always writes dx and accumulates dw; route unwanted outputs to scratch.
    const dxT = s.x.requiresGrad ? gradTarget(s.x) : { buf: new Float32Array(s.x.data.length), fresh: true };
    const dw = s.w.requiresGrad ? s.w.gradBuffer() : new Float32Array(s.dim);
    be.rmsnormBackward(s.x.data, s.w.data, dy, dxT.buf, dw, s.rows, s.dim, s.eps, s.wOffset ?? 0);
    if (s.x.requiresGrad) commitGrad(be, s.x, dxT);
  },
});
