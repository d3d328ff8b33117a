/**
 * Attention-similarity analysis: streaming statistics on tiny models with known structure (and against a brute-force
 * computation), calibration readers, plan strategies, stories260K on real text, and the `echoatt analyze` CLI.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { configFromJson } from '../src/models/config.js';
import { randomLlamaWeights } from '../src/models/random.js';
import { LlamaModel } from '../src/models/llama.js';
import { loadModel } from '../src/models/load.js';
import type { StoredTensor } from '../src/tensor/tensor.js';
import { SimilarityAccumulator, type SimilarityStats } from '../src/analysis/similarity.js';
import { availableBackends, getBackend, type BackendName } from '../src/backend/index.js';
import { calibrationSequences } from '../src/tokenizer/windows.js';
import { budgetStrategy, echoattStrategy, spanStrategy, type StrategyInput } from '../src/analysis/strategies.js';
import { analyze } from '../src/analysis/analyze.js';
import { parsePlan, validatePlan, makePlan } from '../src/models/sharing-plan.js';
import { EchoattError, PlanError } from '../src/errors.js';
import { randInts, randn, repoRoot, sharedDir } from './helpers.js';
import { layerTensorNames } from '../src/models/tensor-spec.js';
import { resolveCorpusSource, stripGutenberg, unwrapParagraphs } from '../src/io/corpus.js';

const STORIES = path.join(sharedDir, 'models/stories260K/stories260K.bin');

function tinyConfig(layers: number) {
  return configFromJson({
    architectures: ['LlamaForCausalLM'], hidden_size: 32, intermediate_size: 48, num_hidden_layers: layers,
    num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 50, max_position_embeddings: 64, rms_norm_eps: 1e-5,
    rope_theta: 10000, tie_word_embeddings: false,
  }, 'tiny (test)');
}

/**
 * A 5-layer GQA model where layers 1 and 2 attend identically: layer 1 writes nothing to the residual stream (zero
 * o_proj and down_proj), so layer 2 sees the same input; layer 2 gets layer 1's input norm and q/k weights.
 */
function twinModel(): LlamaModel {
  const cfg = tinyConfig(5);
  const w = randomLlamaWeights(cfg, { seed: 7 });
  const zero = (name: string) => {
    const t = w.get(name)!;
    w.set(name, { ...t, data: new Float32Array((t.data as Float32Array).length) });
  };
  const copy = (from: string, to: string) => {
    const t = w.get(from)!;
    w.set(to, { ...t, data: Float32Array.from(t.data as Float32Array) } as StoredTensor);
  };
  const a = layerTensorNames(1);
  const b = layerTensorNames(2);
  zero(a.wo);
  zero(a.wDown);
  copy(a.wq, b.wq);
  copy(a.wk, b.wk);
  // A non-trivial (but shared) input norm.
  const norm = randn(cfg.hiddenSize, 3, 0.5, 1.5);
  w.set(a.inputNorm, { dtype: 'f32', shape: [cfg.hiddenSize], data: norm });
  w.set(b.inputNorm, { dtype: 'f32', shape: [cfg.hiddenSize], data: Float32Array.from(norm) });
  return LlamaModel.fromWeights(cfg, w);
}

function assertMatrixShape(m: { n: number; mean: Float64Array; std: Float64Array }, n: number, diag: number, what: string) {
  assert.equal(m.n, n, `${what}: side`);
  for (let i = 0; i < n; i++) {
    assert.equal(m.mean[i * n + i], diag, `${what}: diagonal ${i}`);
    for (let j = 0; j < n; j++) {
      assert.equal(m.mean[i * n + j], m.mean[j * n + i], `${what}: symmetric (${i}, ${j})`);
      assert.ok(Number.isFinite(m.mean[i * n + j]) && m.std[i * n + j] >= 0, `${what}: finite (${i}, ${j})`);
    }
  }
}

