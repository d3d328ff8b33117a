import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openSafetensors, writeSafetensors, toF32, type TensorData } from '../src/io/safetensors.js';
import { openSafetensorsIndex, writeShardedSafetensors } from '../src/io/sharded.js';
import { f32ToBf16, f32ToF16 } from '../src/tensor/dtype.js';
import { CheckpointError, FormatError, UnsupportedError } from '../src/errors.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'echoatt-st-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

/** Write a file with a hand-made header (and `dataBytes` zero bytes of data) to test validation. */
function rawFile(name: string, header: unknown, dataBytes: number, opts: { headerLen?: bigint; text?: string } = {}): string {
  const body = Buffer.from(opts.text ?? JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(opts.headerLen ?? BigInt(body.length));
  const file = path.join(tmp, name);
  fs.writeFileSync(file, Buffer.concat([len, body, Buffer.alloc(dataBytes)]));
  return file;
}

test('round trip F32 / F16 / BF16 with metadata, 8-byte aligned header', () => {
  const vals = Float32Array.from({ length: 12 }, (_, i) => (i - 5) * 0.37);
  const tensors: [string, TensorData][] = [
    ['a.f32', { dtype: 'f32', shape: [3, 4], data: vals }],
    ['b.f16', { dtype: 'f16', shape: [12], data: f32ToF16(vals) }],
    ['c.bf16', { dtype: 'bf16', shape: [2, 2, 3], data: f32ToBf16(vals) }],
    ['empty', { dtype: 'f32', shape: [0, 5], data: new Float32Array(0) }],
    ['scalar', { dtype: 'f32', shape: [], data: Float32Array.of(7) }],
  ];
  const file = path.join(tmp, 'rt.safetensors');
  writeSafetensors(file, tensors, { format: 'pt', note: 'hi' });
  const n = fs.readFileSync(file).readBigUInt64LE(0);
  assert.equal((8n + n) % 8n, 0n);
  assert.deepEqual(fs.readdirSync(tmp).filter((f) => f.includes('.tmp')), [], 'no temp file left behind');
  const st = openSafetensors(file);
  try {
    assert.deepEqual(st.metadata, { format: 'pt', note: 'hi' });
    assert.deepEqual([...st.tensors.keys()], tensors.map(([k]) => k));
    for (const [name, t] of tensors) {
      const r = st.read(name);
      assert.equal(r.dtype, t.dtype);
      assert.deepEqual(r.shape, t.shape);
      assert.deepEqual(r.data, t.data);
    }
    assert.equal(st.tensors.get('c.bf16')!.storedDtype, 'BF16');
    const f16 = toF32(st.read('b.f16'));
    for (let i = 0; i < 12; i++) assert.ok(Math.abs(f16[i] - vals[i]) < 2e-3);
    assert.throws(() => st.read('nope'), CheckpointError);
  } finally {
    st.close();
  }
});

test('integer dtypes convert to f32 exactly; unknown dtype is UnsupportedError naming tensor and dtype', () => {
  const data = Buffer.alloc(16);
  data.writeBigInt64LE(-3n, 0);
  data.writeBigInt64LE(42n, 8);
  const len = Buffer.alloc(8);
  const body = Buffer.from(JSON.stringify({ ids: { dtype: 'I64', shape: [2], data_offsets: [0, 16] } }));
  len.writeBigUInt64LE(BigInt(body.length));
  const file = path.join(tmp, 'i64.safetensors');
  fs.writeFileSync(file, Buffer.concat([len, body, data]));
  const st = openSafetensors(file);
  assert.deepEqual(st.read('ids'), { dtype: 'f32', shape: [2], data: Float32Array.of(-3, 42) });
  st.close();
  const bad = rawFile('f8.safetensors', { w: { dtype: 'F8_E4M3', shape: [4], data_offsets: [0, 4] } }, 4);
  assert.throws(() => openSafetensors(bad), (e: unknown) => e instanceof UnsupportedError && /'w'/.test(e.message) && /F8_E4M3/.test(e.message));
});

test('header validation errors are FormatErrors naming the problem', () => {
  const ok = { w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };
  const cases: [string, string, RegExp][] = [
    ['huge-len', rawFile('huge.safetensors', ok, 8, { headerLen: 1n << 40n }), /header length/],
    ['short', (() => { const f = path.join(tmp, 'short.safetensors'); fs.writeFileSync(f, Buffer.alloc(5)); return f; })(), /too short/],
    ['bad-json', rawFile('badjson.safetensors', null, 8, { text: '{"w": [' }), /not valid UTF-8 JSON/],
    ['not-object', rawFile('arr.safetensors', [1, 2], 0), /not a JSON object/],
    ['overlap', rawFile('overlap.safetensors', { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, 12), /'a'.*'b'.*overlap/],
    ['oob', rawFile('oob.safetensors', { w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, 8), /'w'.*past the file/],
    ['size', rawFile('size.safetensors', { w: { dtype: 'F16', shape: [3], data_offsets: [0, 8] } }, 8), /'w'.*needs 6/],
    ['shape', rawFile('shape.safetensors', { w: { dtype: 'F32', shape: [-1], data_offsets: [0, 8] } }, 8), /'w'.*shape/],
    ['meta', rawFile('meta.safetensors', { __metadata__: { a: 1 }, ...ok }, 8), /__metadata__\.a/],
  ];
  for (const [label, file, re] of cases) {
    assert.throws(() => openSafetensors(file), (e: unknown) => e instanceof FormatError && re.test(e.message) && e.message.includes(file), label);
  }
  // A real file cut short: the last tensor runs past the end.
  const full = path.join(tmp, 'full.safetensors');
  writeSafetensors(full, [['x', { dtype: 'f32', shape: [8], data: new Float32Array(8) }], ['y', { dtype: 'f32', shape: [8], data: new Float32Array(8) }]]);
  const cut = path.join(tmp, 'cut.safetensors');
  fs.writeFileSync(cut, fs.readFileSync(full).subarray(0, fs.statSync(full).size - 4));
  assert.throws(() => openSafetensors(cut), (e: unknown) => e instanceof FormatError && /'y'.*truncated/.test(e.message));
});

test('writer rejects inconsistent tensors and leaves no file', () => {
  const file = path.join(tmp, 'bad-write.safetensors');
  assert.throws(() => writeSafetensors(file, [['w', { dtype: 'f32', shape: [3], data: new Float32Array(2) }]]), /'w'/);
  assert.throws(() => writeSafetensors(file, [['w', { dtype: 'bf16', shape: [2], data: new Float32Array(2) }]]), /'w'/);
  assert.equal(fs.existsSync(file), false);
});

test('sharded index: combined view, and every problem listed in one CheckpointError', () => {
  const dir = path.join(tmp, 'sharded');
  fs.mkdirSync(dir);
  const t = (n: number, v: number): TensorData => ({ dtype: 'f32', shape: [n], data: new Float32Array(n).fill(v) });
  const shards = writeShardedSafetensors(dir, [['a', t(4, 1)], ['b', t(4, 2)], ['c', t(4, 3)]], { maxShardBytes: 20 });
  assert.equal(shards.length, 3);
  const index = path.join(dir, 'model.safetensors.index.json');
  const src = openSafetensorsIndex(index);
  assert.deepEqual([...src.tensors.keys()].sort(), ['a', 'b', 'c']);
  assert.deepEqual(src.read('c').data, new Float32Array(4).fill(3));
  src.close();

  const j = JSON.parse(fs.readFileSync(index, 'utf8')) as { weight_map: Record<string, string> };
  j.weight_map.d = shards[0]; // not in that shard
  j.weight_map.e = 'missing.safetensors';
  j.weight_map.f = '../escape.safetensors';
  fs.writeFileSync(index, JSON.stringify(j));
  assert.throws(() => openSafetensorsIndex(index), (e: unknown) => {
    assert.ok(e instanceof CheckpointError);
    assert.equal(e.problems.length, 3);
    assert.match(e.message, /'d'.*does not contain/);
    assert.match(e.message, /missing\.safetensors.*does not exist/);
    assert.match(e.message, /escape/);
    return true;
  });
});
