/**
 * The autograd: every op's gradient against central finite differences (losses against float64 reference
 * implementations), on every backend; a whole tiny model's parameter gradients (a teacher and a shared-attention
 * student with GQA and Qwen2-style q/k/v biases) checked the same way; the trainable forward's loss against the
 * inference forward's; freezing; and the compile-time guarantee that an op cannot lack a backward.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { availableBackends, getBackend } from '../src/backend/index.js';
import type { Backend } from '../src/backend/backend.js';
import { apply, defineOp, OPS, Param, Tape, Var } from '../src/autograd/index.js';
import { configFromJson } from '../src/models/config.js';
import { randomLlamaWeights } from '../src/models/random.js';
import { LlamaModel } from '../src/models/llama.js';
import { loadModel } from '../src/models/load.js';
import { makePlan } from '../src/models/sharing-plan.js';
import { buildStudent } from '../src/sharing/student.js';
import { assertClose, f32, randInts, randn, sharedDir } from './helpers.js';
import { forwardTrain, modelParams } from '../src/models/tape-ops.js';
import { withHeadMap, withPlan } from '../src/models/surgery.js';
import { makeHeadMap } from '../src/models/head-map.js';

/** Test-only op: `Σ r ⊙ x`, a scalar that turns any op output into a loss with `∂L/∂out = r`. */
const dotWith = defineOp<{ x: Var; r: Float32Array }, Var, { x: Var; r: Float32Array; y: Var }>({
  name: 'dotWith',
  forward(_be, a) {
    let s = 0;
    for (let i = 0; i < a.r.length; i++) s += a.r[i] * a.x.data[i];
    const y = new Var(Float32Array.of(s));
    return { out: y, saved: { ...a, y } };
  },
  backward(_be, s) {
    if (!s.y.grad || !s.x.requiresGrad) return;
    const g = s.x.gradBuffer();
    for (let i = 0; i < s.r.length; i++) g[i] += s.r[i] * s.y.grad[0];
  },
});

// Compile-time proof: an op without a backward is a type error (this line must keep failing to type-check).
// @ts-expect-error -- 'backward' is missing
defineOp<{ x: Var }, Var, null>({ name: 'noGrad', forward: (_be, a) => ({ out: a.x, saved: null }) });

/**
 * Check the analytic gradients of `f(vars)` (a scalar Var built on a tape) against central differences in float64
 * of the same function, for every element of every Var in `vars`.
 */
function checkGrads(be: Backend, vars: Record<string, Var>, f: (tape: Tape | null) => Var, h = 1e-2, rtol = 1e-2, atol = 2e-3): void {
  const tape = new Tape(be);
  for (const v of Object.values(vars)) {
    v.requiresGrad = true;
    v.grad = null;
  }
  const loss = f(tape);
  tape.backward(loss);
  for (const [name, v] of Object.entries(vars)) {
    const fd = new Float64Array(v.data.length);
    for (let i = 0; i < v.data.length; i++) {
      const old = v.data[i];
      v.data[i] = old + h;
      const lp = f(null).data[0];
      v.data[i] = old - h;
      const lm = f(null).data[0];
      v.data[i] = old;
      fd[i] = (lp - lm) / (2 * h);
    }
    assertClose(v.grad ?? new Float32Array(v.data.length), fd, `${be.name} d${name}`, rtol, atol);
  }
}

const v = (n: number, seed: number, lo = -1, hi = 1) => new Var(randn(n, seed, lo, hi));