/** Brute force on one sequence: every layer's probabilities held, cosine and JS (direct KL form) in f64. */
function bruteForce(model: LlamaModel, ids: Int32Array) {
  const { numLayers: L, numHeads: H } = model.config;
  const T = ids.length;
  const probs: Float32Array[] = [];
  model.forward(ids, { onAttentionProbs: (l, p) => (probs[l] = Float32Array.from(p)) });
  const cos = new Float64Array(L * L * H);
  const js = new Float64Array(L * L * H);
  for (let i = 0; i < L; i++) {
    for (let j = 0; j < L; j++) {
      for (let h = 0; h < H; h++) {
        let dot = 0;
        let na = 0;
        let nb = 0;
        let jsSum = 0;
        for (let r = 0; r < T; r++) {
          let row = 0;
          for (let c = 0; c <= r; c++) {
            const p = probs[i][(h * T + r) * T + c];
            const q = probs[j][(h * T + r) * T + c];
            dot += p * q;
            na += p * p;
            nb += q * q;
            const m = (p + q) / 2;
            if (p > 0) row += 0.5 * p * Math.log(p / m);
            if (q > 0) row += 0.5 * q * Math.log(q / m);
          }
          jsSum += row;
        }
        cos[(i * L + j) * H + h] = dot / Math.sqrt(na * nb);
        js[(i * L + j) * H + h] = jsSum / T;
      }
    }
  }
  return { cos, js };
}

function accumulate(model: LlamaModel, seqs: Int32Array[], maxMapBytes?: number): SimilarityStats {
  const acc = new SimilarityAccumulator(model.config.numLayers, model.config.numHeads, seqs[0].length, { maxMapBytes });
  for (const s of seqs) acc.addSequence(model, s);
  return acc.result();
}

