import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { HfTokenizer, loadHfTokenizer } from '../src/tokenizer/hf.js';
import { loadTokenizer } from '../src/tokenizer/index.js';
import type { Tokenizer } from '../src/tokenizer/tokenizer.js';
import { FormatError, IoError } from '../src/errors.js';

const shared = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '../shared');
const llamaDir = path.join(shared, 'tokenizers/llama2-32k');
const smolDir = path.join(shared, 'tokenizers/smollm2-49k');
const texts = [
  fs.readFileSync(path.join(shared, 'reference/stories260K-greedy-200.txt'), 'utf8'),
  '  Hello  world\n\nnew line é 日本 🙂 123',
  'Tabs\tand <b>markup</b> {"json": [1, 2]}',
];

function streamed(t: Tokenizer, ids: number[]): string {
  const parts: Uint8Array[] = [];
  for (let i = 0; i < ids.length; i++) parts.push(t.decodePiece(i > 0 ? ids[i - 1] : -1, ids[i]));
  return Buffer.concat(parts).toString('utf8');
}

test('llama2-32k tokenizer.json: BOS/EOS from tokenizer_config, round trips, streaming pieces', () => {
  const t = loadTokenizer(llamaDir);
  assert.ok(t instanceof HfTokenizer);
  assert.equal(t.vocabSize, 32000);
  assert.equal(t.bosId, 1);
  assert.deepEqual(t.eosIds, [2]);
  assert.deepEqual(t.encode('Hello world'), [1, 15043, 3186]);
  assert.deepEqual(t.encode('Hello world', { bos: false, eos: true }), [15043, 3186, 2]);
  for (const s of texts) {
    const ids = t.encode(s);
    assert.equal(t.decode(ids), s);
    assert.equal(streamed(t, ids), s); // the dummy-prefix space after BOS is not printed, as run.c
  }
  assert.deepEqual(t.decodePiece(100, 13), Uint8Array.of(0x0a)); // <0x0A>
});

test('smollm2-49k tokenizer.json: byte-level BPE, ids from config.json, no BOS by default', () => {
  const t = loadTokenizer(path.join(smolDir, 'tokenizer.json'));
  assert.equal(t.vocabSize, 49152);
  assert.equal(t.bosId, 1);
  assert.deepEqual(t.eosIds, [2]);
  assert.notEqual(t.encode('Hello')[0], 1);
  assert.equal(t.encode('Hello', { bos: true })[0], 1);
  for (const s of texts) {
    const ids = t.encode(s);
    assert.equal(t.decode(ids), s);
    assert.equal(streamed(t, ids), s);
  }
  // A multi-byte character split across tokens only becomes valid once the pieces are joined.
  const ids = t.encode('🙂');
  assert.equal(Buffer.concat(ids.map((id, i) => t.decodePiece(i ? ids[i - 1] : -1, id))).toString(), '🙂');
  assert.deepEqual(t.decodePiece(5, 0), new Uint8Array(0)); // <|endoftext|> is special
});

test('malformed tokenizer.json → FormatError naming the file', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'echoatt-hftok-'));
  try {
    const bad = path.join(tmp, 'tokenizer.json');
    fs.writeFileSync(bad, '{"model": ');
    assert.throws(() => loadHfTokenizer(bad), (e: unknown) => e instanceof FormatError && e.message.includes(bad) && /invalid JSON/.test(e.message));
    fs.writeFileSync(bad, JSON.stringify({ version: '1.0' }));
    assert.throws(() => loadHfTokenizer(bad), (e: unknown) => e instanceof FormatError && /model/.test(e.message));
    fs.writeFileSync(bad, JSON.stringify({ model: { type: 'BPE' } }));
    assert.throws(() => loadHfTokenizer(bad), (e: unknown) => e instanceof FormatError && e.message.includes(bad));
    assert.throws(() => loadTokenizer(path.join(tmp, 'nope')), IoError);
    fs.rmSync(bad);
    assert.throws(() => loadTokenizer(tmp), IoError);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