for (const name of availableBackends()) {
  describe(`autograd ops on ${name}: gradients match finite differences`, () => {
    const be = getBackend(name);

    test('linear with bias (x, W, b)', () => {
      const [rows, inDim, outDim] = [3, 5, 4];
      const x = v(rows * inDim, 1);
      const w = v(outDim * inDim, 2);
      const b = v(outDim, 3);
      const r = randn(rows * outDim, 4);
      checkGrads(be, { x, w, b }, (tape) => apply(tape, dotWith, { x: apply(tape, OPS.linear, { x, w, b, rows, inDim, outDim }, be), r }, be));
    });

    test('linear with one row (matvec path)', () => {
      const x = v(5, 1);
      const w = v(20, 2);
      const r = randn(4, 4);
      checkGrads(be, { x, w }, (tape) => apply(tape, dotWith, { x: apply(tape, OPS.linear, { x, w, rows: 1, inDim: 5, outDim: 4 }, be), r }, be));
    });

    test('rmsnorm (x, w)', () => {
      const [rows, dim] = [3, 6];
      const x = v(rows * dim, 5);
      const w = v(dim, 6);
      const r = randn(rows * dim, 7);
      checkGrads(be, { x, w }, (tape) => apply(tape, dotWith, { x: apply(tape, OPS.rmsnorm, { x, w, rows, dim, eps: 1e-5 }, be), r }, be));
    });

    for (const style of ['interleaved', 'half'] as const) {
      test(`rope (${style})`, () => {
        const [nTok, nHeads, headDim] = [3, 2, 4];
        const half = headDim / 2;
        const cos = new Float32Array(8 * half);
        const sin = new Float32Array(8 * half);
        for (let p = 0; p < 8; p++) for (let i = 0; i < half; i++) {
          cos[p * half + i] = Math.cos(p * 10000 ** (-(2 * i) / headDim));
          sin[p * half + i] = Math.sin(p * 10000 ** (-(2 * i) / headDim));
        }
        const x = v(nTok * nHeads * headDim, 8);
        const pos = Int32Array.of(0, 3, 5);
        const r = randn(x.data.length, 9);
        checkGrads(be, { x }, (tape) => apply(tape, dotWith, { x: apply(tape, OPS.rope, { x, pos, cos, sin, nTok, nHeads, headDim, style }, be), r }, be));
      });
    }

    test('causal GQA attention (q, k, v), with a second consumer of its probabilities', () => {
      const c = { batch: 2, t: 4, nHeads: 4, nKvHeads: 2, headDim: 3 };
      const q = v(c.batch * c.t * c.nHeads * c.headDim, 10);
      const k = v(c.batch * c.t * c.nKvHeads * c.headDim, 11);
      const vv = v(c.batch * c.t * c.nKvHeads * c.headDim, 12);
      const v2 = v(c.batch * c.t * c.nKvHeads * c.headDim, 13); // a shared layer's values
      const r1 = randn(q.data.length, 14);
      const r2 = randn(q.data.length, 15);
      checkGrads(be, { q, k, v: vv, v2 }, (tape) => {
        const a = apply(tape, OPS.attention, { q, k, v: vv, ...c, scale: 0.6, keepProbs: true }, be);
        const shared = apply(tape, OPS.probsTimesV, { probs: a.probs, v: v2, ...c }, be);
        const l1 = apply(tape, dotWith, { x: a.out, r: r1 }, be);
        const l2 = apply(tape, dotWith, { x: shared, r: r2 }, be);
        return apply(tape, OPS.weightedSum, { terms: [l1, l2], weights: [1, 1] }, be);
      });
    });

    test('gatherHeads (head-aligned sharing: heads reordered and repeated), into probsTimesV', () => {
      const c = { batch: 2, t: 3, nHeads: 4, nKvHeads: 2, headDim: 2 };
      const probs = v(c.batch * c.nHeads * c.t * c.t, 40, 0, 1);
      const vv = v(c.batch * c.t * c.nKvHeads * c.headDim, 41);
      const heads = Int32Array.of(2, 2, 0, 3);
      const r = randn(c.batch * c.t * c.nHeads * c.headDim, 42);
      checkGrads(be, { probs, v: vv }, (tape) => {
        const g = apply(tape, OPS.gatherHeads, { probs, heads, batch: c.batch, rows: c.t * c.t }, be);
        return apply(tape, dotWith, { x: apply(tape, OPS.probsTimesV, { probs: g, v: vv, ...c }, be), r }, be);
      });
    });

    test('linearRuns (row blocks and strided column blocks of other tensors, with bias slices)', () => {
      const [rows, dim] = [3, 4];
      const x = v(rows * dim, 43);
      const w1 = v(6 * dim, 44); // 3 blocks of 2 rows
      const w2 = v(dim * 6, 45); // read as column blocks with row stride 6
      const b1 = v(6, 46);
      const r = randn(rows * 4, 47);
      const r2 = randn(rows * dim, 48);
      checkGrads(be, { x, w1, w2, b1 }, (tape) => {
        const y = apply(tape, OPS.linearRuns, {
          x, rows, xCols: dim, outDim: 4, runs: [
            { w: w1, wOff: 2 * dim, ldw: dim, xOff: 0, k: dim, yOff: 0, n: 2, b: b1, bOff: 2 },
            { w: w1, wOff: 0, ldw: dim, xOff: 0, k: dim, yOff: 2, n: 2, b: b1, bOff: 0 },
          ],
        }, be);
        const z = apply(tape, OPS.linearRuns, {
          x: y, rows, xCols: 4, outDim: dim, runs: [
            { w: w2, wOff: 2, ldw: 6, xOff: 0, k: 2, yOff: 0, n: dim },
            { w: w2, wOff: 0, ldw: 6, xOff: 2, k: 2, yOff: 0, n: dim },
          ],
        }, be);
        const l1 = apply(tape, dotWith, { x: y, r }, be);
        const l2 = apply(tape, dotWith, { x: z, r: r2 }, be);
        return apply(tape, OPS.weightedSum, { terms: [l1, l2], weights: [1, 1] }, be);
      });
    });

    test('add and siluMul', () => {
      const a = v(7, 16, -3, 3);
      const b = v(7, 17);
      const r = randn(7, 18);
      checkGrads(be, { a, b }, (tape) => {
        const s = apply(tape, OPS.add, { a, b }, be);
        return apply(tape, dotWith, { x: apply(tape, OPS.siluMul, { gate: s, up: a }, be), r }, be); // a used twice
      });
    });

    test('embedding (repeated ids accumulate)', () => {
      const table = v(5 * 3, 19);
      const ids = Int32Array.of(1, 4, 1, 0);
      const r = randn(ids.length * 3, 20);
      checkGrads(be, { table }, (tape) => apply(tape, dotWith, { x: apply(tape, OPS.embedding, { table, ids, vocab: 5, dim: 3 }, be), r }, be));
    });

    test('crossEntropy (with an ignored row) matches a float64 reference', () => {
      const [rows, cols] = [4, 6];
      const logits = v(rows * cols, 21, -3, 3);
      const targets = Int32Array.of(2, -100, 5, 0);
      const ref = (x: ArrayLike<number>) => {
        let s = 0;
        for (const r of [0, 2, 3]) {
          let m = -Infinity;
          for (let j = 0; j < cols; j++) m = Math.max(m, x[r * cols + j]);
          let z = 0;
          for (let j = 0; j < cols; j++) z += Math.exp(x[r * cols + j] - m);
          s += m + Math.log(z) - x[r * cols + targets[r]];
        }
        return s / 3;
      };
      const y = apply(null, OPS.crossEntropy, { logits, targets, rows, cols }, be);
      assert.ok(Math.abs(y.data[0] - ref(logits.data)) < 1e-5);
      checkGrads(be, { logits }, (tape) => apply(tape, OPS.crossEntropy, { logits, targets, rows, cols }, be));
      assertClose(logits.grad!, fd64(ref, logits.data), 'dlogits vs float64', 1e-3, 1e-5);
    });

    test('klDiv at temperature 2 matches a float64 reference', () => {
      const [rows, cols, T] = [3, 5, 2];
      const student = v(rows * cols, 22, -3, 3);
      const teacher = randn(rows * cols, 23, -3, 3);
      const ref = (s: ArrayLike<number>) => {
        let kl = 0;
        for (let r = 0; r < rows; r++) {
          const lsm = (x: ArrayLike<number>) => {
            const row = Array.from({ length: cols }, (_, j) => x[r * cols + j] / T);
            const m = Math.max(...row);
            const lz = m + Math.log(row.reduce((acc, u) => acc + Math.exp(u - m), 0));
            return row.map((u) => u - lz);
          };
          const lt = lsm(teacher);
          const ls = lsm(s);
          for (let j = 0; j < cols; j++) kl += Math.exp(lt[j]) * (lt[j] - ls[j]);
        }
        return kl / rows;
      };
      const y = apply(null, OPS.klDiv, { student, teacher, rows, cols, temperature: T }, be);
      assert.ok(Math.abs(y.data[0] - ref(student.data)) < 1e-5, `kl ${y.data[0]} vs ${ref(student.data)}`);
      checkGrads(be, { student }, (tape) => apply(tape, OPS.klDiv, { student, teacher, rows, cols, temperature: T }, be));
      assertClose(student.grad!, fd64(ref, student.data), 'dstudent vs float64', 1e-3, 1e-5);
      // KL(p‖p) = 0 with zero gradient.
      const same = new Var(teacher.slice(), true);
      const tape = new Tape(be);
      const z = apply(tape, OPS.klDiv, { student: same, teacher, rows, cols, temperature: T }, be);
      tape.backward(z);
      assert.ok(Math.abs(z.data[0]) < 1e-6);
      assert.ok(same.grad!.every((g) => Math.abs(g) < 1e-6));
    });

    test('mse and weightedSum', () => {
      const x = v(6, 24);
      const target = randn(6, 25);
      checkGrads(be, { x }, (tape) => {
        const m = apply(tape, OPS.mse, { x, target }, be);
        return apply(tape, OPS.weightedSum, { terms: [m, m], weights: [0.5, 2] }, be);
      });
    });
  });
}

