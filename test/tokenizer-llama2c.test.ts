import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Llama2cTokenizer, loadLlama2cTokenizer } from '../src/tokenizer/llama2c.js';
import { loadHfTokenizer } from '../src/tokenizer/hf.js';
import { loadTokenizer } from '../src/tokenizer/index.js';
import { FormatError } from '../src/errors.js';

const shared = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '../shared');
const tokFile = path.join(shared, 'models/stories260K/tok512.bin');
const greedy = fs.readFileSync(path.join(shared, 'reference/stories260K-greedy-200.txt'), 'utf8');
const tok = loadLlama2cTokenizer(tokFile, 512);

/** run.c's encode transcribed literally (O(n²) merge scan), to check the heap-based merge against. */
function runcEncode(t: Llama2cTokenizer, text: string, bos: boolean, eos: boolean): number[] {
  const lookup = new Map<string, number>();
  for (let i = t.vocabSize - 1; i >= 0; i--) lookup.set(Buffer.from(t.piece(i)).toString('latin1'), i);
  const str = (id: number): string => Buffer.from(t.piece(id)).toString('latin1');
  const tokens: number[] = [];
  if (bos) tokens.push(1);
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length) tokens.push(lookup.get(' ')!);
  let buf: number[] = [];
  for (let c = 0; c < bytes.length; c++) {
    if ((bytes[c] & 0xc0) !== 0x80) buf = [];
    buf.push(bytes[c]);
    if (c + 1 < bytes.length && (bytes[c + 1] & 0xc0) === 0x80 && buf.length < 4) continue;
    const id = lookup.get(Buffer.from(buf).toString('latin1'));
    if (id !== undefined) tokens.push(id);
    else for (const b of buf) tokens.push(b + 3);
    buf = [];
  }
  for (;;) {
    let best = -1e10;
    let bestId = -1;
    let bestIdx = -1;
    for (let i = 0; i < tokens.length - 1; i++) {
      const id = lookup.get(str(tokens[i]) + str(tokens[i + 1]));
      if (id !== undefined && t.score(id) > best) {
        best = t.score(id);
        bestId = id;
        bestIdx = i;
      }
    }
    if (bestIdx === -1) break;
    tokens.splice(bestIdx, 2, bestId);
  }
  if (eos) tokens.push(2);
  return tokens;
}

test('tok512 loads; encode "Once upon a time" like run.c', () => {
  assert.equal(tok.vocabSize, 512);
  assert.equal(tok.maxTokenLength, 7);
  const ids = tok.encode('Once upon a time');
  assert.deepEqual(ids, runcEncode(tok, 'Once upon a time', true, false));
  assert.equal(ids[0], 1);
  assert.equal(tok.decode(ids), 'Once upon a time');
  assert.deepEqual(tok.encode('Once', { bos: false, eos: true }).at(-1), 2);
  assert.deepEqual(tok.encode(''), [1]);
  assert.deepEqual(tok.encode('', { bos: false }), []);
});

test('heap merge equals the literal run.c loop on varied text', () => {
  const texts = [greedy, 'héllo wörld — 日本語 🙂\tTab\nnew', '  double  spaces ', 'aaaaaaaaaaaaaaaaaaaa', 'The end.The end.'];
  let seed = 12345;
  const rnd = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  const alphabet = 'abcdefghijklmnopqrstuvwxyz  .,\'"!?\nLTSé';
  for (let k = 0; k < 40; k++) texts.push(Array.from({ length: 1 + Math.floor(rnd() * 60) }, () => alphabet[Math.floor(rnd() * alphabet.length)]).join(''));
  for (const s of texts) assert.deepEqual(tok.encode(s, { bos: true, eos: true }), runcEncode(tok, s, true, true), JSON.stringify(s));
});

