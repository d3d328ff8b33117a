/** GGUF export: a file llama.cpp can read (checked here with our own validating reader). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadModel } from '../src/models/load.js';
import { exportGguf, ggufTensorName, ggufTokenizerFromJson, ggufTokenizerOf } from '../src/export/gguf.js';
import { readGgufHeader } from '../src/io/gguf.js';
import { buildStudent } from '../src/sharing/student.js';
import { makePlan } from '../src/models/sharing-plan.js';
import { f16ToF32 } from '../src/tensor/dtype.js';
import { sharedDir } from './helpers.js';
import { EchoattError, FormatError } from '../src/errors.js';
import { writeModelCheckpoint, loadCheckpoint } from '../src/models/checkpoint.js';
import { configFromJson } from '../src/models/config.js';
import { LlamaModel } from '../src/models/llama.js';
import { repoRoot } from './helpers.js';
import type { GgufTokenizer } from '../src/export/gguf.js';

const STORIES = path.join(sharedDir, 'models/stories260K/stories260K.bin');

function readTensor(file: string, info: { offset: number; byteLength: number; type: number }): Float32Array {
  const buf = Buffer.alloc(info.byteLength);
  const fd = fs.openSync(file, 'r');
  fs.readSync(fd, buf, 0, buf.length, info.offset);
  fs.closeSync(fd);
  const bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.length).slice();
  return info.type === 0 ? new Float32Array(bytes.buffer) : f16ToF32(new Uint16Array(bytes.buffer));
}

test('stories260K exports to GGUF with llama metadata, tokenizer and interleaved q/k (from both source layouts)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'echoatt-gguf-'));
  try {
    const a = loadModel(STORIES);
    const f32 = path.join(dir, 'a.gguf');
    exportGguf(f32, a.model, ggufTokenizerOf(a.tokenizer), { dtype: 'f32' });
    const h = readGgufHeader(f32);
    assert.equal(h.version, 3);
    assert.equal(h.metadata.get('general.architecture'), 'llama');
    assert.equal(h.metadata.get('llama.block_count'), 5);
    assert.equal(h.metadata.get('llama.attention.head_count_kv'), 4);
    const tokens = h.metadata.get('tokenizer.ggml.tokens') as string[];
    assert.equal(tokens.length, 512);
    assert.equal(tokens[0], '<unk>');
    assert.ok(tokens.includes('\u2581the') || tokens.some((t) => t.startsWith('\u2581')), 'spaces are ▁');
    assert.equal(h.tensors.size, 2 + 5 * 9);
    assert.deepEqual(h.tensors.get('blk.0.attn_k.weight')?.shape, [32, 64]);
    // llama2.c weights are already interleaved: stored as is.
    const wq = readTensor(f32, h.tensors.get('blk.2.attn_q.weight')!);
    assert.deepEqual(wq, a.model.params.layers[2].wq);
    // The same model via the HF layout (rotate-half) exports identical q/k after un-permuting, in f16.
    const hf = path.join(dir, 'hf');
    const ck = loadCheckpoint(STORIES);
    writeModelCheckpoint(hf, ck.config, ck.weights, path.join(sharedDir, 'models/stories260K/tok512.bin'));
    const b = loadModel(hf);
    const f16 = path.join(dir, 'b.gguf');
    exportGguf(f16, b.model, ggufTokenizerOf(b.tokenizer), { dtype: 'f16' });
    const h2 = readGgufHeader(f16);
    const wq16 = readTensor(f16, h2.tensors.get('blk.2.attn_q.weight')!);
    for (let i = 0; i < wq.length; i++) assert.ok(Math.abs(wq16[i] - wq[i]) <= 1e-3 * Math.max(1, Math.abs(wq[i])), `q[${i}]`);
    assert.equal(h2.tensors.get('blk.2.attn_q.weight')?.type, 1);
    assert.equal(h2.tensors.get('blk.2.attn_norm.weight')?.type, 0, 'norms stay f32');
    assert.ok(fs.statSync(f16).size < fs.statSync(f32).size * 0.6);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('shared students are refused with a clear reason; names map; bad files are typed errors', () => {
  const a = loadModel(STORIES);
  const student = buildStudent(a.model, makePlan('manual', [{ anchor: 1, shared: [2] }]));
  assert.throws(() => exportGguf('/tmp/never.gguf', student, ggufTokenizerOf(a.tokenizer)), /cannot run in llama\.cpp/);
  assert.equal(ggufTensorName('model.layers.11.mlp.down_proj.weight'), 'blk.11.ffn_down.weight');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'echoatt-gguf-'));
  try {
    const bad = path.join(dir, 'bad.gguf');
    fs.writeFileSync(bad, Buffer.from('GGUF\x03\x00\x00\x00'));
    assert.throws(() => readGgufHeader(bad), (e: unknown) => e instanceof FormatError && /bad\.gguf: truncated/.test(e.message));
    fs.writeFileSync(bad, Buffer.from('NOPE1234'));
    assert.throws(() => readGgufHeader(bad), /not a GGUF file/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('Llama-2 tokenizer.json becomes a llama vocab with merge-rank scores and byte tokens', () => {
  const g = ggufTokenizerFromJson(path.join(sharedDir, 'tokenizers/llama2-32k/tokenizer.json'));
  assert.equal(g.model, 'llama');
  assert.equal(g.tokens.length, 32000);
  assert.equal(g.tokens[1], '<s>');
  assert.equal(g.types[1], 3);
  assert.equal(g.types[3 + 0x41], 6, '<0x41> is a byte token');
  assert.equal(g.bos, 1);
  assert.equal(g.eos, 2);
  assert.equal(g.scores[g.tokens.indexOf('\u2581t')], -1, 'the first merge ranks highest');
});

const FAMILIES = path.join(repoRoot, 'test', 'fixtures', 'families');

/** A fixture teacher (test/fixtures/families, vocab 96) with config.json overridden by `over`. */
function familyModel(fixture: string, over: Record<string, unknown> = {}): LlamaModel {
  const dir = path.join(FAMILIES, fixture);
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  return LlamaModel.fromWeights(configFromJson({ ...json, ...over }, `${fixture} config.json`), loadCheckpoint(dir).weights);
}