/** Central differences of a float64 function. */
function fd64(f: (x: Float64Array) => number, x0: ArrayLike<number>, h = 1e-5): Float64Array {
  const x = Float64Array.from(x0);
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const o = x[i];
    x[i] = o + h;
    const a = f(x);
    x[i] = o - h;
    const b = f(x);
    x[i] = o;
    g[i] = (a - b) / (2 * h);
  }
  return g;
}

/** A tiny Qwen2-style model: GQA (4 heads, 2 KV heads), q/k/v biases, untied head, 4 layers. */
function tinyQwen(be: Backend, seed = 3): LlamaModel {
  const cfg = configFromJson({
    architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', hidden_size: 16, intermediate_size: 24, num_hidden_layers: 4,
    num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 23, max_position_embeddings: 32, rms_norm_eps: 1e-6,
    rope_theta: 10000, tie_word_embeddings: false,
  }, 'tiny-qwen2');
  return LlamaModel.fromWeights(cfg, randomLlamaWeights(cfg, { seed }), be);
}

/** Copy every parameter array, so a student does not share (and mutate) its teacher's. */
function detached(m: LlamaModel): void {
  const p = m.params;
  const tied = p.lmHead === p.embed;
  p.embed = f32(p.embed).slice();
  p.lmHead = tied ? p.embed : f32(p.lmHead).slice();
  p.norm = p.norm.slice();
  for (const lp of p.layers) for (const k of Object.keys(lp) as (keyof typeof lp)[]) if (lp[k]) (lp as unknown as Record<string, Float32Array>)[k] = f32(lp[k]!).slice();
}

