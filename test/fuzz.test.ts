/**
 * Fuzzing every file parser with generated malformed inputs: each case must end in success or a typed
 * EchoattError (never a TypeError/RangeError/crash), within a bounded time. Seeds are small valid files; mutations
 * are byte flips, truncations, insertions, numeric-field rewrites and structural JSON edits. Deterministic.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EchoattError } from '../src/errors.js';
import { openSafetensors, writeSafetensors } from '../src/io/safetensors.js';
import { loadLlama2c } from '../src/io/llama2c.js';
import { configFromJson } from '../src/models/config.js';
import { loadLlama2cTokenizer } from '../src/tokenizer/llama2c.js';
import { loadHfTokenizer } from '../src/tokenizer/hf.js';
import { parsePlan, validatePlan } from '../src/models/sharing-plan.js';
import { readGgufHeader } from '../src/io/gguf.js';
import { readJsonFile } from '../src/io/fsutil.js';
import { exportGguf, ggufTokenizerOf } from '../src/export/gguf.js';
import { loadModel } from '../src/models/load.js';
import { sharedDir } from './helpers.js';

const PER_CASE_MS = 2000;

class Rand {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 1;
  }
  u32(): number {
    this.s ^= this.s << 13;
    this.s ^= this.s >>> 17;
    this.s ^= this.s << 5;
    return this.s >>> 0;
  }
  int(n: number): number {
    return this.u32() % Math.max(1, n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
}

const INTERESTING = [0, 1, -1, 2, 7, 0x7f, 0x80, 0xff, 0xffff, 0x7fffffff, -0x80000000, 1e9, 4096];

/** A byte-level mutation of `seed`. */
function mutateBytes(seed: Uint8Array, r: Rand, headerBytes: number): Uint8Array {
  const b = Buffer.from(seed);
  const op = r.int(6);
  const at = (lim: number) => r.int(Math.min(lim, b.length));
  switch (op) {
    case 0: { // truncate
      return b.subarray(0, r.int(b.length));
    }
    case 1: { // flip bits, mostly in the header
      const n = 1 + r.int(4);
      for (let i = 0; i < n; i++) b[at(r.int(2) ? headerBytes : b.length)] ^= 1 << r.int(8);
      return b;
    }
    case 2: { // overwrite an aligned int32 in the header with an interesting value
      const off = at(headerBytes) & ~3;
      if (off + 4 <= b.length) b.writeInt32LE(r.pick(INTERESTING) | 0, off);
      return b;
    }
    case 3: { // insert junk
      const off = at(b.length);
      const junk = Buffer.alloc(1 + r.int(16), r.int(256));
      return Buffer.concat([b.subarray(0, off), junk, b.subarray(off)]);
    }
    case 4: { // delete a span
      const off = at(b.length);
      return Buffer.concat([b.subarray(0, off), b.subarray(off + 1 + r.int(32))]);
    }
    default: { // overwrite a 64-bit little-endian number in the header
      const off = at(headerBytes) & ~7;
      if (off + 8 <= b.length) b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(r.pick(INTERESTING))), off);
      return b;
    }
  }
}

/** A structural mutation of a JSON value: retype, delete or replace a random field somewhere inside. */
function mutateJson(v: unknown, r: Rand, depth = 0): unknown {
  const junk = [null, true, -1, 0, 1.5, 1e308, 'x', '', [], {}, [1, 'a'], { a: 1 }, 2 ** 53, NaN];
  if (depth > 4 || v === null || typeof v !== 'object') return r.int(3) === 0 ? v : r.pick(junk);
  if (Array.isArray(v)) {
    const out = [...v];
    if (out.length === 0 || r.int(4) === 0) out.push(r.pick(junk));
    else {
      const i = r.int(out.length);
      if (r.int(3) === 0) out.splice(i, 1);
      else out[i] = mutateJson(out[i], r, depth + 1);
    }
    return out;
  }
  const o = { ...(v as Record<string, unknown>) };
  const keys = Object.keys(o);
  if (keys.length === 0 || r.int(6) === 0) o[`k${r.int(5)}`] = r.pick(junk);
  else {
    const k = r.pick(keys);
    const op = r.int(4);
    if (op === 0) delete o[k];
    else if (op === 1) o[k] = r.pick(junk);
    else o[k] = mutateJson(o[k], r, depth + 1);
  }
  return o;
}

