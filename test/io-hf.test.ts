import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomFillSync } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { openSafetensors, writeSafetensors, type TensorData } from '../src/io/safetensors.js';
import { writeShardedSafetensors } from '../src/io/sharded.js';
import { configFromJson, configToHfJson, type LlamaConfig } from '../src/models/config.js';
import { expectedTensors } from '../src/models/tensor-spec.js';
import { CheckpointError, FormatError } from '../src/errors.js';
import { loadCheckpoint, loadHfCheckpoint } from '../src/models/checkpoint.js';

const shared = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '../shared');
const tiny = path.join(shared, 'reference/hf-llama-tiny-gqa');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'echoatt-hf-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

test('hf-llama-tiny-gqa loads: 4 layers, GQA 8/2, untied lm_head, F32', () => {
  const ck = loadHfCheckpoint(tiny);
  assert.equal(ck.format, 'hf');
  assert.equal(ck.config.numLayers, 4);
  assert.equal(ck.config.numHeads, 8);
  assert.equal(ck.config.numKvHeads, 2);
  assert.equal(ck.config.tieWordEmbeddings, false);
  assert.deepEqual(ck.weights.get('lm_head.weight')!.shape, [300, 64]);
  assert.deepEqual(ck.weights.get('model.layers.3.self_attn.v_proj.weight')!.shape, [16, 64]);
  assert.equal(ck.weights.size, expectedTensors(ck.config).length);
  for (const t of ck.weights.values()) assert.equal(t.dtype, 'f32');
  assert.deepEqual(ck.notes, []);
  const exp = openSafetensors(path.join(tiny, 'expected_logits.safetensors'));
  assert.deepEqual(exp.read('logits').shape, [16, 300]);
  exp.close();
});

/** A directory with the given config and tensors (single file). */
function makeCkpt(name: string, cfgJson: Record<string, unknown>, tensors: [string, TensorData][]): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfgJson));
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
  return dir;
}

function smallTensors(cfg: Readonly<LlamaConfig>): [string, TensorData][] {
  return expectedTensors(cfg).map(({ name, shape }) => [name, { dtype: 'f32', shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) }]);
}

test('missing, unexpected and wrongly-shaped tensors are all listed in one CheckpointError', () => {
  const cfgJson = JSON.parse(fs.readFileSync(path.join(tiny, 'config.json'), 'utf8')) as Record<string, unknown>;
  const cfg = configFromJson(cfgJson, 'config.json');
  const tensors = smallTensors(cfg).filter(([n]) => n !== 'model.layers.1.mlp.up_proj.weight');
  const i = tensors.findIndex(([n]) => n === 'model.layers.2.self_attn.k_proj.weight');
  tensors[i] = [tensors[i][0], { dtype: 'f32', shape: [64, 64], data: new Float32Array(64 * 64) }];
  tensors.push(['model.layers.0.extra.weight', { dtype: 'f32', shape: [1], data: new Float32Array(1) }]);
  const dir = makeCkpt('bad-set', cfgJson, tensors);
  assert.throws(() => loadHfCheckpoint(dir), (e: unknown) => {
    assert.ok(e instanceof CheckpointError);
    assert.equal(e.problems.length, 3);
    assert.match(e.message, /missing tensor 'model\.layers\.1\.mlp\.up_proj\.weight'/);
    assert.match(e.message, /'model\.layers\.2\.self_attn\.k_proj\.weight' has shape \[64, 64\], expected \[16, 64\]/);
    assert.match(e.message, /unexpected tensor 'model\.layers\.0\.extra\.weight'/);
    return true;
  });
  // strict: false tolerates only the unexpected one.
  assert.throws(() => loadHfCheckpoint(dir, { strict: false }), (e: unknown) => e instanceof CheckpointError && e.problems.length === 2);
});

test('tied config: a present lm_head.weight is ignored with a note; inv_freq buffers ignored', () => {
  const cfgJson = { ...(JSON.parse(fs.readFileSync(path.join(tiny, 'config.json'), 'utf8')) as Record<string, unknown>), tie_word_embeddings: true };
  const cfg = configFromJson(cfgJson, 'config.json');
  const tensors = smallTensors(cfg);
  tensors.push(['lm_head.weight', { dtype: 'f32', shape: [300, 64], data: new Float32Array(300 * 64) }]);
  tensors.push(['model.layers.0.self_attn.rotary_emb.inv_freq', { dtype: 'f32', shape: [4], data: new Float32Array(4) }]);
  const ck = loadHfCheckpoint(makeCkpt('tied', cfgJson, tensors));
  assert.equal(ck.weights.has('lm_head.weight'), false);
  assert.equal(ck.weights.has('model.layers.0.self_attn.rotary_emb.inv_freq'), false);
  assert.equal(ck.notes.length, 1);
  assert.match(ck.notes[0], /lm_head\.weight/);
});

test('bad safetensors header in a checkpoint dir → FormatError naming the file', () => {
  const dir = path.join(tmp, 'badheader');
  fs.mkdirSync(dir);
  fs.copyFileSync(path.join(tiny, 'config.json'), path.join(dir, 'config.json'));
  const f = path.join(dir, 'model.safetensors');
  const b = Buffer.alloc(64);
  b.writeBigUInt64LE(1000n);
  fs.writeFileSync(f, b);
  assert.throws(() => loadCheckpoint(dir), (e: unknown) => e instanceof FormatError && e.message.includes(f) && /header length 1000/.test(e.message));
});

test('TinyLlama-shaped (2 layers) sharded BF16 checkpoint loads', () => {
  const cfgJson: Record<string, unknown> = {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 2048, intermediate_size: 5632, num_hidden_layers: 2,
    num_attention_heads: 32, num_key_value_heads: 4, vocab_size: 32000, max_position_embeddings: 2048, rms_norm_eps: 1e-5,
    rope_theta: 10000, tie_word_embeddings: false, torch_dtype: 'bfloat16', bos_token_id: 1, eos_token_id: 2, hidden_act: 'silu',
  };
  const cfg = configFromJson(cfgJson, 'tinyllama/config.json');
  const expected = expectedTensors(cfg);
  // One random pool; each tensor is a distinct slice so a mix-up of offsets would show.
  const pool = new Uint16Array(32000 * 2048 + 4096);
  randomFillSync(pool);
  const tensors: [string, TensorData][] = expected.map(({ name, shape }, i) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const start = (i * 17) % 4096;
    return [name, { dtype: 'bf16', shape, data: pool.subarray(start, start + n) }];
  });
  const dir = path.join(tmp, 'tinyllama');
  fs.mkdirSync(dir);
  const shards = writeShardedSafetensors(dir, tensors, { maxShardBytes: 200 * 2 ** 20 });
  assert.ok(shards.length >= 3);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(configToHfJson(cfg)));
  const ck = loadHfCheckpoint(dir);
  assert.equal(ck.config.headDim, 64);
  assert.equal(ck.weights.size, expected.length);
  for (const [name, t] of tensors) {
    const got = ck.weights.get(name)!;
    assert.equal(got.dtype, 'bf16');
    assert.deepEqual(got.shape, t.shape);
    assert.equal(Buffer.compare(Buffer.from(got.data.buffer, got.data.byteOffset, got.data.byteLength), Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)), 0, name);
  }
});
