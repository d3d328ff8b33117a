/** Elementwise ops: residual add, SwiGLU's `silu(gate) · up`, and token embedding lookup. */
import { accumulate, commitGrad, defineOp, gradTarget, Var } from '../tape.js';

export type AddArgs = { a: Var; b: Var };
type AddSaved = AddArgs & { y: Var };

export const add = defineOp<AddArgs, Var, AddSaved>({
  name: 'add',
  forward(be, a) {
    const n = a.a.data.length;
    if (a.b.data.length !== n) throw new Error(`add: lengths ${n} and ${a.b.data.length} differ`);
    const y = new Var(new Float32Array(n));
    be.add(a.a.data, a.b.data, y.data, n);
    return { out: y, saved: { ...a, y } };
  },
  backward(be, s) {
    const dy = s.y.grad;
    if (!dy) return;
    accumulate(be, s.a, dy);
    accumulate(be, s.b, dy);
  },
});

export type SiluMulArgs = { gate: Var; up: Var };
type SiluSaved = SiluMulArgs & { y: Var };

export const siluMul = defineOp<SiluMulArgs, Var, SiluSaved>({
  name: 'siluMul',
  forward(be, a) {
    const n = a.gate.data.length;
    const y = new Var(new Float32Array(n));
    be.siluMul(a.gate.data, a.up.data, y.data, n);
    return { out: y, saved: { ...a, y } };
  },
  backward(be, s) {
    const dy = s.y.grad;
    if (!dy) return;
    const n = dy.length;
    const dg = s.gate.requiresGrad ? gradTarget(s.gate) : { buf: new Float32Array(n), fresh: true };
    const du = s.up.requiresGrad ? gradTarget(s.up) : { buf: new Float32Array(n), fresh: true };
    be.siluMulBackward(s.gate.data, s.up.data, dy, dg.buf, du.buf, n);
    if (s.gate.requiresGrad) commitGrad(be, s.gate, dg);
    if (s.up.requiresGrad) commitGrad(be, s.up, du);
  },
});

export type EmbeddingArgs = { table: Var; ids: Int32Array; vocab: number; dim: number };
type EmbSaved = EmbeddingArgs & { y: Var };

export const embedding = defineOp<EmbeddingArgs, Var, EmbSaved>({
  name: 'embedding',
  forward(be, a) {
    const y = new Var(new Float32Array(a.ids.length * a.dim));
    be.embedding(a.table.data, a.ids, y.data, a.vocab, a.dim);
    return { out: y, saved: { ...a, y } };
  },
  backward(be, s) {
    if (!s.y.grad || !s.table.requiresGrad) return;
    be.embeddingBackward(s.y.grad, s.ids, s.table.gradBuffer(), s.vocab, s.dim);
  },
});
