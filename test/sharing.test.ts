/** Shared-attention students: exactness, save/load, cache accounting, and plan validation. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { availableBackends, getBackend } from '../src/backend/index.js';
import { LlamaModel } from '../src/models/llama.js';
import { loadModel, saveModel } from '../src/models/load.js';
import { configFromJson } from '../src/models/config.js';
import { randomLlamaWeights } from '../src/models/random.js';
import { makePlan, parsePlan, validatePlan } from '../src/models/sharing-plan.js';
import { buildStudent } from '../src/sharing/student.js';
import { sharingCost } from '../src/sharing/cost.js';
import { openSafetensors } from '../src/io/safetensors.js';
import { assertClose, f32, sharedDir } from './helpers.js';
import { loadCheckpoint } from '../src/models/checkpoint.js';
import { PlanError, HeadMapError } from '../src/errors.js';

const STORIES = path.join(sharedDir, 'models/stories260K/stories260K.bin');

const TINY = configFromJson(
  {
    architectures: ['LlamaForCausalLM'], hidden_size: 32, intermediate_size: 48, num_hidden_layers: 5,
    num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 64, max_position_embeddings: 64,
    rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false, hidden_act: 'silu',
  },
  'tiny test config',
);

function tmpdir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'echoatt-share-'));
}

for (const name of availableBackends()) {
  describe(`shared-attention student on ${name}`, () => {
    const be = getBackend(name);

    test('sharing a layer whose attention equals its anchor\'s reproduces the teacher\'s logits', () => {
      // Layer 2 adds nothing to the residual stream (o_proj and down_proj zero), and layer 3 has layer 2's norm and
      // q/k weights, so layer 3's attention probabilities equal layer 2's: sharing them changes nothing.
      const teacher = LlamaModel.fromWeights(TINY, randomLlamaWeights(TINY, { seed: 5 }), be);
      const [l2, l3] = [teacher.params.layers[2], teacher.params.layers[3]];
      f32(l2.wo!).fill(0);
      f32(l2.wDown).fill(0);
      l3.inputNorm.set(l2.inputNorm);
      f32(l3.wq!).set(f32(l2.wq!));
      f32(l3.wk!).set(f32(l2.wk!));
      const ids = Int32Array.of(1, 5, 9, 33, 2, 60, 7, 7, 12);
      const expected = teacher.forward(ids);
      const student = buildStudent(teacher, makePlan('manual', [{ anchor: 2, shared: [3] }]));
      assertClose(student.forward(ids), expected, 'student logits', 1e-5, 1e-6);
      // And in incremental decode, where the anchor's new probability row is passed on.
      const cache = student.newCache(1, 16);
      const V = TINY.vocabSize;
      student.forward(ids.subarray(0, 3), { cache });
      for (let t = 3; t < ids.length; t++) {
        assertClose(student.forward(ids.subarray(t, t + 1), { cache }), expected.subarray(t * V, (t + 1) * V), `decode ${t}`, 1e-5, 1e-5);
      }
      // A real sharing (layer 4 with different weights) does change the logits.
      const other = buildStudent(teacher, makePlan('manual', [{ anchor: 2, shared: [3, 4] }]));
      const diff = other.forward(ids).reduce((m, x, i) => Math.max(m, Math.abs(x - expected[i])), 0);
      assert.ok(diff > 1e-3, `sharing dissimilar layer 4 should change logits (diff ${diff})`);
    });

    test('student prefill and KV-cache decode agree (GQA, two groups)', () => {
      const { model: teacher } = loadModel(STORIES, { backend: be });
      const student = buildStudent(teacher, makePlan('manual', [{ anchor: 0, shared: [1] }, { anchor: 2, shared: [3, 4] }]));
      const ids = Int32Array.of(1, 403, 407, 261, 378, 395, 289, 412, 270, 11);
      const V = teacher.config.vocabSize;
      const full = student.forward(ids);
      const cache = student.newCache(1, 32);
      assertClose(student.forward(ids.subarray(0, 5), { cache }), full.subarray(0, 5 * V), 'prefill', 1e-4, 1e-4);
      for (let t = 5; t < ids.length; t++) {
        assertClose(student.forward(ids.subarray(t, t + 1), { cache }), full.subarray(t * V, (t + 1) * V), `decode ${t}`, 1e-4, 1e-4);
      }
    });
  });
}

test('student saved and reloaded gives identical logits; shared layers have no q_proj/k_proj tensors', () => {
  const dir = tmpdir();
  try {
    const { model: teacher, checkpoint } = loadModel(STORIES);
    const plan = makePlan('manual', [{ anchor: 1, shared: [2, 3] }]);
    const student = buildStudent(teacher, plan);
    saveModel(dir, student, checkpoint.tokenizerPath);
    const st = openSafetensors(path.join(dir, 'model.safetensors'));
    const names = [...st.tensors.keys()];
    st.close();
    for (const l of [2, 3]) {
      assert.ok(!names.includes(`model.layers.${l}.self_attn.q_proj.weight`));
      assert.ok(!names.includes(`model.layers.${l}.self_attn.k_proj.weight`));
      assert.ok(names.includes(`model.layers.${l}.self_attn.v_proj.weight`));
    }
    assert.ok(names.includes('model.layers.1.self_attn.q_proj.weight'));
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    assert.deepEqual(cfg.echoatt_sharing.groups, [{ anchor: 1, shared: [2, 3] }]);
    const again = loadModel(dir).model;
    assert.ok(again.plan && again.sharedLayers().length > 0, 'loads as a shared-attention student');
    const ids = Int32Array.of(1, 403, 407, 261, 378, 395, 289, 412);
    assertClose(again.forward(ids), student.forward(ids), 'reloaded logits', 1e-5, 1e-5);
    assert.equal(again.parameterCount(), student.parameterCount());
    assert.equal(teacher.parameterCount() - student.parameterCount(), sharingCost(teacher.config, plan, 1).params.removed);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('loading a student whose tensors do not match its plan is a typed error', () => {
  const dir = tmpdir();
  try {
    const { model: teacher, checkpoint } = loadModel(STORIES);
    saveModel(dir, teacher, checkpoint.tokenizerPath); // full tensors...
    const cfgPath = path.join(dir, 'config.json');
    const cfg = JSON.parse(fs.readFileSync(cfgPath, 'utf8'));
    cfg.echoatt_sharing = { format: 'echoatt-plan', version: 1, groups: [{ anchor: 1, shared: [2] }] }; // ...but a plan
    fs.writeFileSync(cfgPath, JSON.stringify(cfg));
    assert.throws(() => loadCheckpoint(dir), (e: unknown) => e instanceof Error && (e as { code?: string }).code === 'E_CHECKPOINT' && /layers\.2\.self_attn\.q_proj/.test(e.message));
    cfg.echoatt_sharing.groups = [{ anchor: 3, shared: [2] }];
    fs.writeFileSync(cfgPath, JSON.stringify(cfg));
    assert.throws(() => loadCheckpoint(dir), (e: unknown) => e instanceof PlanError && /does not come after its anchor/.test(e.message));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('KV-cache bytes measured from the live cache match the formula', () => {
  const { model: teacher } = loadModel(STORIES);
  const plan = makePlan('manual', [{ anchor: 1, shared: [2, 3] }]);
  const student = buildStudent(teacher, plan);
  const cost = sharingCost(teacher.config, plan, 128);
  const cap = 100;
  const tc = teacher.newCache(1, cap);
  const sc = student.newCache(1, cap);
  assert.equal(tc.bytes(), cap * cost.kvCacheBytesPerToken.total);
  assert.equal(sc.bytes(), cap * (cost.kvCacheBytesPerToken.total - cost.kvCacheBytesPerToken.removedK));
  assert.equal(sc.bytesPerToken(), cost.kvCacheBytesPerToken.total - cost.kvCacheBytesPerToken.removedK);
  assert.equal(sc.k.filter((k) => k === null).length, 2);
});

test('plans are validated against the model with clear errors', () => {
  assert.throws(() => parsePlan([], 'p.json'), /p\.json: plan must be a JSON object/);
  assert.throws(() => parsePlan({ groups: [{ anchor: -1, shared: [2] }] }, 'p.json'), /anchor must be a non-negative integer/);
  assert.throws(() => parsePlan({ version: 4, groups: [] }, 'p.json'), /unsupported plan version 4/);
  assert.throws(() => parsePlan({ version: 1, groups: [{ anchor: 1, shared: [2], heads: { 2: [0] } }] }, 'p.json'), /heads needs plan version 2/);
  assert.throws(() => parsePlan({ groups: [{ anchor: 1, shared: [2], extra: 1 }] }, 'p.json'), /unknown field 'extra'/);
  const p = parsePlan({ groups: [{ anchor: 1, shared: [3, 2] }, { anchor: 2, shared: [9] }] }, 'p.json');
  assert.throws(() => validatePlan(p, 5, 'p.json'), (e: unknown) => {
    const m = (e as Error).message;
    return e instanceof PlanError && /layer 9, which does not exist/.test(m) && /layer 2 is an anchor and also shared/.test(m);
  });
  assert.throws(() => buildStudent(buildStudent(loadModel(STORIES).model, makePlan('m', [{ anchor: 0, shared: [1] }])), makePlan('m', [])), /already a shared-attention student/);
});

test('head-shared models: saveModel round-trips them; buildStudent refuses to echo a layer the head map names, with the reason', async () => {
  const { directShare } = await import('../src/sharing/headshare.js');
  const { model: teacher, checkpoint } = loadModel(STORIES);
  const hs = directShare(teacher, { shareRate: 0.2, strategy: 'qk' }).model;
  const named = hs.headMap!.shared[0].layer;
  assert.throws(() => buildStudent(hs, makePlan('m', [{ anchor: 0, shared: [named] }])), (e: unknown) => e instanceof HeadMapError && /has no q\/k projections to share/.test(e.message));
  const dir = tmpdir();
  try {
    saveModel(dir, hs, checkpoint.tokenizerPath);
    const again = loadModel(dir).model;
    assert.ok(again.headMap && again.attention.some((k) => k.kind === 'headShared'), 'loads as a head-shared model');
    const ids = Int32Array.of(1, 403, 407, 261, 378);
    assertClose(again.forward(ids), hs.forward(ids), 'reloaded head-shared logits', 1e-5, 1e-5);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
