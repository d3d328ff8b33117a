/**
 * Qwen3 and Gemma 3 text: golden logits from an independent PyTorch forward written from the public modeling code
 * (`scripts/golden/families.py`, tiny random checkpoints in `test/fixtures/families/`), decode through the cache =
 * the full forward on every path (step program, op by op, chunked prefill, slots), training forward = inference,
 * a finite-difference gradient through Gemma's `1 + w` norms, config round trips in both spellings, and students of
 * a Gemma model (echo + dropped attention) saved, refused as a plain Gemma, and loaded back.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { repoRoot } from './helpers.js';
import { loadCheckpoint } from '../src/models/checkpoint.js';
import { configFromJson, configToHfJson } from '../src/models/config.js';
import { LlamaModel } from '../src/models/llama.js';
import { toDense, withPlan } from '../src/models/surgery.js';
import { directShare } from '../src/sharing/headshare.js';
import { makePlan } from '../src/models/sharing-plan.js';
import { saveModel } from '../src/models/load.js';
import { forwardTrain, modelParams } from '../src/models/tape-ops.js';
import { Tape, apply } from '../src/autograd/tape.js';
import { OPS } from '../src/autograd/ops/index.js';
import { getBackend } from '../src/backend/index.js';
import { UnsupportedError } from '../src/errors.js';
import { exportGguf } from '../src/export/gguf.js';

const FIXTURES = path.join(repoRoot, 'test', 'fixtures', 'families');
const NAMES = ['qwen3', 'gemma3-pattern', 'gemma3-layertypes'] as const;

interface Golden {
  ids: number[];
  logits: number[][];
}

function load(name: string, configFile = 'config.json'): { model: LlamaModel; golden: Golden } {
  const dir = path.join(FIXTURES, name);
  const ck = loadCheckpoint(dir);
  const config = configFromJson(JSON.parse(fs.readFileSync(path.join(dir, configFile), 'utf8')), configFile);
  const golden = JSON.parse(fs.readFileSync(path.join(dir, 'golden.json'), 'utf8')) as Golden;
  return { model: LlamaModel.fromWeights(config, ck.weights), golden };
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

/** Logits of every position, one token at a time through a cache. */
function decodeAll(model: LlamaModel, ids: Int32Array): Float32Array {
  const V = model.config.vocabSize;
  const cache = model.newCache(1, 64);
  const out = new Float32Array(ids.length * V);
  for (let t = 0; t < ids.length; t++) out.set(model.forward(ids.subarray(t, t + 1), { cache }), t * V);
  return out;
}

for (const name of NAMES) {
  test(`${name}: logits equal PyTorch's (f32, ≤ 1e-4) and decode through the cache equals the full forward on every path`, () => {
    const { model, golden } = load(name);
    const ids = Int32Array.from(golden.ids);
    const full = model.forward(ids);
    assert.ok(maxDiff(full, golden.logits.flat()) <= 1e-4, `${name}: ${maxDiff(full, golden.logits.flat())}`);
    assert.ok(maxDiff(decodeAll(model, ids), full) <= 1e-5, 'step programs');
    model.useStepPrograms = false;
    assert.ok(maxDiff(decodeAll(model, ids), full) <= 1e-5, 'op by op');
    const cache = model.newCache(1, 64);
    assert.ok(maxDiff(model.forward(ids, { cache, chunk: 5 }), full) <= 1e-5, 'chunked prefill');
    // Two sequences in slots, decoded together: each equals its own full forward.
    const slots = model.newSlotCache(2, 32);
    const other = Int32Array.from(ids).reverse();
    const fullOther = model.forward(other);
    const V = model.config.vocabSize;
    for (let t = 0; t < ids.length; t++) {
      const l = model.decodeSlots(Int32Array.of(ids[t], other[t]), Int32Array.of(0, 1), slots);
      assert.ok(maxDiff(l.subarray(0, V), full.subarray(t * V, (t + 1) * V)) <= 1e-5, `slot 0 at ${t}`);
      assert.ok(maxDiff(l.subarray(V), fullOther.subarray(t * V, (t + 1) * V)) <= 1e-5, `slot 1 at ${t}`);
    }
  });
}

test('other spellings of the same configs (transformers 5 rope_parameters, 4.55 flat rope keys) give the same model', () => {
  for (const [name, alt] of [['qwen3', 'config.v5.json'], ['gemma3-layertypes', 'config.v4_55.json']] as const) {
    const a = load(name);
    const b = load(name, alt);
    assert.deepEqual(b.model.config.layerWindows, a.model.config.layerWindows);
    assert.equal(b.model.config.ropeLocalTheta, a.model.config.ropeLocalTheta);
    assert.deepEqual(b.model.config.ropeScaling, a.model.config.ropeScaling);
    const ids = Int32Array.from(a.golden.ids);
    assert.equal(maxDiff(b.model.forward(ids), a.model.forward(ids)), 0, name);
  }
});

