/**
 * The Llama runtime against real references: run.c's greedy output for stories260K, golden logits from an
 * independent PyTorch implementation of HF LlamaForCausalLM, and self-consistency of the KV cache and batching.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { availableBackends, getBackend } from '../src/backend/index.js';
import { loadModel } from '../src/models/load.js';
import { generate } from '../src/models/generate.js';
import { LlamaModel } from '../src/models/llama.js';
import { openSafetensors } from '../src/io/safetensors.js';
import { assertClose, sharedDir } from './helpers.js';
import { writeModelCheckpoint, loadCheckpoint } from '../src/models/checkpoint.js';
import { toF32 } from '../src/models/params.js';

const STORIES = path.join(sharedDir, 'models/stories260K/stories260K.bin');
const GOLDEN_TEXT = fs.readFileSync(path.join(sharedDir, 'reference/stories260K-greedy-200.txt'));
const TINY_GQA = path.join(sharedDir, 'reference/hf-llama-tiny-gqa');

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

for (const name of availableBackends()) {
  describe(`llama runtime on ${name}`, () => {
    const backend = getBackend(name);

    test('stories260K greedy, 200 steps from BOS, reproduces run.c byte for byte', () => {
      const { model, tokenizer, stopIds } = loadModel(STORIES, { backend });
      const chunks: Uint8Array[] = [];
      const res = generate(model, tokenizer, { temperature: 0, steps: 200, maxTokens: 1000, stopIds }, (b) => chunks.push(b));
      const out = Buffer.concat(chunks);
      assert.equal(out.toString('utf8'), GOLDEN_TEXT.toString('utf8'));
      assert.ok(out.equals(GOLDEN_TEXT), 'byte-exact');
      assert.equal(res.stop, 'steps');
    });

    test('hf-llama-tiny-gqa matches golden PyTorch logits (max abs diff <= 1e-4)', () => {
      const ck = loadCheckpoint(TINY_GQA);
      const model = LlamaModel.fromWeights(ck.config, ck.weights, backend);
      const gold = openSafetensors(path.join(TINY_GQA, 'expected_logits.safetensors'));
      const ids = Int32Array.from(toF32(gold.read('input_ids')), (x) => Math.round(x));
      const expected = toF32(gold.read('logits'));
      gold.close();
      const logits = model.forward(ids);
      const diff = maxAbsDiff(logits, expected);
      assert.ok(diff <= 1e-4, `max abs diff ${diff}`);
    });

    test('KV-cache decode and batched prefill agree with one full prefill', () => {
      const { model } = loadModel(STORIES, { backend });
      const V = model.config.vocabSize;
      const ids = Int32Array.of(1, 403, 407, 261, 378, 395, 289, 412, 270, 11, 99);
      const full = model.forward(ids); // (T, V)
      // Prefill 4 tokens then decode the rest one at a time.
      const cache = model.newCache(1, 64);
      const first = model.forward(ids.subarray(0, 4), { cache });
      assertClose(first, full.subarray(0, 4 * V), 'prefill part', 1e-4, 1e-4);
      for (let t = 4; t < ids.length; t++) {
        const step = model.forward(ids.subarray(t, t + 1), { cache });
        assertClose(step, full.subarray(t * V, (t + 1) * V), `decode position ${t}`, 1e-4, 1e-4);
      }
      assert.equal(cache.length, ids.length);
      // Two different sequences in one batch equal two separate passes.
      const other = Int32Array.of(1, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140);
      const both = model.forward(Int32Array.of(...ids, ...other), { batch: 2, lastOnly: true }); // (2, V)
      const lastOther = model.forward(other, { lastOnly: true });
      assertClose(both.subarray(0, V), full.subarray((ids.length - 1) * V), 'batch row 0', 1e-4, 1e-4);
      assertClose(both.subarray(V), lastOther, 'batch row 1', 1e-4, 1e-4);
    });

    test('attention-probability hook: causal rows that sum to 1, and it does not change logits', () => {
      const { model } = loadModel(STORIES, { backend });
      const ids = Int32Array.of(1, 403, 407, 261, 378, 395);
      const plain = model.forward(ids);
      const seen: number[] = [];
      const hooked = model.forward(ids, {
        onAttentionProbs: (layer, probs, { tq, s }) => {
          seen.push(layer);
          const H = model.config.numHeads;
          assert.equal(probs.length, H * tq * s);
          for (let r = 0; r < H * tq; r++) {
            const t = r % tq;
            let sum = 0;
            for (let j = 0; j < s; j++) {
              if (j > t) assert.equal(probs[r * s + j], 0, 'masked entry');
              sum += probs[r * s + j];
            }
            assert.ok(Math.abs(sum - 1) < 1e-5, `row sum ${sum}`);
          }
        },
        probsLayers: new Set([0, 3]),
      });
      assert.deepEqual(seen, [0, 3]);
      assert.deepEqual(hooked, plain);
    });
  });
}

test('stories260K converted to Hugging Face layout gives the same logits (max abs diff <= 1e-4)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'echoatt-convert-'));
  try {
    const src = loadCheckpoint(STORIES);
    writeModelCheckpoint(dir, src.config, src.weights, path.join(sharedDir, 'models/stories260K/tok512.bin'));
    const a = loadModel(STORIES);
    const b = loadModel(dir);
    assert.equal(b.checkpoint.format, 'hf');
    assert.equal(b.model.config.ropeStyle, 'half');
    const ids = Int32Array.of(1, 403, 407, 261, 378, 395, 289, 412, 270, 11, 99, 5, 300, 200);
    const diff = maxAbsDiff(a.model.forward(ids), b.model.forward(ids));
    assert.ok(diff <= 1e-4, `max abs diff ${diff}`);
    // And it generates the same greedy text.
    const run = (m: typeof a) => {
      const out: Uint8Array[] = [];
      generate(m.model, m.tokenizer, { temperature: 0, steps: 60, stopIds: m.stopIds }, (x) => out.push(x));
      return Buffer.concat(out).toString();
    };
    assert.equal(run(b), run(a));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('sampling is reproducible with a seed and differs across seeds', () => {
  const { model, tokenizer, stopIds } = loadModel(STORIES, { backend: getBackend('reference') });
  const run = (seed: number) => {
    const out: Uint8Array[] = [];
    generate(model, tokenizer, { prompt: 'Once upon a time', temperature: 1, topP: 0.9, seed, maxTokens: 40, stopIds }, (x) => out.push(x));
    return Buffer.concat(out).toString();
  };
  const a = run(42);
  assert.equal(run(42), a);
  assert.ok(a.startsWith('Once upon a time'));
  assert.notEqual(run(7), a);
});

test('half-precision weights kept as stored (f16 and bf16) give the same logits as widened f32, prefill and decode', async () => {
  const { configFromJson } = await import('../src/models/config.js');
  const { randomLlamaWeights } = await import('../src/models/random.js');
  const { HalfWeight } = await import('../src/tensor/weight.js');
  const cfg = configFromJson({
    architectures: ['LlamaForCausalLM'], hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2, num_attention_heads: 4,
    num_key_value_heads: 2, vocab_size: 300, max_position_embeddings: 64, rms_norm_eps: 1e-5, tie_word_embeddings: false, hidden_act: 'silu',
  }, 'half test');
  for (const name of availableBackends()) {
    for (const dtype of ['f16', 'bf16'] as const) {
      const w = randomLlamaWeights(cfg, { seed: 9, dtype });
      const half = LlamaModel.fromWeights(cfg, w, getBackend(name), 'as-stored');
      const wide = LlamaModel.fromWeights(cfg, w, getBackend(name), 'f32');
      assert.ok(half.params.layers[0].wq instanceof HalfWeight && half.params.lmHead instanceof HalfWeight);
      assert.ok(wide.params.layers[0].wq instanceof Float32Array);
      const ids = Int32Array.of(1, 5, 77, 299, 0, 42);
      assertClose(half.forward(ids), wide.forward(ids), `${name} ${dtype} prefill`, 1e-4, 1e-4);
      const cache = half.newCache(1, 8);
      half.forward(ids.subarray(0, 5), { cache });
      assertClose(half.forward(ids.subarray(5), { cache }), wide.forward(ids, { lastOnly: true }), `${name} ${dtype} decode`, 1e-4, 1e-4);
    }
  }
});

test('a temperature so small that logits / T overflows float32 samples greedily instead of producing no token', async () => {
  const { Sampler, argmax } = await import('../src/models/sampler.js');
  const logits = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i * 1.7) * 3);
  const best = argmax(logits);
  for (const topP of [0.5, 0.9, 1]) {
    for (const temperature of [1e-40, 1e-45, Number.MIN_VALUE]) {
      const s = new Sampler({ temperature, topP, seed: 7 });
      for (let k = 0; k < 5; k++) assert.equal(s.sample(logits.slice()), best, `T=${temperature} top-p ${topP}`);
    }
  }
  // Ordinary temperatures still sample (not always the argmax).
  const s = new Sampler({ temperature: 5, topP: 1, seed: 3 });
  assert.ok(Array.from({ length: 40 }, () => s.sample(logits.slice())).some((t) => t !== best));
});
