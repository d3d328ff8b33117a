/** Elementwise ops: residual add, scaling, the gated MLPs' `silu(gate) · up` / `gelu_tanh(gate) · up`, and token embedding lookup. */
import { accumulate, commitGrad, defineVarOp, gradTarget, Var } from '../tape.js';

export type AddArgs = { a: Var; b: Var };

export const add = defineVarOp<AddArgs>({
  name: 'add',
  forward(be, a) {
    const n = a.a.data.length;
    if (a.b.data.length !== n) throw new Error(`add: lengths ${n} and ${a.b.data.length} differ`);
    const y = new Float32Array(n);
    be.add(a.a.data, a.b.data, y, n);
    return y;
  },
  backward(be, s, dy) {
    accumulate(be, s.a, dy);
    accumulate(be, s.b, dy);
  },
});

export type SiluMulArgs = { gate: Var; up: Var };

type GatedKernels = {
  fwd: 'siluMul' | 'geluTanhMul';
  bwd: 'siluMulBackward' | 'geluTanhMulBackward';
};

/** `act(gate) · up` over one backend kernel pair (forward and backward side by side). */
function gatedOp(name: string, k: GatedKernels) {
  return defineVarOp<SiluMulArgs>({
    name,
    forward(be, a) {
      const y = new Float32Array(a.gate.data.length);
      be[k.fwd](a.gate.data, a.up.data, y, y.length);
      return y;
    },
    backward(be, s, dy) {
      const n = dy.length;
      const dg = s.gate.requiresGrad ? gradTarget(s.gate) : { buf: new Float32Array(n), fresh: true };
      const du = s.up.requiresGrad ? gradTarget(s.up) : { buf: new Float32Array(n), fresh: true };
      be[k.bwd](s.gate.data, s.up.data, dy, dg.buf, du.buf, n);
      if (s.gate.requiresGrad) commitGrad(be, s.gate, dg);
      if (s.up.requiresGrad) commitGrad(be, s.up, du);
    },
  });
}

export const siluMul = gatedOp('siluMul', { fwd: 'siluMul', bwd: 'siluMulBackward' });
export const geluTanhMul = gatedOp('geluTanhMul', { fwd: 'geluTanhMul', bwd: 'geluTanhMulBackward' });

export type ScaleArgs = { x: Var; alpha: number };

/** `alpha · x` (Gemma's embedding scale); the gradient is `alpha · dy`. */
export const scale = defineVarOp<ScaleArgs>({
  name: 'scale',
  forward(be, a) {
    const y = new Float32Array(a.x.data.length);
    be.scale(a.x.data, a.alpha, y, y.length);
    return y;
  },
  backward(be, s, dy) {
    if (!s.x.requiresGrad) return;
    const g = new Float32Array(dy.length);
    be.scale(dy, s.alpha, g, g.length);
    accumulate(be, s.x, g, true);
  },
});

/** Final-logit soft-capping `cap · tanh(z / cap)`; the gradient is `dy · (1 − tanh²)`. */
export type SoftcapArgs = { x: Var; cap: number };

export const softcap = defineVarOp<SoftcapArgs>({
  name: 'softcap',
  forward(_be, a) {
    const y = new Float32Array(a.x.data.length);
    for (let i = 0; i < y.length; i++) y[i] = a.cap * Math.tanh(a.x.data[i] / a.cap);
    return y;
  },
  backward(be, s, dy) {
    if (!s.x.requiresGrad) return;
    const g = new Float32Array(dy.length);
    for (let i = 0; i < g.length; i++) {
      const t = Math.tanh(s.x.data[i] / s.cap);
      g[i] = dy[i] * (1 - t * t);
    }
    accumulate(be, s.x, g, true);
  },
});

export type EmbeddingArgs = { table: Var; ids: Int32Array; vocab: number; dim: number };

export const embedding = defineVarOp<EmbeddingArgs>({
  name: 'embedding',
  forward(be, a) {
    const y = new Float32Array(a.ids.length * a.dim);
    be.embedding(a.table.data, a.ids, y, a.vocab, a.dim);
    return y;
  },
  backward(be, s, dy) {
    if (s.table.requiresGrad) be.embeddingBackward(dy, s.ids, s.table.gradBuffer(), s.vocab, s.dim);
  },
});