describe('similarity statistics', () => {
  const model = twinModel();
  const seqs = [0, 1, 2].map((k) => randInts(24, 50, 100 + k));

  test('layers with identical q/k weights and inputs: cosine 1, JS 0; symmetric, unit diagonal, JS >= 0', () => {
    const s = accumulate(model, seqs);
    const L = 5;
    assert.equal(s.sequences, 3);
    assert.ok(Math.abs(s.cosine.mean[1 * L + 2] - 1) <= 1e-6, `cosine(1,2) = ${s.cosine.mean[1 * L + 2]}`);
    assert.ok(Math.abs(s.js.mean[1 * L + 2]) <= 1e-6, `js(1,2) = ${s.js.mean[1 * L + 2]}`);
    for (let h = 0; h < 4; h++) {
      assert.ok(Math.abs(s.cosinePerHead[h].mean[1 * L + 2] - 1) <= 1e-6, `head ${h} cosine`);
      assert.ok(Math.abs(s.jsPerHead[h].mean[1 * L + 2]) <= 1e-6, `head ${h} js`);
    }
    // Other pairs are clearly different (random layers).
    assert.ok(s.cosine.mean[0 * L + 3] < 0.99, `cosine(0,3) = ${s.cosine.mean[0 * L + 3]}`);
    assert.ok(s.js.mean[0 * L + 3] > 1e-3);
    assertMatrixShape(s.cosine, L, 1, 'cosine');
    assertMatrixShape(s.js, L, 0, 'js');
    for (let x = 0; x < L * L; x++) {
      assert.ok(s.js.mean[x] >= 0 && s.js.mean[x] <= Math.LN2 + 1e-12, 'JS in [0, ln 2]');
      assert.ok(s.cosine.mean[x] >= 0 && s.cosine.mean[x] <= 1, 'cosine in [0, 1]');
    }
    // Head pairs: (L·H)², unit diagonal, symmetric, corresponding heads equal the per-head cosine.
    const hp = s.headPairs!;
    assertMatrixShape(hp, L * 4, 1, 'head pairs');
    for (let i = 0; i < L; i++) for (let j = 0; j < L; j++) for (let h = 0; h < 4; h++) {
      assert.ok(Math.abs(hp.mean[(i * 4 + h) * L * 4 + j * 4 + h] - s.cosinePerHead[h].mean[i * L + j]) < 1e-12);
    }
  });

  test('matches a brute-force computation holding every layer (cosine and direct-form JS)', () => {
    const ids = seqs[0];
    const s = accumulate(model, [ids]);
    const ref = bruteForce(model, ids);
    const L = 5;
    for (let i = 0; i < L; i++) for (let j = 0; j < L; j++) for (let h = 0; h < 4; h++) {
      const x = (i * L + j) * 4 + h;
      assert.ok(Math.abs(s.cosinePerHead[h].mean[i * L + j] - ref.cos[x]) < 1e-6, `cos ${i},${j},${h}`);
      assert.ok(Math.abs(s.jsPerHead[h].mean[i * L + j] - ref.js[x]) < 1e-6, `js ${i},${j},${h}: ${s.jsPerHead[h].mean[i * L + j]} vs ${ref.js[x]}`);
    }
  });

  test('a small map budget (several forward passes per sequence) gives the same statistics; memory is bounded', () => {
    const one = accumulate(model, seqs);
    const acc = new SimilarityAccumulator(5, 4, 24, { maxMapBytes: 2 * 4 * 300 * 4 }); // 2 layers per block
    for (const s of seqs) acc.addSequence(model, s);
    const many = acc.result();
    assert.equal(many.memory.layersPerBlock, 2);
    assert.equal(many.memory.passes, 3);
    assert.ok(many.memory.peakHeldBytes <= many.memory.boundBytes, 'peak within bound');
    assert.equal(one.memory.passes, 1);
    for (let x = 0; x < 25; x++) {
      assert.ok(Math.abs(one.cosine.mean[x] - many.cosine.mean[x]) < 1e-12);
      assert.ok(Math.abs(one.js.mean[x] - many.js.mean[x]) < 1e-12);
      assert.ok(Math.abs(one.cosine.std[x] - many.cosine.std[x]) < 1e-12);
    }
    for (let x = 0; x < one.headPairs!.mean.length; x++) assert.ok(Math.abs(one.headPairs!.mean[x] - many.headPairs!.mean[x]) < 1e-6);
  });

  test('the backend kernels match the TypeScript reference statistics: |Δ| ≤ 1e-6 in cosine, JS and head-pair cosine', () => {
    // T = 64: K = 2080 entries per head, more than one chunk of the native kernels.
    const ids = randInts(64, 50, 200);
    const run = (name: BackendName) => {
      const acc = new SimilarityAccumulator(5, 4, ids.length, { backend: getBackend(name) });
      acc.addSequence(model, ids);
      return acc.result();
    };
    const ref = run('reference');
    const got = run(availableBackends()[0]);
    const worst = (a: Float64Array, b: Float64Array) => a.reduce((w, x, i) => Math.max(w, Math.abs(x - b[i])), 0);
    for (const k of ['cosine', 'js', 'headPairs'] as const) {
      const d = worst(got[k]!.mean, ref[k]!.mean);
      assert.ok(d <= 1e-6, `${k}: max |Δ| ${d}`);
    }
    for (let h = 0; h < 4; h++) {
      assert.ok(worst(got.cosinePerHead[h].mean, ref.cosinePerHead[h].mean) <= 1e-6, `cosine head ${h}`);
      assert.ok(worst(got.jsPerHead[h].mean, ref.jsPerHead[h].mean) <= 1e-6, `js head ${h}`);
    }
    assert.equal(got.js.mean[1 * 5 + 2], 0, 'identical maps: JS exactly 0 on every backend');
  });

  test('std across sequences: 0 for one sequence, matches the sample std of per-sequence values', () => {
    const per = seqs.map((s) => accumulate(model, [s]));
    const all = accumulate(model, seqs);
    for (const x of [1, 3, 8, 14]) {
      const v = per.map((p) => p.cosine.mean[x]);
      assert.equal(per[0].cosine.std[x], 0);
      const mean = v.reduce((a, b) => a + b, 0) / v.length;
      const sd = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1));
      assert.ok(Math.abs(all.cosine.mean[x] - mean) < 1e-12);
      assert.ok(Math.abs(all.cosine.std[x] - sd) < 1e-9);
    }
  });
});

