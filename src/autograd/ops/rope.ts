/**
 * Rotary position embedding as an op. Rotations are orthogonal, so the gradient is the inverse rotation of the
 * output gradient (the backend's `rope(..., inverse = true)`).
 */
import type { RopeStyle } from '../../backend/backend.js';
import { accumulate, defineVarOp, type Var } from '../tape.js';

export type RopeArgs = {
  x: Var; // (nTok, nHeads, headDim)
  pos: Int32Array; // (nTok)
  cos: Float32Array;
  sin: Float32Array;
  nTok: number;
  nHeads: number;
  headDim: number;
  style: RopeStyle;
};

export const rope = defineVarOp<RopeArgs>({
  name: 'rope',
  forward(be, a) {
    const y = a.x.data.slice();
    be.rope(y, a.nTok, a.nHeads, a.headDim, a.pos, a.cos, a.sin, a.style);
    return y;
  },
  backward(be, s, dy) {
    if (!s.x.requiresGrad) return;
    const g = dy.slice();
    be.rope(g, s.nTok, s.nHeads, s.headDim, s.pos, s.cos, s.sin, s.style, true);
    accumulate(be, s.x, g, true);
  },
});
