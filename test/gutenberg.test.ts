/**
 * gutenberg16 (the real 16-layer teacher): its books are one paragraph per line, and encoding them line by line (as
 * the model was trained) is what its held-out loss is measured on; windows are spread over the whole text.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { loadModel } from '../src/models/load.js';
import { encodeLines, newlineToken } from '../src/tokenizer/lines.js';
import { heldOutPerplexity, heldOutWindows } from '../src/eval/heldout.js';
import { sharedDir } from './helpers.js';

const DIR = path.join(sharedDir, 'models/gutenberg16');

test('line-by-line encoding: each paragraph encoded on its own, joined by the newline token; held-out loss is lower than with joined text', async () => {
  const { model, tokenizer } = loadModel(path.join(DIR, 'model.bin'));
  const nl = newlineToken(tokenizer)!;
  assert.equal(tokenizer.decode([nl]), '\n');
  assert.deepEqual(encodeLines(tokenizer, 'a\n\nb'), [...tokenizer.encode('a', { bos: false }), nl, ...tokenizer.encode('b', { bos: false })]);
  const lines = await heldOutWindows(tokenizer, path.join(DIR, 'heldout.txt'), { windows: 4, seqLen: 128, encoding: 'lines' });
  const joined = await heldOutWindows(tokenizer, path.join(DIR, 'heldout.txt'), { windows: 4, seqLen: 128 });
  assert.equal(lines.sequences.length, 4);
  assert.ok(lines.sequences.every((s) => s.length === 128 && s[0] === tokenizer.bosId));
  const [a, b] = [heldOutPerplexity(model, lines).loss, heldOutPerplexity(model, joined).loss];
  assert.ok(a < b - 0.05, `line by line ${a.toFixed(3)} vs joined ${b.toFixed(3)} nats/token`);
});