test('family fields resolve from config.json and survive configToHfJson → configFromJson', () => {
  const q = load('qwen3').model.config;
  assert.deepEqual([q.architecture, q.qkNorm, q.normOffset, q.hiddenAct, q.headDim, q.hiddenSize / q.numHeads], ['Qwen3ForCausalLM', true, 0, 'silu', 16, 8]);
  const g = load('gemma3-pattern').model.config;
  assert.deepEqual([g.architecture, g.modelType, g.normOffset, g.sandwichNorms, g.hiddenAct, g.ropeLocalTheta], ['Gemma3ForCausalLM', 'gemma3_text', 1, true, 'geluTanh', 10000]);
  assert.deepEqual(g.layerWindows, [5, 5, 0, 5, 5, 0]);
  assert.equal(g.attnScale, 1 / Math.sqrt(24));
  assert.equal(g.embedScale, Math.fround(Math.sqrt(32)));
  assert.equal(g.tieWordEmbeddings, true, 'Gemma ties embeddings when config.json leaves the key out');
  assert.equal(load('gemma3-layertypes').model.config.finalLogitSoftcap, 30);
  for (const name of NAMES) {
    const c = load(name).model.config;
    assert.deepEqual(configFromJson(JSON.parse(JSON.stringify(configToHfJson(c))), 'again.json'), c, name);
  }
});

test('unsupported Gemma settings are refused naming the field', () => {
  const json = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'gemma3-pattern', 'config.json'), 'utf8')) as Record<string, unknown>;
  for (const [patch, field] of [
    [{ attn_logit_softcapping: 50 }, 'attn_logit_softcapping'],
    [{ use_bidirectional_attention: true }, 'use_bidirectional_attention'],
    [{ hidden_activation: 'gelu' }, 'hidden_activation'],
    [{ layer_types: ['full_attention'] }, 'layer_types'],
  ] as const) {
    assert.throws(() => configFromJson({ ...json, ...patch }, 'g.json'), (e: unknown) => (e as Error).message.includes(field) && (e as Error).message.startsWith('g.json'), field);
  }
  assert.throws(() => configFromJson({ ...json, architectures: ['Gemma2ForCausalLM'] }, 'g.json'), UnsupportedError);
});

test('training forward equals inference on both families; gradients through Gemma norms (1 + w) match finite differences', () => {
  for (const name of ['qwen3', 'gemma3-layertypes']) {
    const { model, golden } = load(name);
    const ids = Int32Array.from(golden.ids);
    const params = modelParams(model);
    const { logits } = forwardTrain(model, params, ids, {});
    assert.ok(maxDiff(logits.data, model.forward(ids)) <= 1e-5, name);
  }
  const { model, golden } = load('gemma3-layertypes');
  const ids = Int32Array.from(golden.ids.slice(0, 8));
  const targets = Int32Array.from(golden.ids.slice(1, 9));
  const params = modelParams(model);
  const V = model.config.vocabSize;
  const lossOf = (tape: Tape | null) => {
    const { logits } = forwardTrain(model, params, ids, { tape });
    return apply(tape, OPS.crossEntropy, { logits, targets, rows: ids.length, cols: V }, model.backend);
  };
  const tape = new Tape(getBackend());
  tape.backward(lossOf(tape));
  for (const name of ['model.layers.1.self_attn.q_norm.weight', 'model.layers.0.post_feedforward_layernorm.weight', 'model.norm.weight']) {
    const p = params.byName.get(name)!;
    const i = 3;
    const h = 1e-2;
    const w0 = p.data[i];
    p.data[i] = w0 + h;
    const up = lossOf(null).data[0];
    p.data[i] = w0 - h;
    const down = lossOf(null).data[0];
    p.data[i] = w0;
    const fd = (up - down) / (2 * h);
    assert.ok(Math.abs(fd - p.grad![i]) <= 2e-3 * Math.max(1, Math.abs(fd)), `${name}: finite difference ${fd}, backward ${p.grad![i]}`);
  }
});

