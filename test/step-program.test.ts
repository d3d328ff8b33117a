/**
 * Step programs: a one-token decode step compiled into one backend call. Its logits must be the SAME BITS as the
 * op-by-op decoder's, on every backend and for every layer kind (own, echo, echo with a head map, head-shared),
 * half-precision weights and q/k/v biases; the checks made when a program is built must catch out-of-bounds
 * instructions; and the native decoder must read instructions exactly as `program.ts` writes them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { loadModel } from '../src/models/load.js';
import { LlamaModel } from '../src/models/llama.js';
import { configFromJson } from '../src/models/config.js';
import { randomLlamaWeights } from '../src/models/random.js';
import { makePlan } from '../src/models/sharing-plan.js';
import { makeHeadMap } from '../src/models/head-map.js';
import { withHeadMap, withPlan } from '../src/models/surgery.js';
import { availableBackends, getBackend } from '../src/backend/index.js';
import { loadNativeBackend } from '../src/backend/native.js';
import { NONE, OPS, ProgramBuilder } from '../src/backend/program.js';
import type { Backend } from '../src/backend/backend.js';
import { ShapeError } from '../src/errors.js';
import { assertClose, randn, sharedDir } from './helpers.js';

const STORIES = path.join(sharedDir, 'models/stories260K/stories260K.bin');

/** Prefill `prompt`, then decode `steps` greedy tokens; every step's logits. */
function decode(m: LlamaModel, programs: boolean, prompt: number[], steps: number): Float32Array[] {
  m.useStepPrograms = programs;
  const cache = m.newCache(1, prompt.length + steps + 1);
  const out = [m.forward(Int32Array.from(prompt), { cache, lastOnly: true })];
  for (let i = 0; i < steps; i++) {
    const last = out[out.length - 1];
    let next = 0;
    for (let j = 1; j < last.length; j++) if (last[j] > last[next]) next = j;
    out.push(m.forward(Int32Array.of(next), { cache, lastOnly: true }));
  }
  m.useStepPrograms = true;
  return out;
}

function assertSameBits(a: Float32Array[], b: Float32Array[], what: string): void {
  assert.equal(a.length, b.length);
  a.forEach((x, i) => {
    const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
    const v = new Uint32Array(b[i].buffer, b[i].byteOffset, b[i].length);
    const j = u.findIndex((bits, k) => bits !== v[k]);
    assert.equal(j, -1, `${what}: step ${i} logit ${j} differs (${x[j]} vs ${b[i][j]})`);
  });
}

function storiesModels(name: 'native' | 'reference'): [string, LlamaModel][] {
  const { model: teacher } = loadModel(STORIES, { backend: getBackend(name) });
  const plan = makePlan('manual', [{ anchor: 1, shared: [2], heads: { 2: [3, 3, 0, 1, 7, 6, 5, 4] } }, { anchor: 3, shared: [4] }]);
  const map = makeHeadMap('manual', [{ layer: 3, group: 1, source_layer: 0, source_group: 0 }], teacher.config);
  const both = withHeadMap(withPlan(teacher, plan), map);
  assert.deepEqual(both.attention.map((k) => k.kind), ['own', 'own', 'echo', 'headShared', 'echo']);
  return [['stories260K', teacher], ['echo + head-aligned + head-shared student', both]];
}

for (const name of availableBackends()) {
  for (const [label, m] of storiesModels(name)) {
    test(`step program (${name}, ${label}): decode logits are the op-by-op decoder's, bit for bit`, () => {
      const prompt = [1, 403, 407, 261, 299, 378];
      assertSameBits(decode(m, true, prompt, 12), decode(m, false, prompt, 12), `${name} ${label}`);
    });
  }

  test(`step program (${name}): f16 / bf16 weights kept as stored, q/k/v biases, tied embeddings`, () => {
    const cfg = configFromJson({
      architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', hidden_size: 64, intermediate_size: 96, num_hidden_layers: 3,
      num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 300, max_position_embeddings: 64, rms_norm_eps: 1e-6,
      tie_word_embeddings: true, hidden_act: 'silu', rope_theta: 1000000,
    }, 'qwen2 test');
    for (const dtype of ['f16', 'bf16'] as const) {
      const m = LlamaModel.fromWeights(cfg, randomLlamaWeights(cfg, { seed: 3, dtype }), getBackend(name), 'as-stored');
      assert.ok(m.params.layers[0].bq, 'the test model has q/k/v biases');
      assertSameBits(decode(m, true, [1, 5, 77], 8), decode(m, false, [1, 5, 77], 8), `${name} qwen2 ${dtype}`);
    }
  });
}

