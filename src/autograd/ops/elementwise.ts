/** Elementwise ops: residual add, SwiGLU's `silu(gate) · up`, and token embedding lookup. */
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

export const siluMul = defineVarOp<SiluMulArgs>({
  name: 'siluMul',
  forward(be, a) {
    const y = new Float32Array(a.gate.data.length);
    be.siluMul(a.gate.data, a.up.data, y, y.length);
    return y;
  },
  backward(be, s, dy) {
    const n = dy.length;
    const dg = s.gate.requiresGrad ? gradTarget(s.gate) : { buf: new Float32Array(n), fresh: true };
    const du = s.up.requiresGrad ? gradTarget(s.up) : { buf: new Float32Array(n), fresh: true };
    be.siluMulBackward(s.gate.data, s.up.data, dy, dg.buf, du.buf, n);
    if (s.gate.requiresGrad) commitGrad(be, s.gate, dg);
    if (s.up.requiresGrad) commitGrad(be, s.up, du);
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
