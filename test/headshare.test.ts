/** Head-wise weight sharing (DirectShare): matching, exactness, save/load, GQA units, option and head-map validation. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { availableBackends, getBackend } from '../src/backend/index.js';
import type { Backend } from '../src/backend/backend.js';
import { LlamaModel } from '../src/models/llama.js';
import { toDense, withHeadMap } from '../src/models/surgery.js';
import { headLayout, makeHeadMap, parseHeadMap, validateHeadMap } from '../src/models/head-map.js';
import { loadModel, saveModel } from '../src/models/load.js';
import { configFromJson, type LlamaConfig } from '../src/models/config.js';
import { randomLlamaWeights } from '../src/models/random.js';
import { directShare, headSimilarity, HEAD_SHARE_STRATEGIES, selectHeadSharing, validateHeadShareOptions, formatHeadShareReport } from '../src/sharing/headshare.js';
import { buildStudent } from '../src/sharing/student.js';
import { makePlan } from '../src/models/sharing-plan.js';
import { OptionError, HeadMapError } from '../src/errors.js';
import { headSharePenalty, headSharePenaltyValue, postShare } from '../src/sharing/postshare.js';
import { apply, Tape } from '../src/autograd/tape.js';
import { modelParams } from '../src/models/tape-ops.js';
import { fingerprint } from '../src/train/data.js';
import { openSafetensors } from '../src/io/safetensors.js';
import { assertClose, f32, randInts, repoRoot, sharedDir } from './helpers.js';
import { loadCheckpoint } from '../src/models/checkpoint.js';

const STORIES = path.join(sharedDir, 'models/stories260K/stories260K.bin');

function tinyConfig(kvHeads: number, arch = 'LlamaForCausalLM'): Readonly<LlamaConfig> {
  return configFromJson(
    {
      architectures: [arch], hidden_size: 32, intermediate_size: 48, num_hidden_layers: 5,
      num_attention_heads: 4, num_key_value_heads: kvHeads, vocab_size: 64, max_position_embeddings: 64,
      rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false, hidden_act: 'silu',
    },
    'tiny test config',
  );
}

/** Make unit `(l, g)` of `m` an exact copy of unit `(sl, sg)`: q rows of its query heads, k/v rows, o_proj columns. */
function copyUnit(m: LlamaModel, l: number, g: number, sl: number, sg: number): void {
  const { numHeads: H, numKvHeads: U, headDim: D, hiddenSize: dim } = m.config;
  const G = H / U;
  const [dst, src] = [m.params.layers[l], m.params.layers[sl]];
  const qr = G * D * dim;
  f32(dst.wq!).set(f32(src.wq!).subarray(sg * qr, (sg + 1) * qr), g * qr);
  f32(dst.wk!).set(f32(src.wk!).subarray(sg * D * dim, (sg + 1) * D * dim), g * D * dim);
  f32(dst.wv!).set(f32(src.wv!).subarray(sg * D * dim, (sg + 1) * D * dim), g * D * dim);
  for (let r = 0; r < dim; r++) f32(dst.wo!).set(f32(src.wo!).subarray(r * H * D + sg * G * D, r * H * D + (sg + 1) * G * D), r * H * D + g * G * D);
  dst.bq?.set(src.bq!.subarray(sg * G * D, (sg + 1) * G * D), g * G * D);
  dst.bk?.set(src.bk!.subarray(sg * D, (sg + 1) * D), g * D);
  dst.bv?.set(src.bv!.subarray(sg * D, (sg + 1) * D), g * D);
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function tmpdir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'echoatt-headshare-'));
}

const IDS = Int32Array.of(1, 5, 9, 33, 2, 60, 7, 7, 12, 40);

function identicalTeacher(kvHeads: number, be: Backend): LlamaModel {
  const cfg = tinyConfig(kvHeads);
  const t = LlamaModel.fromWeights(cfg, randomLlamaWeights(cfg, { seed: 11 }), be);
  copyUnit(t, 3, 1, 1, 0);
  return t;
}