interface Tally {
  cases: number;
  ok: number;
  typed: number;
}

function run(label: string, n: number, seed: number, one: (r: Rand, i: number) => void): Tally {
  const r = new Rand(seed);
  const start = performance.now();
  const t: Tally = { cases: 0, ok: 0, typed: 0 };
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    try {
      one(r, i);
      t.ok++;
    } catch (e) {
      if (!(e instanceof EchoattError)) {
        assert.fail(`${label} case ${i}: untyped ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
      }
      assert.ok(e.message.length > 0);
      t.typed++;
    }
    const ms = performance.now() - t0;
    assert.ok(ms < PER_CASE_MS, `${label} case ${i} took ${ms.toFixed(0)} ms`);
    t.cases++;
  }
  process.stdout.write(`# fuzz ${label}: ${((performance.now() - start) / 1000).toFixed(1)} s\n`);
  return t;
}

const totals = new Map<string, Tally>();

test('fuzz: every parser gives a typed error or a result on malformed input', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'echoatt-fuzz-'));
  try {
    // Each parser family gets its own folder: loaders read sidecar files (config.json beside tokenizer.json).
    const file = (name: string, data: Uint8Array | string) => {
      const sub = path.join(dir, name.replace(/[^a-z0-9]/gi, '_'));
      fs.mkdirSync(sub, { recursive: true });
      const p = path.join(sub, name);
      fs.writeFileSync(p, data);
      return p;
    };

    // safetensors: a small valid file with all three dtypes.
    const st = path.join(dir, 'seed.safetensors');
    writeSafetensors(st, [
      ['a', { dtype: 'f32', shape: [2, 3], data: Float32Array.of(1, 2, 3, 4, 5, 6) }],
      ['b', { dtype: 'f16', shape: [4], data: Uint16Array.of(1, 2, 3, 4) }],
      ['c', { dtype: 'bf16', shape: [2, 2], data: Uint16Array.of(5, 6, 7, 8) }],
    ]);
    const stSeed = fs.readFileSync(st);
    totals.set('safetensors header', run('safetensors', 2500, 1, (r) => {
      const p = file('m.safetensors', mutateBytes(stSeed, r, Math.min(stSeed.length, 8 + stSeed.readUInt32LE(0))));
      const src = openSafetensors(p);
      try {
        for (const name of src.tensors.keys()) src.read(name);
      } finally {
        src.close();
      }
    }));

    // llama2.c checkpoint: a tiny valid file (dim 8, hidden 12, 2 layers, 2/1 heads, vocab 10, seq 4).
    const hdr = Int32Array.of(8, 12, 2, 2, 1, 10, 4);
    const floats = 10 * 8 + 2 * 8 + 2 * 8 * 8 + 2 * 8 * 4 * 2 + 2 * 8 * 8 + 2 * 8 + 3 * 2 * 12 * 8 + 8 + 2 * (4 * 4) / 2;
    const l2cSeed = Buffer.concat([Buffer.from(hdr.buffer), Buffer.alloc(floats * 4, 0x3c)]);
    loadLlama2c(file('seed.bin', l2cSeed)); // the seed itself is valid
    totals.set('llama2.c header', run('llama2c', 2000, 2, (r) => {
      loadLlama2c(file('m.bin', mutateBytes(l2cSeed, r, 28)));
    }));

    // llama2.c tokenizer: the real tok512.bin.
    const tokSeed = fs.readFileSync(path.join(sharedDir, 'models/stories260K/tok512.bin'));
    totals.set('llama2.c tokenizer', run('tok512', 1500, 3, (r) => {
      const tok = loadLlama2cTokenizer(file('m.tok.bin', mutateBytes(tokSeed, r, 64)), 512);
      tok.decode(tok.encode('Once upon a time'));
    }));

    // config.json: the real SmolLM2 config and the tiny GQA reference config, mutated structurally and as text.
    const cfgSeeds = ['tokenizers/smollm2-49k/config.json', 'reference/hf-llama-tiny-gqa/config.json'].map((p) =>
      JSON.parse(fs.readFileSync(path.join(sharedDir, p), 'utf8')) as unknown,
    );
    totals.set('config.json', run('config', 2000, 4, (r, i) => {
      if (i % 5 === 0) {
        const p = file('config.json', mutateBytes(Buffer.from(JSON.stringify(cfgSeeds[i % 2])), r, 200));
        configFromJson(readJsonFile(p), p);
      } else {
        let v = cfgSeeds[i % 2];
        for (let k = 0, n = 1 + r.int(3); k < n; k++) v = mutateJson(v, r);
        configFromJson(v, 'config.json');
      }
    }));

    // tokenizer.json: a tiny byte-fallback BPE, mutated structurally and as text.
    const tj = {
      version: '1.0',
      added_tokens: [{ id: 0, content: '<unk>', special: true, single_word: false, lstrip: false, rstrip: false, normalized: false }],
      normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '\u2581' }, { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' }] },
      pre_tokenizer: null,
      post_processor: null,
      decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '\u2581' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }] },
      model: { type: 'BPE', dropout: null, unk_token: '<unk>', byte_fallback: true, fuse_unk: true, vocab: { '<unk>': 0, a: 1, b: 2, '\u2581': 3, ab: 4, '\u2581a': 5 }, merges: ['a b', '\u2581 a'] },
    };
    loadHfTokenizer(file('tokenizer.json', JSON.stringify(tj)));
    totals.set('tokenizer.json', run('tokenizer.json', 1500, 5, (r, i) => {
      const text = i % 4 === 0 ? mutateBytes(Buffer.from(JSON.stringify(tj)), r, 400) : JSON.stringify(mutateJson(mutateJson(tj, r), r));
      const tok = loadHfTokenizer(file('tokenizer.json', text));
      tok.decode(tok.encode('ab a'));
    }));

    // Plan JSON.
    const planSeed = { format: 'echoatt-plan', version: 1, strategy: 'echoatt', groups: [{ anchor: 1, shared: [2, 3] }, { anchor: 4, shared: [5] }] };
    totals.set('plan JSON', run('plan', 1500, 6, (r) => {
      let v: unknown = planSeed;
      for (let k = 0, n = 1 + r.int(3); k < n; k++) v = mutateJson(v, r);
      validatePlan(parsePlan(v, 'plan.json'), 6, 'plan.json');
    }));

    // GGUF header: stories260K exported as F16 GGUF.
    const s = loadModel(path.join(sharedDir, 'models/stories260K/stories260K.bin'));
    const gg = path.join(dir, 'seed.gguf');
    exportGguf(gg, s.model, ggufTokenizerOf(s.tokenizer), { dtype: 'f16' });
    const ggSeed = fs.readFileSync(gg);
    totals.set('GGUF header', run('gguf', 1500, 7, (r) => {
      readGgufHeader(file('m.gguf', mutateBytes(ggSeed, r, 24 + 200)));
    }));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  let all = 0;
  for (const [name, t] of totals) {
    all += t.cases;
    process.stdout.write(`# fuzz ${name}: ${t.cases} cases, ${t.typed} typed errors, ${t.ok} accepted\n`);
  }
  process.stdout.write(`# fuzz total: ${all} cases\n`);
  assert.ok(all >= 10000);
});