describe('calibration data', () => {
  const { tokenizer } = loadModel(STORIES);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'echoatt-cal-'));
  const texts = [
    'Once upon a time there was a little cat. The cat liked to play in the sun.',
    'Tom had a red ball. He threw it high and his dog ran after it, barking happily.',
    'The sky was blue and the birds sang. Lily smiled at her mom and they went to the park together.',
  ];
  test.after(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('plain text: N sequences of T tokens, each starting with BOS, deterministic', async () => {
    const f = path.join(dir, 'a.txt');
    fs.writeFileSync(f, texts.join('\n\n'));
    const src = resolveCorpusSource(f);
    assert.equal(src.kind, 'text');
    const a = await calibrationSequences(tokenizer, src, { seqs: 3, seqLen: 16 });
    const b = await calibrationSequences(tokenizer, src, { seqs: 3, seqLen: 16 });
    assert.equal(a.sequences.length, 3);
    for (const s of a.sequences) {
      assert.equal(s.length, 16);
      assert.equal(s[0], tokenizer.bosId);
    }
    assert.deepEqual(a.sequences, b.sequences);
    assert.match(tokenizer.decode([...a.sequences[0]]), /^Once upon a time/);
  });

  test('folder (sorted .txt files), jsonl field and parquet column give the same tokens for the same texts', async () => {
    const folder = path.join(dir, 'folder');
    fs.mkdirSync(folder);
    texts.forEach((t, i) => fs.writeFileSync(path.join(folder, `${String(i).padStart(2, '0')}.txt`), t));
    fs.writeFileSync(path.join(folder, 'ignored.md'), 'not text');
    const jsonl = path.join(dir, 'data.jsonl');
    fs.writeFileSync(jsonl, texts.map((t, i) => JSON.stringify({ id: i, story: t })).join('\n') + '\n');
    const parquet = path.join(dir, 'data.parquet');
    const { parquetWriteFile } = await import('hyparquet-writer');
    parquetWriteFile({ filename: parquet, columnData: [{ name: 'id', data: [0, 1, 2], type: 'INT32' }, { name: 'story', data: texts, type: 'STRING' }] });
    const opts = { seqs: 4, seqLen: 20 };
    const f = await calibrationSequences(tokenizer, resolveCorpusSource(folder), opts);
    const j = await calibrationSequences(tokenizer, resolveCorpusSource(jsonl, { field: 'story' }), opts);
    const p = await calibrationSequences(tokenizer, resolveCorpusSource(parquet, { field: 'story' }), opts);
    assert.equal(f.source.kind, 'folder');
    assert.equal(j.source.kind, 'jsonl');
    assert.equal(p.source.kind, 'parquet');
    assert.ok(f.sequences.length >= 2);
    assert.deepEqual(j.sequences, f.sequences);
    assert.deepEqual(p.sequences, f.sequences);
    assert.equal(p.documentsRead, 3);
    // Wrong field / column names are reported with the file.
    await assert.rejects(calibrationSequences(tokenizer, resolveCorpusSource(jsonl, { field: 'nope' }), opts), (e: EchoattError) => e.code === 'E_FORMAT' && /nope/.test(e.message));
    await assert.rejects(calibrationSequences(tokenizer, resolveCorpusSource(parquet, { field: 'nope' }), opts), (e: EchoattError) => e.code === 'E_FORMAT' && /story/.test(e.message));
  });

  test('too little data: fewer sequences (and requestedSeqs); none at all is an OptionError', async () => {
    const f = path.join(dir, 'short.txt');
    fs.writeFileSync(f, texts[0]);
    const r = await calibrationSequences(tokenizer, resolveCorpusSource(f), { seqs: 10, seqLen: 8 });
    assert.ok(r.sequences.length >= 1 && r.sequences.length < 10);
    assert.equal(r.requestedSeqs, 10);
    await assert.rejects(calibrationSequences(tokenizer, resolveCorpusSource(f), { seqs: 1, seqLen: 500 }), (e: EchoattError) => e.code === 'E_OPTION');
    assert.throws(() => resolveCorpusSource(path.join(dir, 'missing.txt')), (e: EchoattError) => e.code === 'E_IO');
  });

  test('Project Gutenberg headers and footers are stripped; hard wraps joined', () => {
    const book = 'The Project Gutenberg EBook of X\nLicence blah\n*** START OF THIS PROJECT GUTENBERG EBOOK X ***\n\nChapter 1\n\nIt was a\ndark night.\n*** END OF THIS PROJECT GUTENBERG EBOOK X ***\nMore licence.';
    const body = stripGutenberg(book);
    assert.ok(!/Licence|licence|EBOOK/.test(body), body);
    assert.equal(unwrapParagraphs(body), 'Chapter 1\n\nIt was a dark night.');
    assert.equal(stripGutenberg('no markers'), 'no markers');
  });
});