describe('whole-model gradients (reference backend) match finite differences', () => {
  const be = getBackend('reference');
  const batch = 2;
  const t = 5;
  const ids = randInts(batch * t, 23, 31);
  const targets = randInts(batch * t, 23, 32);
  const teacherLogits = randn(batch * t * 23, 33, -2, 2);
  const hiddenTarget = randn(batch * t * 16, 34);

  function lossOf(model: LlamaModel, params: ReturnType<typeof modelParams>, tape: Tape | null): Var {
    const { logits, hidden } = forwardTrain(model, params, ids, { batch, tape, hiddenLayers: [2] });
    const ce = apply(tape, OPS.crossEntropy, { logits, targets, rows: batch * t, cols: 23 }, be);
    const kl = apply(tape, OPS.klDiv, { student: logits, teacher: teacherLogits, rows: batch * t, cols: 23, temperature: 2 }, be);
    const ms = apply(tape, OPS.mse, { x: hidden.get(2)!, target: hiddenTarget }, be);
    return apply(tape, OPS.weightedSum, { terms: [ce, kl, ms], weights: [0.5, 0.5 * 4, 0.1] }, be);
  }

  /**
   * For every parameter tensor: the directional derivative along a random direction (central differences) against
   * ⟨grad, direction⟩, plus a few single elements.
   */
  function checkModel(model: LlamaModel, label: string): void {
    const params = modelParams(model);
    const tape = new Tape(be);
    tape.backward(lossOf(model, params, tape));
    const L = () => lossOf(model, params, null).data[0];
    const h = 1e-3;
    let seed = 100;
    for (const p of params.list) {
      assert.ok(p.grad, `${label}: ${p.name} got no gradient`);
      const dir = randn(p.data.length, seed++);
      const orig = p.data.slice();
      const shift = (s: number) => { for (let i = 0; i < dir.length; i++) p.data[i] = orig[i] + s * dir[i]; };
      shift(h);
      const lp = L();
      shift(-h);
      const lm = L();
      p.data.set(orig);
      const fd = (lp - lm) / (2 * h);
      let an = 0;
      for (let i = 0; i < dir.length; i++) an += p.grad![i] * dir[i];
      assert.ok(Math.abs(fd - an) <= 2e-3 + 1e-2 * Math.abs(an), `${label}: ${p.name} directional derivative ${an} vs finite difference ${fd}`);
      for (const i of [0, Math.floor(p.data.length / 2), p.data.length - 1]) {
        const o = p.data[i];
        p.data[i] = o + h;
        const a = L();
        p.data[i] = o - h;
        const b = L();
        p.data[i] = o;
        const fe = (a - b) / (2 * h);
        assert.ok(Math.abs(fe - p.grad![i]) <= 1e-3 + 2e-2 * Math.abs(fe), `${label}: ${p.name}[${i}] grad ${p.grad![i]} vs finite difference ${fe}`);
      }
    }
  }

  test('teacher (GQA, q/k/v biases, untied head): every parameter', () => {
    checkModel(tinyQwen(be), 'teacher');
  });

  test('student sharing layers 2 and 3 with anchor 1: every parameter, anchor q/k get the shared layers\' gradient', () => {
    const teacher = tinyQwen(be);
    const student = buildStudent(teacher, makePlan('manual', [{ anchor: 1, shared: [2, 3] }]));
    detached(student);
    const params = modelParams(student);
    assert.equal(params.byName.get('model.layers.2.self_attn.q_proj.weight'), undefined);
    checkModel(student, 'student');
    // The anchor's q gradient must include the shared layers' contribution: compare with a loss that stops before them.
    const full = new Tape(be);
    full.backward(lossOf(student, params, full));
    const gFull = params.byName.get('model.layers.1.self_attn.q_proj.weight')!.grad!.slice();
    for (const p of params.list) p.grad = null;
    for (const l of [2, 3]) params.layers[l].wv!.requiresGrad = false;
    const v2 = params.layers[2].wv!.data.slice();
    const v3 = params.layers[3].wv!.data.slice();
    params.layers[2].wv!.data.fill(0); // shared layers now ignore P entirely
    params.layers[3].wv!.data.fill(0);
    const cut = new Tape(be);
    cut.backward(lossOf(student, params, cut));
    params.layers[2].wv!.data.set(v2);
    params.layers[3].wv!.data.set(v3);
    const gCut = params.byName.get('model.layers.1.self_attn.q_proj.weight')!.grad!;
    let diff = 0;
    for (let i = 0; i < gCut.length; i++) diff = Math.max(diff, Math.abs(gCut[i] - gFull[i]));
    assert.ok(diff > 1e-4, 'shared layers contribute to the anchor\'s q gradient');
  });

  test('combined student (head-aligned echo layer, head-shared anchor with biases): every parameter', () => {
    const teacher = tinyQwen(be, 5);
    const student = withPlan(teacher, makePlan('manual', [{ anchor: 2, shared: [3], heads: { 3: [1, 1, 3, 0] } }]));
    const both = withHeadMap(student, makeHeadMap('manual', [{ layer: 2, group: 0, source_layer: 0, source_group: 1 }], student.config));
    detached(both);
    assert.deepEqual(both.attention.map((k) => k.kind), ['own', 'own', 'headShared', 'echo']);
    checkModel(both, 'combined');
  });
});