for (const name of availableBackends()) {
  describe(`DirectShare on ${name}`, () => {
    const be = getBackend(name);

    for (const kv of [2, 4]) {
      test(`heads built identical are matched with cosine 1 and sharing them keeps the logits (${kv === 4 ? 'MHA' : 'GQA, 2 query heads per unit'})`, () => {
        const teacher = identicalTeacher(kv, be);
        const expected = teacher.forward(IDS);
        for (const strategy of HEAD_SHARE_STRATEGIES) {
          const sim = headSimilarity(teacher, strategy);
          const best = sim.best.find((e) => e.layer === 3 && e.group === 1)!;
          assert.deepEqual([best.source_layer, best.source_group], [1, 0], strategy);
          assert.ok(Math.abs(best.cosine! - 1) < 1e-5, `${strategy}: cosine ${best.cosine}`);
          // Random weights are nearly orthogonal: nothing else comes close.
          assert.ok(sim.best.filter((e) => e !== best).every((e) => e.cosine! < 0.5), strategy);
        }
        const U = teacher.config.numKvHeads;
        const { model, map, report } = directShare(teacher, { shareRate: 1 / (5 * U), strategy: 'qk' });
        assert.equal(map.shared.length, 1);
        assert.deepEqual({ ...map.shared[0], cosine: undefined }, { layer: 3, group: 1, source_layer: 1, source_group: 0, cosine: undefined });
        assert.ok(Math.abs(map.shared[0].cosine! - 1) < 1e-5);
        assertClose(model.forward(IDS), expected, 'shared logits', 1e-5, 1e-5);
        // Incremental decode through the KV cache agrees too.
        const cache = model.newCache(1, 16);
        const V = teacher.config.vocabSize;
        model.forward(IDS.subarray(0, 4), { cache });
        for (let t = 4; t < IDS.length; t++) assertClose(model.forward(IDS.subarray(t, t + 1), { cache }), expected.subarray(t * V, (t + 1) * V), `decode ${t}`, 1e-5, 1e-5);
        // One unit's q/k/v rows and o columns are gone; the KV cache is unchanged.
        const { numHeads: H, headDim: D, hiddenSize: dim } = teacher.config;
        const unit = 2 * (H / U) * D * dim + 2 * D * dim;
        assert.equal(teacher.parameterCount() - model.parameterCount(), unit);
        assert.equal(report.params.saved, unit);
        assert.equal(report.bytesSaved.f32, 4 * unit);
        assert.equal(model.newCache(1, 16).bytes(), teacher.newCache(1, 16).bytes());
        assert.match(formatHeadShareReport(report), /KV cache and the FLOPs are unchanged/);
        // Sharing a dissimilar unit does change the logits.
        const more = directShare(teacher, { shareRate: 3 / (5 * U) });
        assert.ok(maxDiff(more.model.forward(IDS), expected) > 1e-3);
        // The original is untouched and the dense rebuild equals the shared model.
        assertClose(teacher.forward(IDS), expected, 'teacher after sharing', 0, 0);
        assertClose(toDense(more.model).forward(IDS), more.model.forward(IDS), 'dense rebuild', 1e-5, 1e-5);
      });
    }

    test('GQA: a unit is a K/V head with its query heads; a fully shared layer computes entirely from other layers', () => {
      const cfg = tinyConfig(2);
      const teacher = LlamaModel.fromWeights(cfg, randomLlamaWeights(cfg, { seed: 3 }), be);
      // Layer 2 shares both its units (so it stores no attention projection at all); layer 4 shares group 0 with layer 3.
      const map = makeHeadMap('manual', [
        { layer: 2, group: 0, source_layer: 0, source_group: 1 },
        { layer: 2, group: 1, source_layer: 1, source_group: 1 },
        { layer: 4, group: 0, source_layer: 3, source_group: 0 },
      ], cfg);
      const model = withHeadMap(teacher, map);
      assert.equal(model.params.layers[2].wq?.length ?? 0, 0);
      assert.equal(model.params.layers[4].wq!.length, 2 * 8 * 32);
      const layout = headLayout(model.config, model.headMap);
      assert.deepEqual(layout.qSrc[2], [[0, 2], [0, 3], [1, 2], [1, 3]]);
      assert.deepEqual(layout.kvSrc[4], [[3, 0], [4, 0]]);
      // Reference: the same sharing done by copying weights into a dense model.
      const dense = LlamaModel.fromWeights(cfg, randomLlamaWeights(cfg, { seed: 3 }), be);
      copyUnit(dense, 2, 0, 0, 1);
      copyUnit(dense, 2, 1, 1, 1);
      copyUnit(dense, 4, 0, 3, 0);
      const expected = dense.forward(IDS, { batch: 2 });
      assertClose(model.forward(IDS, { batch: 2 }), expected, 'batched shared logits', 1e-5, 1e-5);
      assertClose(toDense(model).forward(IDS, { batch: 2 }), expected, 'dense rebuild', 1e-5, 1e-5);
    });
  });
}

