/**
 * Tokenizer loading by file type.
 */
import path from 'node:path';
import { isDirectory, isFile } from '../io/fsutil.js';
import { loadHfTokenizer } from './hf.js';
import { loadLlama2cTokenizer } from './llama2c.js';
import type { Tokenizer } from './tokenizer.js';
import { IoError } from '../errors.js';

export type { Tokenizer, EncodeOptions } from './tokenizer.js';
export { Llama2cTokenizer, loadLlama2cTokenizer } from './llama2c.js';
export { HfTokenizer, loadHfTokenizer } from './hf.js';

/**
 * Load a tokenizer: a `.bin` file is llama2.c format, a `.json` file is HF `tokenizer.json`,
 * a directory is searched for `tokenizer.json`, then `tokenizer.bin`.
 * `vocabSize` (llama2.c only) is the model's vocab size, which that format does not record.
 *
 * @example
 * const tok = loadTokenizer('../shared/models/stories260K/tok512.bin');
 */
export function loadTokenizer(p: string, opts: { vocabSize?: number } = {}): Tokenizer {
  if (isDirectory(p)) {
    for (const name of ['tokenizer.json', 'tokenizer.bin']) {
      const f = path.join(p, name);
      if (isFile(f)) return loadTokenizer(f, opts);
    }
    throw new IoError(p, 'directory has no tokenizer.json or tokenizer.bin');
  }
  if (!isFile(p)) throw new IoError(p, 'tokenizer file not found');
  if (p.endsWith('.json')) return loadHfTokenizer(p);
  if (p.endsWith('.bin')) return loadLlama2cTokenizer(p, opts.vocabSize);
  throw new IoError(p, 'unknown tokenizer file type (expected tokenizer.json, a llama2.c .bin, or a directory)');
}