/** A 96-token SentencePiece-style vocabulary (the fixtures' size). */
function stubTokenizer(n = 96): GgufTokenizer {
  const tokens = Array.from({ length: n }, (_, i) => (i === 0 ? '<unk>' : i === 1 ? '<s>' : i === 2 ? '</s>' : `\u2581t${i}`));
  const types = Int32Array.from(tokens, (_, i) => (i === 0 ? 2 : i < 3 ? 3 : 1));
  return { model: 'llama', tokens, scores: new Float32Array(n), types, bos: 1, eos: 2, unk: 0 };
}

/** Gemma 3 in the one layout llama.cpp runs: sliding_window_pattern 6, query_pre_attn_scalar = head_dim, local base 10000. */
const GEMMA_OK = { sliding_window_pattern: 6, query_pre_attn_scalar: 16, rope_local_base_freq: 10000, final_logit_softcapping: null };

function withDir(fn: (dir: string) => void): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'echoatt-gguf-'));
  try {
    fn(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('Qwen3 exports as llama.cpp qwen3: its keys with head_dim as key/value length, q/k norms, q/k as stored (NEOX RoPE)', () => withDir((dir) => {
  const model = familyModel('qwen3');
  const file = path.join(dir, 'q.gguf');
  exportGguf(file, model, stubTokenizer(), { dtype: 'f32' });
  const h = readGgufHeader(file);
  const md = h.metadata;
  assert.equal(md.get('general.architecture'), 'qwen3');
  assert.ok(![...md.keys()].some((k) => k.startsWith('llama.')), 'no llama.* keys');
  const want: Record<string, number> = {
    'qwen3.block_count': 3, 'qwen3.embedding_length': 32, 'qwen3.feed_forward_length': 64, 'qwen3.context_length': 128,
    'qwen3.attention.head_count': 4, 'qwen3.attention.head_count_kv': 2, 'qwen3.attention.key_length': 16, 'qwen3.attention.value_length': 16,
    'qwen3.rope.dimension_count': 16, 'qwen3.rope.freq_base': 1e6, 'qwen3.vocab_size': 96,
  };
  for (const [k, v] of Object.entries(want)) assert.equal(md.get(k), v, k);
  assert.ok(Math.abs((md.get('qwen3.attention.layer_norm_rms_epsilon') as number) - 1e-6) < 1e-12);
  assert.equal(md.has('qwen3.attention.sliding_window'), false);
  const layer = ['attn_norm', 'attn_q', 'attn_k', 'attn_v', 'attn_output', 'attn_q_norm', 'attn_k_norm', 'ffn_norm', 'ffn_gate', 'ffn_up', 'ffn_down'];
  const names = ['token_embd.weight', 'output_norm.weight', ...[0, 1, 2].flatMap((l) => layer.map((n) => `blk.${l}.${n}.weight`))];
  assert.deepEqual([...h.tensors.keys()].sort(), names.sort(), 'tied: no output.weight');
  assert.deepEqual(h.tensors.get('blk.1.attn_q_norm.weight')?.shape, [16]);
  const p = model.params.layers[1];
  assert.deepEqual(readTensor(file, h.tensors.get('blk.1.attn_q.weight')!), p.wq, 'q not permuted');
  assert.deepEqual(readTensor(file, h.tensors.get('blk.1.attn_k.weight')!), p.wk, 'k not permuted');
  assert.deepEqual(readTensor(file, h.tensors.get('blk.1.attn_k_norm.weight')!), p.kNorm, 'Qwen norms as stored');
  assert.deepEqual(readTensor(file, h.tensors.get('blk.1.ffn_norm.weight')!), p.postNorm);
}));

test('Gemma 3 exports as llama.cpp gemma3: sliding window, rope base, sandwich norm names, every norm shifted by +1, q/k as stored', () => withDir((dir) => {
  const model = familyModel('gemma3-pattern', GEMMA_OK);
  const file = path.join(dir, 'g.gguf');
  exportGguf(file, model, stubTokenizer(), { dtype: 'f16' });
  const h = readGgufHeader(file);
  const md = h.metadata;
  assert.equal(md.get('general.architecture'), 'gemma3');
  const want: Record<string, number> = {
    'gemma3.block_count': 6, 'gemma3.embedding_length': 32, 'gemma3.attention.head_count': 4, 'gemma3.attention.head_count_kv': 2,
    'gemma3.attention.key_length': 16, 'gemma3.attention.value_length': 16, 'gemma3.attention.sliding_window': 5, 'gemma3.rope.freq_base': 1e6,
  };
  for (const [k, v] of Object.entries(want)) assert.equal(md.get(k), v, k);
  assert.ok(![...md.keys()].some((k) => /softcap|scaling|freq_base_swa/.test(k)), 'nothing llama.cpp would not read as meant');
  const layer = ['attn_norm', 'attn_q', 'attn_k', 'attn_v', 'attn_output', 'attn_q_norm', 'attn_k_norm', 'post_attention_norm', 'ffn_norm', 'post_ffw_norm', 'ffn_gate', 'ffn_up', 'ffn_down'];
  const names = ['token_embd.weight', 'output_norm.weight', ...[0, 1, 2, 3, 4, 5].flatMap((l) => layer.map((n) => `blk.${l}.${n}.weight`))];
  assert.deepEqual([...h.tensors.keys()].sort(), names.sort());
  const p = model.params.layers[2];
  const plusOne = (w: Float32Array | undefined) => Float32Array.from(w!, (x) => Math.fround(x + 1));
  const norms: [string, Float32Array | undefined][] = [
    ['blk.2.attn_norm.weight', p.inputNorm], ['blk.2.attn_q_norm.weight', p.qNorm], ['blk.2.attn_k_norm.weight', p.kNorm],
    ['blk.2.post_attention_norm.weight', p.postNorm], ['blk.2.ffn_norm.weight', p.preFfnNorm], ['blk.2.post_ffw_norm.weight', p.postFfnNorm],
    ['output_norm.weight', model.params.norm],
  ];
  for (const [name, w] of norms) {
    assert.equal(h.tensors.get(name)?.type, 0, `${name} stays f32`);
    assert.deepEqual(readTensor(file, h.tensors.get(name)!), plusOne(w), `${name} = 1 + w`);
  }
  const wq = readTensor(file, h.tensors.get('blk.2.attn_q.weight')!);
  const ref = p.wq as Float32Array;
  for (let i = 0; i < ref.length; i++) assert.ok(Math.abs(wq[i] - ref[i]) <= 1e-3 * Math.max(1, Math.abs(ref[i])), `q[${i}] not permuted`);
}));

test('Gemma 3 configs llama.cpp would run differently are refused, naming the field', () => {
  const tok = stubTokenizer();
  const refused = (over: Record<string, unknown>, field: RegExp) => {
    const model = familyModel('gemma3-pattern', { ...GEMMA_OK, ...over });
    assert.throws(() => exportGguf(path.join(os.tmpdir(), 'never.gguf'), model, tok),
      (e: unknown) => e instanceof EchoattError && e.code === 'E_UNSUPPORTED' && field.test(e.message) && /llama\.cpp's 'gemma3'/.test(e.message), String(field));
  };
  refused({ sliding_window_pattern: 3 }, /layer_types \/ sliding_window_pattern = "sliding,sliding,full,.*i % 6 < 5/);
  refused({ layer_types: Array(6).fill('sliding_attention') }, /sliding_window_pattern/);
  refused({ query_pre_attn_scalar: 24 }, /query_pre_attn_scalar = 24: .*1\/√head_dim \(16\)/);
  refused({ rope_local_base_freq: 20000 }, /rope_local_base_freq = 20000: .*RoPE base 10000/);
  refused({ final_logit_softcapping: 30 }, /final_logit_softcapping = 30: .*no final logit soft-cap/);
  // The fixture written by transformers 5 (layer_types, soft-cap 30, query_pre_attn_scalar 24): refused, not approximated.
  const v5 = familyModel('gemma3-layertypes');
  assert.throws(() => exportGguf(path.join(os.tmpdir(), 'never.gguf'), v5, tok), /final_logit_softcapping = 30/);
});
