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
import { FormatError } from '../src/errors.js';
import { writeModelCheckpoint, loadCheckpoint } from '../src/models/checkpoint.js';

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