describe('plan strategies', () => {
  const cfg = tinyConfig(8);
  /** Similarity with strong blocks {1,2,3} after 0... actually anchored at 1: sim(1,2), sim(1,3) high; sim(4,5) high. */
  function sims(L: number, high: [number, number][]): Float64Array {
    const m = new Float64Array(L * L).fill(0.2);
    for (let i = 0; i < L; i++) m[i * L + i] = 1;
    for (const [a, b] of high) {
      m[a * L + b] = 0.9;
      m[b * L + a] = 0.9;
    }
    return m;
  }
  const input: StrategyInput = { config: cfg, seqLen: 64, similarity: sims(8, [[1, 2], [1, 3], [2, 3], [4, 5], [6, 7], [0, 1]]) };

  function checkPlan(o: { plan: ReturnType<typeof makePlan> }, L: number) {
    validatePlan(o.plan, L);
    for (const g of o.plan.groups) for (const s of g.shared) assert.ok(s > 0 && s < L - 1, `layer ${s} shared`);
    parsePlan(JSON.parse(JSON.stringify(o.plan)), 'round trip');
  }

  test('echoatt by threshold: contiguous blocks anchored just before; first/last never shared', () => {
    const o = echoattStrategy(input, { threshold: 0.8 });
    checkPlan(o, 8);
    // 0→1 is high but a block would start at 1 with anchor 0; then 2 has sim(0,2) low → block {0:[1]} closes at 2.
    // 2 computes its own; 3: sim(2,3) high → {2:[3]}; 4: sim(2,4) low → closes; 5: sim(4,5) high → {4:[5]}; 6 own; 7 is last.
    assert.deepEqual(o.plan.groups.map((g) => [g.anchor, [...g.shared]]), [[0, [1]], [2, [3]], [4, [5]]]);
    assert.equal(o.plan.strategy, 'echoatt');
    assert.ok(Math.abs(o.meanSimilarity! - 0.9) < 1e-12);
  });

  test('echoatt best k: exactly k layers, the highest total similarity', () => {
    for (let k = 0; k <= 6; k++) {
      const o = echoattStrategy(input, { k });
      checkPlan(o, 8);
      assert.equal(o.plan.groups.reduce((n, g) => n + g.shared.length, 0), k);
    }
    const two = echoattStrategy(input, { k: 2 });
    assert.ok(Math.abs(two.meanSimilarity! - 0.9) < 1e-12, 'two layers at 0.9 (several optima tie)');
    const m = Float64Array.from(input.similarity);
    m[1 * 8 + 3] = m[3 * 8 + 1] = 0.95; // now {1: [2, 3]} is the unique best pair
    const unique = echoattStrategy({ ...input, similarity: m }, { k: 2 });
    assert.deepEqual(unique.plan.groups.map((g) => [g.anchor, [...g.shared]]), [[1, [2, 3]]]);
    assert.throws(() => echoattStrategy(input, { k: 7 }), (e: EchoattError) => e.code === 'E_OPTION');
  });

  test('span: one span reusing the layer before it', () => {
    const o = spanStrategy(input, { length: 2 });
    checkPlan(o, 8);
    assert.deepEqual(o.plan.groups.map((g) => [g.anchor, [...g.shared]]), [[1, [2, 3]]]);
    // Longest span whose mean cosine with the layer before it reaches the threshold: at 0.5, 2..5 (mean 0.55).
    const t = spanStrategy(input, { threshold: 0.5 });
    checkPlan(t, 8);
    assert.deepEqual(t.plan.groups.map((g) => [g.anchor, [...g.shared]]), [[1, [2, 3, 4, 5]]]);
    assert.deepEqual(spanStrategy(input, { threshold: 0.7 }).plan.groups.map((g) => [g.anchor, [...g.shared]]), [[1, [2, 3]]]);
    assert.equal(spanStrategy(input, { threshold: 0.95 }).plan.groups.length, 0);
  });

  test('budget: meets the target fraction with the least predicted loss', () => {
    const crit = [null, 0.5, 0.01, 0.02, 0.3, 0.03, 0.4, 0.9];
    const anchors = [null, 0, 1, 1, 3, 4, 5, 6];
    const withCrit: StrategyInput = { ...input, criticality: crit, criticalAnchor: anchors };
    const o = budgetStrategy(withCrit, { fraction: 0.25, resource: 'kcache' });
    checkPlan(o, 8);
    assert.ok(o.removed.kcache >= 0.25);
    assert.deepEqual(o.plan.groups.flatMap((g) => [...g.shared]).sort(), [2, 3]); // the two cheapest; 2/8 = 25%
    assert.ok(Math.abs(o.predictedLossDelta! - 0.03) < 1e-12);
    for (const resource of ['flops', 'kcache', 'params'] as const) {
      for (const f of [0, 0.1, 0.3, 0.5, 1]) {
        const b = budgetStrategy(withCrit, { fraction: f, resource });
        checkPlan(b, 8);
        const all = b.plan.groups.reduce((n, g) => n + g.shared.length, 0) === 6; // every inner layer: nothing more to remove
        assert.ok(b.removed[resource] >= f - 1e-12 || all, `${resource} ${f}: ${b.removed[resource]}`);
        if (f > 0 && !all) assert.ok(/removes ≥/.test(b.why));
      }
    }
    const none = budgetStrategy(input, { fraction: 0.3, resource: 'flops' });
    checkPlan(none, 8);
    assert.equal(none.predictedLossDelta, null);
  });

  test('random similarity matrices: every strategy gives a valid plan keeping first and last', () => {
    for (let seed = 1; seed <= 30; seed++) {
      const L = 3 + (seed % 9);
      const r = randn(L * L, seed, 0, 1);
      const m = new Float64Array(L * L);
      for (let i = 0; i < L; i++) for (let j = 0; j < L; j++) m[i * L + j] = i === j ? 1 : (r[Math.min(i, j) * L + Math.max(i, j)]);
      const inp: StrategyInput = { config: tinyConfig(L), seqLen: 32, similarity: m };
      checkPlan(echoattStrategy(inp, { threshold: 0.5 }), L);
      checkPlan(echoattStrategy(inp, { k: seed % (L - 1) }), L);
      checkPlan(spanStrategy(inp, {}), L);
      checkPlan(spanStrategy(inp, { length: (seed % (L - 2)) + 1 }), L);
      checkPlan(budgetStrategy(inp, { fraction: (seed % 5) / 5 }), L);
    }
  });

  test('malformed plan JSON and plans that do not fit the model are PlanErrors', () => {
    for (const bad of [null, [], { groups: 'x' }, { groups: [{ anchor: -1, shared: [] }] }, { groups: [{ anchor: 0, shared: [1.5] }] }, { version: 4, groups: [] }, { version: 2, groups: [], dropped: [1] }, { groups: [], dropped: 'x' }, { groups: [{ anchor: 0, shared: [1], extra: 1 }] }]) {
      assert.throws(() => parsePlan(bad, 'bad.json'), PlanError, JSON.stringify(bad));
    }
    assert.throws(() => validatePlan(makePlan('manual', [{ anchor: 3, shared: [2] }]), 8), PlanError);
    assert.throws(() => validatePlan(makePlan('manual', [{ anchor: 1, shared: [9] }]), 8), PlanError);
    assert.throws(() => validatePlan(makePlan('manual', [{ anchor: 1, shared: [2] }, { anchor: 2, shared: [3] }]), 8), PlanError);
  });
});

