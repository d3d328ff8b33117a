/**
 * Causal grouped-query attention (training layout `(B, T, H, D)`, no KV cache) and the shared-attention path.
 *
 * - {@link attention}: `out = softmax(q·kᵀ·scale, causal) · v`, also returning the probabilities `P` `(B, H, T, T)`
 *   as a Var. Its backward (GEMM-blocked for long sequences, `nn/attention-backward.ts`) receives `P.grad` as
 *   `dProbsExtra`: that is how layers that reused these probabilities (below) send their gradient into this layer's
 *   q and k.
 * - {@link probsTimesV}: `out = P · v` for a shared layer with the anchor's `P`; backward gives `dv` and
 *   ACCUMULATES `dP` into the anchor's `P.grad`. Tape order guarantees every shared layer's backward runs before the
 *   anchor's attention backward.
 */
import { accumulate, defineOp, Var } from '../tape.js';
import { attention as attentionForward, gatherHeads as gatherHeadsKernel, probsTimesV as probsTimesVForward } from '../../nn/attention.js';
import { attentionBackward as attentionBackwardGemm, probsTimesVBackward as probsTimesVBackwardGemm } from '../../nn/attention-backward.js';

export type AttentionShape = {
  batch: number;
  t: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
};

export type AttentionArgs = AttentionShape & {
  q: Var; // (B, T, H, D)
  k: Var; // (B, T, Hkv, D)
  v: Var; // (B, T, Hkv, D)
  scale: number;
  /** Sliding window (0 or absent: full causal attention). */
  window?: number;
  /** Compute `probs` even in inference mode (an anchor whose shared layers need them). */
  keepProbs?: boolean;
};

export type AttentionOut = { out: Var; probs: Var };

type Saved = AttentionArgs & AttentionOut;

export const attention = defineOp<AttentionArgs, AttentionOut, Saved>({
  name: 'attention',
  forward(be, a, needGrad) {
    const { batch, t, nHeads: nh, nKvHeads: nkv, headDim: d } = a;
    const out = new Var(new Float32Array(batch * t * nh * d));
    const wantProbs = needGrad || a.keepProbs === true;
    const probs = new Var(wantProbs ? new Float32Array(batch * nh * t * t) : new Float32Array(0));
    attentionForward(be, {
      q: a.q.data, k: a.k.data, v: a.v.data, out: out.data, probs: wantProbs ? probs.data : undefined,
      batch, tq: t, s: t, nHeads: nh, nKvHeads: nkv, headDim: d, qPos0: 0, scale: a.scale, window: a.window,
    });
    return { out: { out, probs }, saved: { ...a, out, probs } };
  },
  backward(be, s) {
    const { batch, t, nHeads: nh, nKvHeads: nkv, headDim: d } = s;
    const dout = s.out.grad ?? new Float32Array(s.out.data.length);
    const dq = new Float32Array(s.q.data.length);
    const dk = new Float32Array(s.k.data.length);
    const dv = new Float32Array(s.v.data.length);
    attentionBackwardGemm(be, {
      q: s.q.data, k: s.k.data, v: s.v.data, probs: s.probs.data, dout, dq, dk, dv,
      batch, tq: t, s: t, nHeads: nh, nKvHeads: nkv, headDim: d, scale: s.scale,
      dProbsExtra: s.probs.grad ?? undefined,
    });
    accumulate(be, s.q, dq, true);
    accumulate(be, s.k, dk, true);
    accumulate(be, s.v, dv, true);
  },
});

export type ProbsTimesVArgs = AttentionShape & {
  probs: Var; // (B, H, T, T), the anchor's
  v: Var; // (B, T, Hkv, D), this layer's
};

type PvSaved = ProbsTimesVArgs & { out: Var };

export const probsTimesV = defineOp<ProbsTimesVArgs, Var, PvSaved>({
  name: 'probsTimesV',
  forward(be, a) {
    const { batch, t, nHeads: nh, nKvHeads: nkv, headDim: d } = a;
    if (a.probs.data.length !== batch * nh * t * t) {
      throw new Error(`probsTimesV: the anchor's probabilities were not kept (${a.probs.data.length} elements)`);
    }
    const out = new Var(new Float32Array(batch * t * nh * d));
    probsTimesVForward(be, { probs: a.probs.data, v: a.v.data, out: out.data, batch, tq: t, s: t, nHeads: nh, nKvHeads: nkv, headDim: d }, 0);
    return { out, saved: { ...a, out } };
  },
  backward(be, s) {
    const dout = s.out.grad;
    if (!dout) return;
    const { batch, t, nHeads: nh, nKvHeads: nkv, headDim: d } = s;
    const dProbs = new Float32Array(s.probs.data.length);
    const dv = new Float32Array(s.v.data.length);
    probsTimesVBackwardGemm(be, { probs: s.probs.data, v: s.v.data, dout, dProbs, dv, batch, tq: t, s: t, nHeads: nh, nKvHeads: nkv, headDim: d });
    accumulate(be, s.probs, dProbs, true);
    accumulate(be, s.v, dv, true);
  },
});

export type GatherHeadsArgs = {
  probs: Var; // (B, H, T, S)
  heads: Int32Array; // output head h = input head heads[h]
  batch: number;
  /** Elements per head: T·S. */
  rows: number;
};

/**
 * Head-aligned sharing: reorder (and repeat) the anchor's probability heads for a shared layer. The backward
 * scatter-adds each output head's gradient into the anchor head it came from.
 */
export const gatherHeads = defineOp<GatherHeadsArgs, Var, GatherHeadsArgs & { y: Var }>({
  name: 'gatherHeads',
  forward(_be, a) {
    const y = new Var(gatherHeadsKernel(a.probs.data, a.heads, a.batch, a.rows));
    return { out: y, saved: { ...a, y } };
  },
  backward(be, s) {
    if (!s.y.grad || !s.probs.requiresGrad) return;
    accumulate(be, s.probs, gatherHeadsKernel(s.y.grad, s.heads, s.batch, s.rows, new Float32Array(s.probs.data.length), true), true);
  },
});