test('save → reload: identical logits, smaller file, each shared weight stored once, views not copies', () => {
  const dir = tmpdir();
  try {
    const { model: teacher, checkpoint } = loadModel(STORIES);
    const ids = Int32Array.of(1, 403, 407, 261, 378, 395, 289, 412, 270, 11);
    const { model, map } = directShare(teacher, { shareRate: 0.4, strategy: 'qk' });
    saveModel(path.join(dir, 'hs'), model, checkpoint.tokenizerPath);
    saveModel(path.join(dir, 'dense'), teacher, checkpoint.tokenizerPath);
    const size = (d: string) => fs.statSync(path.join(dir, d, 'model.safetensors')).size;
    const saved = 4 * (teacher.parameterCount() - model.parameterCount());
    assert.ok(saved > 0);
    assert.ok(Math.abs(size('dense') - size('hs') - saved) < 4096, `file shrank by ${size('dense') - size('hs')}, weights by ${saved}`);
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'hs', 'config.json'), 'utf8'));
    assert.deepEqual(cfg.echoatt_head_sharing.shared.map((e: { layer: number }) => e.layer), map.shared.map((e) => e.layer));
    const st = openSafetensors(path.join(dir, 'hs', 'model.safetensors'));
    const shapes = new Map([...st.tensors].map(([n, t]) => [n, t.shape]));
    st.close();
    const own = headLayout(model.config, model.headMap).ownGroups;
    for (let l = 0; l < 5; l++) assert.deepEqual(shapes.get(`model.layers.${l}.self_attn.q_proj.weight`), own[l].length ? [own[l].length * 16, 64] : undefined);
    const loaded = loadModel(path.join(dir, 'hs'));
    const again = loaded.model;
    assert.ok(again.headMap, 'loads as a head-shared model');
    assertClose(again.forward(ids), model.forward(ids), 'reloaded logits', 1e-5, 1e-5);
    assert.equal(again.parameterCount(), model.parameterCount());
    // The loaded model computes straight from the stored tensors (no copy made while loading).
    for (let l = 0; l < 5; l++) {
      if (!own[l].length) continue;
      assert.equal(again.params.layers[l].wo, loaded.checkpoint.weights.get(`model.layers.${l}.self_attn.o_proj.weight`)!.data);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('q/k/v biases (Qwen2) are shared with their rows and survive save → reload', () => {
  const cfg = tinyConfig(2, 'Qwen2ForCausalLM');
  assert.ok(cfg.attentionBias);
  const teacher = LlamaModel.fromWeights(cfg, randomLlamaWeights(cfg, { seed: 21 }), getBackend('reference'));
  copyUnit(teacher, 4, 0, 2, 1);
  const expected = teacher.forward(IDS);
  const { model, map } = directShare(teacher, { shareRate: 0.1 });
  assert.deepEqual([map.shared[0].layer, map.shared[0].group, map.shared[0].source_layer, map.shared[0].source_group], [4, 0, 2, 1]);
  assert.equal(model.params.layers[4].bq!.length, 16);
  assertClose(model.forward(IDS), expected, 'shared logits with biases', 1e-5, 1e-5);
  const dir = tmpdir();
  try {
    saveModel(dir, model);
    const ck = loadCheckpoint(dir); // checks the compact tensor set against config.json's head map
    const again = LlamaModel.fromWeights(ck.config, ck.weights, getBackend('reference'));
    assertClose(again.forward(IDS), expected, 'reloaded logits with biases', 1e-5, 1e-5);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('options are validated with clear messages (a string share rate is an error, not a crash)', () => {
  const cfg = tinyConfig(2);
  const bad = (opts: { shareRate?: unknown; strategy?: unknown }, re: RegExp) =>
    assert.throws(() => validateHeadShareOptions(opts, cfg), (e: unknown) => e instanceof OptionError && re.test(e.message));
  bad({ shareRate: '0.3' }, /--share-rate: expected a number in \[0, 1\), got string "0.3"/);
  bad({}, /--share-rate: expected a number in \[0, 1\), got nothing/);
  bad({ shareRate: NaN }, /--share-rate: expected a number in \[0, 1\), got NaN/);
  bad({ shareRate: -0.1 }, /got -0.1/);
  bad({ shareRate: 1 }, /got 1$/);
  bad({ shareRate: 0.9 }, /asks for 9 shared units, but only 8 can be shared \(layer 0 has no earlier layer\); use at most 0\.8000/);
  bad({ shareRate: 0.3, strategy: 'qo' }, /--strategy: expected one of q, k, v, qk, qkv, got "qo"/);
  assert.deepEqual(validateHeadShareOptions({ shareRate: 0.3 }, cfg), { shareRate: 0.3, strategy: 'qk', count: 3 });
  assert.equal(validateHeadShareOptions({ shareRate: 0 }, cfg).count, 0);
});

test('head maps are validated; no chains; layer-wise sharing combines where the layers allow', () => {
  const cfg = tinyConfig(2);
  assert.throws(() => parseHeadMap([], 'm'), /m: head map must be a JSON object/);
  assert.throws(() => parseHeadMap({ shared: [{ layer: 1, group: 0, source_layer: -1, source_group: 0 }] }, 'm'), /source_layer must be a non-negative integer/);
  const m = parseHeadMap({ shared: [
    { layer: 2, group: 0, source_layer: 1, source_group: 0 },
    { layer: 1, group: 0, source_layer: 0, source_group: 0 },
    { layer: 3, group: 1, source_layer: 3, source_group: 0 },
    { layer: 3, group: 1, source_layer: 0, source_group: 5 },
  ] }, 'm');
  assert.throws(() => validateHeadMap(m, cfg, 'm'), (e: unknown) => {
    const s = (e as Error).message;
    return e instanceof HeadMapError && /points at layer 1 group 0, which is itself shared/.test(s) && /source_layer 3 does not come before layer 3/.test(s) &&
      /listed twice/.test(s) && /source_group 5 does not exist/.test(s);
  });
  // The ranking never produces a chain: unit (2,0) matches (1,0) best, which is itself the best-matched unit.
  const teacher = LlamaModel.fromWeights(cfg, randomLlamaWeights(cfg, { seed: 2 }), getBackend('reference'));
  copyUnit(teacher, 1, 0, 0, 0);
  copyUnit(teacher, 2, 0, 1, 0);
  const sim = headSimilarity(teacher);
  const sel = selectHeadSharing(sim, 2, cfg);
  assert.deepEqual(sel.map.shared.map((e) => [e.layer, e.group, e.source_layer, e.source_group]), [[1, 0, 0, 0], [2, 0, 0, 0]]);
  assert.ok(sel.map.shared.every((e) => Math.abs(e.cosine! - 1) < 1e-5));
  // Layer-wise + head-wise in one model: head sharing leaves the echo layer out; a map naming it is refused with the reason.
  const student = buildStudent(teacher, makePlan('manual', [{ anchor: 1, shared: [2] }]));
  const both = directShare(student, { shareRate: 0.2 }).model;
  assert.ok(both.headMap!.shared.length > 0 && both.headMap!.shared.every((e) => e.layer !== 2 && e.source_layer !== 2));
  assert.deepEqual(both.sharedLayers(), [2]);
  const naming = makeHeadMap('manual', [{ layer: 2, group: 0, source_layer: 0, source_group: 0 }], cfg);
  assert.throws(() => withHeadMap(student, naming), (e: unknown) => e instanceof HeadMapError && /echoes layer 1's attention/.test((e as Error).message));
  // Sharing twice is refused too.
  const hs = directShare(teacher, { shareRate: 0.1 }).model;
  assert.throws(() => directShare(hs, { shareRate: 0.1 }), /already head-shared/);
});

test('echoatt headshare: saves a loadable model, reports the weight-only saving, rejects bad options (exit 2)', () => {
  const dir = tmpdir();
  const cli = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'src/cli/main.ts'), 'headshare', ...args], { cwd: repoRoot, encoding: 'utf8', timeout: 120_000 });
  try {
    const out = path.join(dir, 'ds');
    const r = cli(['--share-rate', '0.2', '--strategy', 'qkv', '--out', out]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /shared 4 of 20 units/);
    assert.match(r.stdout, /KV cache and the FLOPs are unchanged/);
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.bin', 'headshare-report/headshare-sources.png', 'headshare-report/headshare-similarity.svg']) {
      assert.ok(fs.existsSync(path.join(out, f)), f);
    }
    assert.ok(loadModel(out).model.headMap, 'loads as a head-shared model');
    const bad = cli(['--share-rate', 'abc', '--out', path.join(dir, 'x')]);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--share-rate: expected a number in \[0, 1\), got 'abc'/);
    const tooMuch = cli(['--share-rate', '0.85', '--out', path.join(dir, 'x')]);
    assert.equal(tooMuch.status, 2);
    assert.match(tooMuch.stderr, /only 16 can be shared/);
    const noData = cli(['--share-rate', '0.2', '--post-train', '--out', path.join(dir, 'x')]);
    assert.equal(noData.status, 2);
    assert.match(noData.stderr, /--data/);
    assert.ok(!fs.existsSync(path.join(dir, 'x')));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

describe('PostShare', () => {
  const cfg = tinyConfig(2);
  const be = getBackend('reference');
  const map = makeHeadMap('manual', [
    { layer: 2, group: 0, source_layer: 0, source_group: 1 },
    { layer: 2, group: 1, source_layer: 0, source_group: 0 },
    { layer: 4, group: 1, source_layer: 3, source_group: 1 },
  ], cfg);

  for (const [kind, includeO] of [['fro', false], ['mse', false], ['fro', true]] as const) {
    test(`penalty gradient matches finite differences (${kind}${includeO ? ', with o_proj' : ''})`, () => {
      const m = LlamaModel.fromWeights(cfg, randomLlamaWeights(cfg, { seed: 8 }), be);
      const params = modelParams(m);
      const pick = (k: 'wq' | 'wk' | 'wv' | 'wo') => params.layers.map((lp) => lp[k]!);
      const args = { wq: pick('wq'), wk: pick('wk'), wv: pick('wv'), wo: pick('wo'), map, dims: cfg, kind, includeO };
      const tape = new Tape(be);
      const y = apply(tape, headSharePenalty, args, be);
      tape.backward(y);
      assert.ok(Math.abs(y.data[0] - headSharePenaltyValue(m, map, kind, includeO)) < 1e-6);
      const probe: [string, number][] = [['wq', 0], ['wq', 2], ['wk', 0], ['wv', 2], ['wv', 4], ['wo', 2], ['wo', 0], ['wk', 3]];
      for (const [k, l] of probe) {
        const p = params.layers[l][k as 'wq']!;
        for (const i of [0, 37, p.data.length - 1, Math.floor(p.data.length / 2) + 3]) {
          const x0 = p.data[i];
          const h = 1e-2;
          p.data[i] = x0 + h;
          const up = headSharePenaltyValue(m, map, kind, includeO);
          p.data[i] = x0 - h;
          const dn = headSharePenaltyValue(m, map, kind, includeO);
          p.data[i] = x0;
          const num = (up - dn) / (2 * h);
          const ana = p.grad?.[i] ?? 0;
          assert.ok(Math.abs(num - ana) <= 2e-3 + 2e-2 * Math.abs(num), `${k}[${l}][${i}]: numeric ${num}, analytic ${ana}`);
        }
      }
      // Identical pairs have zero penalty.
      const same = LlamaModel.fromWeights(cfg, randomLlamaWeights(cfg, { seed: 8 }), be);
      copyUnit(same, 2, 0, 0, 1);
      copyUnit(same, 2, 1, 0, 0);
      copyUnit(same, 4, 1, 3, 1);
      assert.equal(headSharePenaltyValue(same, map, kind, true), 0);
    });
  }

  test('post-training pulls matched heads together; a resumed run ends exactly where a straight run does', async () => {
    const teacher = LlamaModel.fromWeights(cfg, randomLlamaWeights(cfg, { seed: 4 }), be);
    const seqLen = 12;
    const sequences = Array.from({ length: 16 }, (_, i) => randInts(seqLen + 1, cfg.vocabSize, 100 + i));
    const dataset = { sequences, description: 'random tokens', fingerprint: fingerprint(sequences) };
    const base = { shareRate: 0.3, dataset, steps: 6, seqLen, batch: 2, lambda: 5, lr: 1e-2, warmup: 1, seed: 3 };
    const straight = await postShare(teacher, null as never, base);
    assert.equal(straight.map.shared.length, 3);
    assert.ok(straight.penaltyAfter < 0.9 * straight.penaltyBefore, `penalty ${straight.penaltyBefore} -> ${straight.penaltyAfter}`);
    assert.equal(straight.report.method, 'PostShare');
    assertClose(straight.model.forward(IDS), toDense(straight.model).forward(IDS), 'shared vs dense', 1e-5, 1e-5);
    const dir = tmpdir();
    try {
      const checkpoint = path.join(dir, 'ps.safetensors');
      await assert.rejects(
        postShare(teacher, null as never, { ...base, checkpoint, checkpointEvery: 2, onStep: (s) => { if (s.step === 3) throw new Error('crash'); } }),
        /crash/,
      );
      const resumed = await postShare(teacher, null as never, { ...base, checkpoint, checkpointEvery: 2, resume: true });
      assert.equal(resumed.steps, 6);
      assertClose(resumed.model.forward(IDS), straight.model.forward(IDS), 'resumed vs straight', 0, 1e-6);
      await assert.rejects(postShare(teacher, null as never, { ...base, lambda: 1, checkpoint, resume: true }), /other options or data/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    await assert.rejects(postShare(teacher, null as never, { ...base, lambda: -1 }), /--lambda: expected a number >= 0/);
    await assert.rejects(postShare(teacher, null as never, { ...base, shareRate: '0.3' as never }), /--share-rate/);
  });
});