for (const name of availableBackends()) {
  describe(`trainable forward on ${name}`, () => {
    const be = getBackend(name);

    test('loss equals the inference forward\'s (stories260K teacher and a student)', () => {
      const { model } = loadModel(path.join(sharedDir, 'models/stories260K/stories260K.bin'), { backend: be });
      const student = buildStudent(model, makePlan('manual', [{ anchor: 1, shared: [2, 3] }]));
      const batch = 2;
      const t = 24;
      const ids = randInts(batch * t, 512, 41);
      const targets = randInts(batch * t, 512, 42);
      for (const m of [model, student]) {
        const ref = m.forward(ids, { batch });
        const losses = new Float32Array(batch * t);
        be.crossEntropy(ref, targets, losses, batch * t, 512);
        const want = losses.reduce((a, b) => a + b, 0) / (batch * t);
        const params = modelParams(m);
        const tape = new Tape(be);
        const { logits } = forwardTrain(m, params, ids, { batch, tape });
        assertClose(logits.data, ref, `${m.constructor.name} logits`, 1e-5, 1e-5);
        const loss = apply(tape, OPS.crossEntropy, { logits, targets, rows: batch * t, cols: 512 }, be);
        assert.ok(Math.abs(loss.data[0] - want) < 1e-5, `${loss.data[0]} vs ${want}`);
        tape.backward(loss);
        for (const p of params.list) assert.ok(p.grad && p.grad.every(Number.isFinite), `${p.name} finite gradient`);
      }
    });

    test('freezing: only trainable params get gradients, and a frozen prefix is not recorded', () => {
      const teacher = tinyQwen(be);
      const student = buildStudent(teacher, makePlan('manual', [{ anchor: 1, shared: [2, 3] }]));
      const params = modelParams(student);
      const trainable = new Set(params.list.filter((p) => /layers\.[23]\./.test(p.name)));
      const ids = randInts(8, 23, 5);
      const all = new Tape(be);
      forwardTrain(student, params, ids, { batch: 1, tape: all });
      for (const p of params.list) p.requiresGrad = trainable.has(p);
      const tape = new Tape(be);
      const { logits } = forwardTrain(student, params, ids, { batch: 1, tape });
      const loss = apply(tape, OPS.crossEntropy, { logits, targets: randInts(8, 23, 6), rows: 8, cols: 23 }, be);
      assert.ok(tape.length < all.length, `frozen prefix skipped (${tape.length} < ${all.length} ops)`);
      tape.backward(loss);
      for (const p of params.list) assert.equal(p.grad !== null, trainable.has(p), p.name);
      assert.ok(params.list.every((p) => p instanceof Param));
    });
  });
}