describe('stories260K', () => {
  test('analyze on real text: 5×5 matrices, criticality, valid plans', async () => {
    const { model, tokenizer } = loadModel(STORIES);
    const r = await analyze(model, tokenizer, {
      data: path.join(sharedDir, 'data/corpus/tinystories_sample.txt'), seqs: 4, seqLen: 64, criticalitySeqs: 2, threshold: 0.3,
    });
    const s = r.similarity;
    assert.equal(s.numLayers, 5);
    assert.equal(s.numHeads, 8);
    assertMatrixShape(s.cosine, 5, 1, 'cosine');
    assertMatrixShape(s.js, 5, 0, 'js');
    assert.equal(s.headPairs!.n, 40);
    for (let i = 0; i < 5; i++) for (let j = 0; j < 5; j++) if (i !== j) {
      assert.ok(s.cosine.mean[i * 5 + j] > 0 && s.cosine.mean[i * 5 + j] < 1, 'real layers are neither identical nor orthogonal');
      assert.ok(s.js.mean[i * 5 + j] > 0);
    }
    assert.equal(r.data.sequences, 4);
    assert.ok(r.teacherLoss.mean > 0.5 && r.teacherLoss.mean < 6, `loss ${r.teacherLoss.mean}`);
    assert.equal(r.criticality!.layers.length, 5);
    assert.equal(r.criticality!.layers[0].delta, null);
    for (const c of r.criticality!.layers.slice(1)) assert.ok(Number.isFinite(c.delta!) && c.anchor! < c.layer);
    for (const o of Object.values(r.plans)) validatePlan(o.plan, 5);
    // The heuristics keep the first and last layer by rule; the search decides by measurement (and measures its choice).
    for (const k of ['echoatt', 'span', 'budget'] as const) for (const g of r.plans[k].plan.groups) assert.ok(!g.shared.includes(0) && !g.shared.includes(4));
    assert.ok(r.search && r.plans.search && Number.isFinite(r.search.chosen.delta) && r.search.chosen.plan === r.plans.search.plan);
  });
});