test('step program: a cache reused across generations keeps one program; positions past the cache are refused', () => {
  const { model } = loadModel(STORIES, { backend: getBackend() });
  const cache = model.newCache(1, 4);
  model.forward(Int32Array.of(1, 2, 3), { cache });
  assert.equal(model.decodeStep(cache), model.decodeStep(cache));
  model.forward(Int32Array.of(4), { cache });
  assert.throws(() => model.forward(Int32Array.of(5), { cache }), ShapeError);
  assert.throws(() => model.decodeStep(cache).run(model.config.vocabSize), /token id 512 is outside/);
});

test('step program: profiles name each instruction and time it', () => {
  const { model } = loadModel(STORIES, { backend: getBackend() });
  const cache = model.newCache(1, 16);
  const step = model.decodeStep(cache);
  step.profile(true);
  for (let i = 0; i < 3; i++) step.run(1 + i);
  const rows = step.profile(false);
  assert.ok(rows.some((r) => r.label === 'layer 4 wDown matvec'), rows.map((r) => r.label).join(', '));
  assert.ok(rows.some((r) => r.label === 'head matvec'));
  assert.ok(rows.every((r) => r.ns >= 0) && rows.some((r) => r.ns > 0));
  assert.ok(step.profile(false).every((r) => r.ns === 0), 'reading a profile resets it');
});

test('step program: checks made when a program is built name the instruction that would run out of bounds', () => {
  const be = getBackend();
  const b = new ProgramBuilder();
  const w = new Float32Array(64 * 64);
  const x = b.scratch(64);
  b.emit('zero', x, 64);
  b.emit('matvec', b.ref(w, 64), x, x, 64, 64, 0); // offset 64 + 64·64 > w.length
  assert.throws(() => be.stepProgram(b.finish({ maxPos: 4, vocab: 10 })), /instruction 1 \(matvec\): w needs 4096 elements from offset 64, array has 4096/);
  const c = new ProgramBuilder();
  const cache = new Float32Array(3 * 8);
  const y = c.scratch(8);
  c.emit('store', y, c.ref(cache), 8);
  assert.throws(() => be.stepProgram(c.finish({ maxPos: 4, vocab: 10 })), /instruction 0 \(store\): cache needs 32 elements/);
  const d = new ProgramBuilder();
  d.emit('zero', d.ref(new Int32Array(4)), 4);
  assert.throws(() => be.stepProgram(d.finish({ maxPos: 4, vocab: 10 })), /out must be f32, got i32/);
});

/**
 * A toy decoder over the Qwen3 / Gemma 3 instructions (per-head rmsnorm with a weight offset, scale, sliding-window
 * attend, geluMul) as a program, and the same calls made one by one: the attention output of every step.
 */