test('greedy reference text: encode → decode and streaming decodePiece reproduce it byte for byte', () => {
  const ids = tok.encode(greedy);
  assert.equal(tok.decode(ids), greedy);
  const parts: Uint8Array[] = [];
  for (let i = 1; i < ids.length; i++) parts.push(tok.decodePiece(ids[i - 1], ids[i]));
  assert.equal(Buffer.concat(parts).toString('utf8'), greedy);
});

test('decodePiece follows run.c decode + safe_printf', () => {
  const id = (s: string): number => tok.encode(s, { bos: false }).at(-1)!;
  const once = tok.encode('Once', { bos: false })[0];
  assert.equal(Buffer.from(tok.piece(once)).toString(), ' Once');
  assert.equal(Buffer.from(tok.decodePiece(1, once)).toString(), 'Once'); // space stripped after BOS only
  assert.equal(Buffer.from(tok.decodePiece(5, once)).toString(), ' Once');
  assert.deepEqual(tok.decodePiece(5, 0x0a + 3), Uint8Array.of(0x0a)); // <0x0A> → newline (isspace)
  assert.deepEqual(tok.decodePiece(5, 0x41 + 3), Uint8Array.of(0x41));
  assert.deepEqual(tok.decodePiece(5, 0x07 + 3), new Uint8Array(0)); // BEL: unprintable, dropped
  assert.deepEqual(tok.decodePiece(5, 0xc3 + 3), new Uint8Array(0)); // lone UTF-8 lead byte: not isprint
  assert.deepEqual(tok.decodePiece(5, 0 + 3), new Uint8Array(0)); // <0x00>: empty C string
  assert.ok(id('x') > 2);
  // decode (not streaming) keeps byte-fallback bytes so non-ASCII round-trips.
  assert.equal(tok.decode(tok.encode('café ☕')), 'café ☕');
});

test('tokenizer file validation: truncated file names the token index', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'echoatt-tok-'));
  try {
    const raw = fs.readFileSync(tokFile);
    const cut = path.join(tmp, 'cut.bin');
    fs.writeFileSync(cut, raw.subarray(0, 3000));
    assert.throws(() => loadLlama2cTokenizer(cut), (e: unknown) => e instanceof FormatError && e.message.includes(cut) && /truncated at token \d+/.test(e.message));
    assert.throws(() => loadLlama2cTokenizer(tokFile, 600), /truncated at token 512/);
    const bad = Buffer.from(raw);
    bad.writeInt32LE(100, 4 + 4); // token 0 length 100 > max_token_length 7
    const badf = path.join(tmp, 'bad.bin');
    fs.writeFileSync(badf, bad);
    assert.throws(() => loadLlama2cTokenizer(badf), /token 0: length 100/);
    assert.ok(loadTokenizer(tokFile) instanceof Llama2cTokenizer);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('run.c-style encode on the Llama-2 32k vocab matches the HF tokenizer and llama2.c test ids', () => {
  // Llama-2 piece scores are -(rank); the byte/special pieces (ids < 259) never merge.
  const j = JSON.parse(fs.readFileSync(path.join(shared, 'tokenizers/llama2-32k/tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number> } };
  const pieces: Uint8Array[] = [];
  const scores = new Float32Array(32000);
  for (const [p, id] of Object.entries(j.model.vocab)) {
    pieces[id] = Buffer.from(p.replaceAll('\u2581', ' '), 'utf8');
    scores[id] = id < 259 ? 0 : -(id - 259);
  }
  const t = new Llama2cTokenizer(pieces, scores, 64);
  assert.deepEqual(t.encode('I believe the meaning of life is'), [1, 306, 4658, 278, 6593, 310, 2834, 338]);
  const hf = loadHfTokenizer(path.join(shared, 'tokenizers/llama2-32k/tokenizer.json'));
  for (const line of greedy.split('\n').concat(['Hello, world! 123 é 🙂'])) assert.deepEqual(t.encode(line), hf.encode(line, { bos: true }), line);
});