describe('echoatt analyze (CLI)', () => {
  test('writes every artefact; PNGs decode, SVGs are SVG, plans parse, --json summary on stdout', () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'echoatt-analyze-'));
    try {
      const r = spawnSync(process.execPath, [
        '--import', 'tsx', path.join(repoRoot, 'src/cli/main.ts'), 'analyze', '--seqs', '3', '--seq-len', '48',
        '--criticality-seqs', '1', '--threshold', '0.3', '--out', out, '--json',
      ], { cwd: repoRoot, encoding: 'utf8', timeout: 120_000 });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stderr, /analyze .*100%/);
      const summary = JSON.parse(r.stdout);
      assert.equal(summary.cosine.length, 5);
      assert.equal(summary.data.sequences, 3);
      for (const name of ['cosine', 'js', 'cosine-per-head', 'js-per-head', 'head-pairs', 'criticality']) {
        const svg = fs.readFileSync(path.join(out, `${name}.svg`), 'utf8');
        assert.match(svg, /^<svg[^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/, `${name}.svg`);
        assert.match(svg, /<\/svg>\s*$/);
        const png = fs.readFileSync(path.join(out, `${name}.png`));
        assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], `${name}.png signature`);
        assert.equal(png.subarray(12, 16).toString('ascii'), 'IHDR');
        const w = png.readUInt32BE(16);
        const h = png.readUInt32BE(20);
        assert.ok(w > 100 && h > 100 && w < 10000 && h < 10000, `${name}.png ${w}×${h}`);
      }
      const sim = JSON.parse(fs.readFileSync(path.join(out, 'similarity.json'), 'utf8'));
      assert.equal(sim.format, 'echoatt-similarity');
      assert.equal(sim.cosine.mean.length, 5);
      assert.equal(sim.perHead.cosine.length, 8);
      for (const k of ['echoatt', 'span', 'budget']) {
        const plan = parsePlan(JSON.parse(fs.readFileSync(path.join(out, `plan-${k}.json`), 'utf8')), k);
        validatePlan(plan, 5);
        assert.equal(plan.strategy, k);
      }
      const md = fs.readFileSync(path.join(out, 'report.md'), 'utf8');
      for (const img of ['cosine.png', 'js.png', 'criticality.png', 'plan-budget.json']) assert.ok(md.includes(img), img);
      assert.deepEqual(fs.readdirSync(out).filter((f) => f.endsWith('.tmp')), [], 'no temp files left');
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  });
});