function toyDecoder(be: Backend, program: boolean): Float32Array[] {
  const [H, Hkv, D, maxPos, vocab] = [4, 2, 8, 12, 10];
  const [dim, kvRow, window, eps] = [H * D, Hkv * D, 3, 1e-6];
  const table = randn(vocab * dim, 1);
  const wq = randn(D, 2);
  const [kc, vc] = [new Float32Array(maxPos * kvRow), new Float32Array(maxPos * kvRow)];
  const tokens = [1, 7, 3, 3, 9, 0, 2, 5, 8, 4, 6, 1];
  const outs: Float32Array[] = [];
  if (program) {
    const b = new ProgramBuilder();
    const [x, q, k, v, att, probs] = [dim, dim, kvRow, kvRow, dim, H * maxPos].map((n) => b.scratch(n));
    b.emit('embed', b.ref(table), 0, x, dim);
    b.emit('rmsnorm', x, b.ref(wq), q, H, D, eps, 1);
    b.emit('scale', x, k, kvRow, 0.5);
    b.emit('store', k, b.ref(kc), kvRow);
    b.emit('scale', { array: x.array, offset: x.offset + kvRow }, v, kvRow, Math.SQRT1_2);
    b.emit('store', v, b.ref(vc), kvRow);
    b.emit('attend', q, b.ref(kc), b.ref(vc), att, probs, H, Hkv, D, 1 / Math.sqrt(D), maxPos * kvRow, window);
    b.emit('geluMul', att, x, att, dim);
    const p = b.finish({ maxPos, vocab });
    const run = be.stepProgram(p);
    const arena = p.arrays[att.array] as Float32Array;
    tokens.forEach((tok, pos) => {
      run(tok, pos);
      outs.push(arena.slice(att.offset, att.offset + dim));
    });
    return outs;
  }
  const [x, q, k, v, att, probs] = [dim, dim, kvRow, kvRow, dim, H * maxPos].map((n) => new Float32Array(n));
  tokens.forEach((tok, pos) => {
    be.embedding(table, Int32Array.of(tok), x, vocab, dim);
    be.rmsnorm(x, wq, q, H, D, eps, 1);
    be.scale(x.subarray(0, kvRow), 0.5, k, kvRow);
    kc.set(k, pos * kvRow);
    be.scale(x.subarray(kvRow, 2 * kvRow), Math.SQRT1_2, v, kvRow);
    vc.set(v, pos * kvRow);
    const shape = { batch: 1, tq: 1, s: pos + 1, nHeads: H, nKvHeads: Hkv, headDim: D, kvBatchStride: maxPos * kvRow };
    be.attention({ ...shape, q, k: kc, v: vc, out: att, probs: probs.subarray(0, H * (pos + 1)), qPos0: pos, scale: 1 / Math.sqrt(D), window });
    be.geluTanhMul(att, x, att, dim);
    outs.push(att.slice());
  });
  return outs;
}

for (const name of availableBackends()) {
  test(`step program (${name}): per-head rmsnorm with an offset, scale, sliding-window attend, geluMul as the calls one by one`, () => {
    const be = getBackend(name);
    assertSameBits(toyDecoder(be, true), toyDecoder(be, false), `${name} toy decoder`);
    const e = toyDecoder(getBackend('reference'), false);
    toyDecoder(be, true).forEach((o, i) => assertClose(o, e[i], `${name} against the reference, step ${i}`, 1e-4, 1e-5));
  });
}

test('step program: bounds of the new instructions (rmsnorm over rows · dim, scale, geluMul, attend window)', () => {
  const be = getBackend();
  const bad = (emit: (b: ProgramBuilder) => void, re: RegExp) => {
    const b = new ProgramBuilder();
    emit(b);
    assert.throws(() => be.stepProgram(b.finish({ maxPos: 4, vocab: 10 })), re);
  };
  const f = new Float32Array(32);
  bad((b) => b.emit('rmsnorm', b.ref(f), b.ref(f, 24), b.ref(f), 5, 8, 1e-6, 0), /instruction 0 \(rmsnorm\): x needs 40 elements/);
  bad((b) => b.emit('rmsnorm', b.ref(f), b.ref(f, 28), b.ref(f), 4, 8, 1e-6, 1), /rmsnorm\): w needs 8 elements from offset 28/);
  bad((b) => b.emit('scale', b.ref(f), b.ref(f, 1), 32, 2), /instruction 0 \(scale\): out needs 32 elements from offset 1/);
  bad((b) => b.emit('geluMul', b.ref(f), b.ref(f), b.ref(f, 8), 32), /\(geluMul\): out needs 32/);
  const c = new Float32Array(4 * 8);
  bad((b) => b.emit('attend', b.ref(f), b.ref(c), b.ref(c), b.ref(f), NONE, 4, 1, 8, 0.3, 32, -1), /window must be a non-negative integer/);
});

test('step program: the addon decodes each opcode with the operand count program.ts writes', { skip: !loadNativeBackend() }, () => {
  const words = Object.values(OPS).map((spec) => spec.reduce((n, kind) => n + (kind.startsWith('r:') ? 2 : 1), 0));
  assert.deepEqual(loadNativeBackend()!.programWords, words);
});