test('a Gemma 3 student (echo + dropped attention) decodes like its full forward, saves under its own architecture and loads back', () => {
  const { model, golden } = load('gemma3-pattern');
  const plan = makePlan('manual', [{ anchor: 0, shared: [1, 4] }], undefined, [3]);
  const student = withPlan(model, plan);
  assert.deepEqual(student.attention.map((k) => k.kind), ['own', 'echo', 'own', 'dropped', 'echo', 'own']);
  const names = [...Object.keys(student.params.layers[3])].sort();
  assert.deepEqual(names, ['postFfnNorm', 'preFfnNorm', 'wDown', 'wGate', 'wUp'], 'a dropped layer keeps its MLP only');
  assert.equal(student.newCache(1, 8).k[3], null);
  assert.equal(student.newCache(1, 8).v[3], null);
  const ids = Int32Array.from(golden.ids);
  const full = student.forward(ids);
  assert.ok(maxDiff(full, model.forward(ids)) > 1e-3, 'sharing changes the logits');
  assert.ok(maxDiff(decodeAll(student, ids), full) <= 1e-5);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'echoatt-student-'));
  try {
    saveModel(dir, student);
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual([cfg.architectures, cfg.model_type], [['EchoAttGemma3ForCausalLM'], 'echoatt_gemma3_text']);
    assert.deepEqual([cfg.echoatt_base_architecture, cfg.echoatt_base_model_type], ['Gemma3ForCausalLM', 'gemma3_text']);
    const back = loadCheckpoint(dir);
    assert.deepEqual(back.config, student.config);
    assert.equal(maxDiff(LlamaModel.fromWeights(back.config, back.weights).forward(ids), full), 0);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('GGUF export refuses a Gemma 3 config llama.cpp would run differently, naming the field', () => {
  const { model } = load('gemma3-pattern');
  const tok = { model: 'llama' as const, tokens: [], scores: new Float32Array(0), types: new Int32Array(0), bos: null, eos: null, unk: null };
  assert.throws(() => exportGguf(path.join(os.tmpdir(), 'never.gguf'), model, tok), /query_pre_attn_scalar/);
});

test('DirectShare on Qwen3 and Gemma 3: head-shared layers keep their own q/k norms, equal their dense copy, decode = full forward', () => {
  for (const name of ['qwen3', 'gemma3-pattern']) {
    const { model, golden } = load(name);
    const shared = directShare(model, { shareRate: 0.3 }).model;
    assert.ok(shared.attention.some((k) => k.kind === 'headShared'), name);
    shared.attention.forEach((k, l) => assert.ok(k.kind !== 'headShared' || shared.params.layers[l].qNorm, `${name} layer ${l} q_norm`));
    const ids = Int32Array.from(golden.ids);
    const full = shared.forward(ids);
    assert.ok(maxDiff(toDense(shared).forward(ids), full) <= 1e-5, `${name}: dense copy`);
    assert.ok(maxDiff(decodeAll(shared, ids), full) <= 1e-5, `${name}: decode`);
  }
});

test('student folders written before students named themselves (architectures LlamaForCausalLM + echoatt_sharing) still load', () => {
  const json = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'qwen3', 'config.json'), 'utf8')) as Record<string, unknown>;
  const old = configFromJson({ ...json, echoatt_sharing: { groups: [{ anchor: 0, shared: [1] }] } }, 'old-student/config.json');
  assert.equal(old.architecture, 'Qwen3ForCausalLM');
  assert.equal(old.attention[1].kind, 'echo');
  const written = configToHfJson(old);
  assert.deepEqual([written.architectures, written.model_type], [['EchoAttQwen3ForCausalLM'], 'echoatt_qwen3']);
  assert.deepEqual(configFromJson(JSON.parse(JSON.stringify(written)), 'new.json'), old);
  // A student's own names without the base keys still resolve (the prefix is stripped).
  const bare = { ...written };
  delete bare.echoatt_base_architecture;
  delete bare.echoatt_base_model_type;
  assert.equal(configFromJson(bare, 'bare.json').architecture, 'Qwen3ForCausalLM');
});

test('RoPE tables cost the positions used, not what the config allows (max_position_embeddings 1e9), and grow on demand', async () => {
  const { ropeTables } = await import('../src/models/rope.js');
  const dir = path.join(FIXTURES, 'qwen3');
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const cfg = configFromJson({ ...json, max_position_embeddings: 1e9 }, 'huge.json');
  const model = LlamaModel.fromWeights(cfg, loadCheckpoint(dir).weights);
  assert.equal(model.rope.maxPos, 2048);
  const ids = Int32Array.from({ length: 2100 }, (_, i) => (i * 37) % 96);
  const cache = model.newCache(1, 2200);
  assert.ok(model.rope.maxPos >= 2200 && model.rope.maxPos <= 4096, String(model.rope.maxPos));
  const want = ropeTables(cfg, model.rope.maxPos);
  assert.deepEqual([model.rope.cos, model.rope.sin], [want.cos, want.sin]);
  const V = cfg.vocabSize;
  const cached = model.forward(ids.subarray(0, 2099), { cache, lastOnly: true });
  const next = model.forward(ids.subarray(2099), { cache }); // one step at position 2099 through a compiled program
  const full = model.forward(ids);
  assert.ok(maxDiff(cached, full.subarray(2098 * V, 2099 * V)) <= 1e-4);
  assert.ok(maxDiff(next, full.subarray(2099 * V)) <= 1e-4);
});
