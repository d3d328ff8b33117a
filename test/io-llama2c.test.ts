import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadLlama2c, permuteForHalfRope, unpermuteFromHalfRope } from '../src/io/llama2c.js';
import { expectedTensors } from '../src/models/tensor-spec.js';
import { llama2cConfig } from '../src/models/config.js';
import { FormatError, UnsupportedError } from '../src/errors.js';
import { writeModelCheckpoint, loadCheckpoint, loadHfCheckpoint } from '../src/models/checkpoint.js';

const shared = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '../shared');
const bin = path.join(shared, 'models/stories260K/stories260K.bin');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'echoatt-l2c-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

test('stories260K loads with HF names and shapes', () => {
  const { weights, header } = loadLlama2c(bin);
  const config = llama2cConfig(header);
  assert.deepEqual(header, { dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512, seqLen: 512 });
  assert.equal(config.ropeStyle, 'interleaved');
  assert.equal(config.tieWordEmbeddings, true);
  assert.equal(config.maxPositions, 512);
  assert.deepEqual([...weights.keys()].sort(), expectedTensors(config).map((t) => t.name).sort());
  assert.equal(weights.has('lm_head.weight'), false);
  assert.deepEqual(weights.get('model.embed_tokens.weight')!.shape, [512, 64]);
  assert.deepEqual(weights.get('model.layers.4.self_attn.k_proj.weight')!.shape, [32, 64]);
  assert.deepEqual(weights.get('model.layers.0.mlp.down_proj.weight')!.shape, [64, 172]);
  assert.deepEqual(weights.get('model.layers.0.mlp.gate_proj.weight')!.shape, [172, 64]);
  // Spot-check the file layout: embedding starts right after the 28-byte header, rms_att right after it.
  const raw = fs.readFileSync(bin);
  const emb = weights.get('model.embed_tokens.weight')!.data as Float32Array;
  assert.equal(emb[0], raw.readFloatLE(28));
  assert.equal(weights.get('model.layers.0.input_layernorm.weight')!.data[0], raw.readFloatLE(28 + 4 * 512 * 64));
  assert.equal(weights.get('model.layers.1.input_layernorm.weight')!.data[0], raw.readFloatLE(28 + 4 * (512 * 64 + 64)));
  const norm = weights.get('model.norm.weight')!.data;
  const freqBytes = 4 * 512 * 8; // freq_cis_real + imag: 2 × seq_len × head_size/2
  assert.equal(norm[63], raw.readFloatLE(raw.length - freqBytes - 4));
});

test('truncated, oversized and bad-header llama2.c files are FormatErrors with byte counts', () => {
  const raw = fs.readFileSync(bin);
  const cut = path.join(tmp, 'cut.bin');
  fs.writeFileSync(cut, raw.subarray(0, raw.length - 100));
  assert.throws(() => loadLlama2c(cut), (e: unknown) => e instanceof FormatError && e.message.includes(cut) && /1056540 bytes, file has 1056440 \(truncated\)/.test(e.message));
  const big = path.join(tmp, 'big.bin');
  fs.writeFileSync(big, Buffer.concat([raw, Buffer.alloc(8)]));
  assert.throws(() => loadLlama2c(big), /1056540 bytes, file has 1056548 \(trailing data\)/);
  const hdr = Buffer.from(raw);
  hdr.writeInt32LE(3, 16); // n_kv_heads 3 does not divide 8
  const badh = path.join(tmp, 'badh.bin');
  fs.writeFileSync(badh, hdr);
  assert.throws(() => loadLlama2c(badh), (e: unknown) => e instanceof FormatError && /nKvHeads = 3/.test(e.message));
  const v1 = Buffer.alloc(256);
  v1.writeInt32LE(0x616b3432, 0);
  v1.writeInt32LE(1, 4);
  const v1f = path.join(tmp, 'v1.bin');
  fs.writeFileSync(v1f, v1);
  assert.throws(() => loadLlama2c(v1f), UnsupportedError);
});

test('permuteForHalfRope matches the HF view/transpose permute and inverts', () => {
  const nHeads = 3;
  const headDim = 6;
  const dimIn = 4;
  const w = Float32Array.from({ length: nHeads * headDim * dimIn }, (_, i) => i);
  const p = permuteForHalfRope(w, nHeads, headDim, dimIn);
  // HF: w.view(nHeads, headDim/2, 2, dimIn).transpose(1, 2): new[h][a][b] = old[h][b][a]
  for (let h = 0; h < nHeads; h++) {
    for (let a = 0; a < 2; a++) {
      for (let b = 0; b < headDim / 2; b++) {
        const newRow = h * headDim + a * (headDim / 2) + b;
        const oldRow = h * headDim + b * 2 + a;
        assert.deepEqual(p.subarray(newRow * dimIn, (newRow + 1) * dimIn), w.subarray(oldRow * dimIn, (oldRow + 1) * dimIn));
      }
    }
  }
  assert.deepEqual(unpermuteFromHalfRope(p, nHeads, headDim, dimIn), w);
  const bits = Uint16Array.from({ length: 24 }, (_, i) => i * 7);
  const pb = permuteForHalfRope(bits, 2, 4, 3);
  assert.ok(pb instanceof Uint16Array);
  assert.deepEqual(unpermuteFromHalfRope(pb, 2, 4, 3), bits);
  assert.throws(() => permuteForHalfRope(w, 4, headDim, dimIn), RangeError);
});

test('writeModelCheckpoint: stories260K → HF dir with rotate-half q/k, loads back', () => {
  const ck = loadLlama2c(bin);
  const dir = path.join(tmp, 'hf');
  writeModelCheckpoint(dir, llama2cConfig(ck.header), ck.weights, path.join(shared, 'models/stories260K/tok512.bin'));
  assert.deepEqual(fs.readdirSync(dir).sort(), ['config.json', 'model.safetensors', 'tokenizer.bin']);
  const hf = loadHfCheckpoint(dir);
  assert.equal(hf.config.ropeStyle, 'half');
  assert.equal(hf.config.tieWordEmbeddings, true);
  assert.equal(hf.tokenizerPath, path.join(dir, 'tokenizer.bin'));
  const { ropeStyle: _a, torchDtype: _b, ...rest } = hf.config;
  const { ropeStyle: _c, torchDtype: _d, ...orig } = llama2cConfig(ck.header);
  assert.deepEqual(rest, orig);
  const q = hf.weights.get('model.layers.2.self_attn.q_proj.weight')!;
  assert.deepEqual(unpermuteFromHalfRope(q.data, 8, 8, 64), ck.weights.get('model.layers.2.self_attn.q_proj.weight')!.data);
  const k = hf.weights.get('model.layers.2.self_attn.k_proj.weight')!;
  assert.deepEqual(unpermuteFromHalfRope(k.data, 4, 8, 64), ck.weights.get('model.layers.2.self_attn.k_proj.weight')!.data);
  assert.deepEqual(hf.weights.get('model.layers.2.self_attn.v_proj.weight')!.data, ck.weights.get('model.layers.2.self_attn.v_proj.weight')!.data);
});

test('loadCheckpoint dispatches .bin to llama2.c and finds the sibling tokenizer', () => {
  const ck = loadCheckpoint(bin);
  assert.equal(ck.format, 'llama2c');
  assert.equal(ck.tokenizerPath, path.join(shared, 'models/stories260K/tok512.bin'));
  assert.equal(loadCheckpoint(path.join(shared, 'reference/hf-llama-tiny-gqa')).format, 'hf');
});
