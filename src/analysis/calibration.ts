/**
 * Calibration data for the analysis: read text from a file, a folder of `.txt` files, one field of a `.jsonl` file or
 * one column of a `.parquet` file (via `hyparquet`), tokenise it and cut it into `N` sequences of `T` tokens.
 *
 * Every sequence starts with the tokenizer's BOS token (when it has one) followed by `T − 1` tokens taken in order from
 * the concatenated documents, so the result is a pure function of (data, tokenizer, N, T): files of a folder are read
 * in sorted name order, rows in file order, and nothing is sampled at random. Text is read lazily, document by document
 * and chunk by chunk, and reading stops as soon as enough tokens are there, so a large corpus costs only what is used.
 *
 * Default data: the Project Gutenberg books in `../shared/data/corpus/gutenberg` (sorted by name), with each book's
 * licence header and footer stripped (only the text between the `*** START OF` and `*** END OF` lines is kept) and
 * its hard line wraps joined (paragraphs stay separated by a blank line).
 *
 * @example
 * ```ts
 * const source = resolveCorpusSource('data/train.jsonl', { field: 'text' });
 * const { sequences } = await calibrationSequences(tokenizer, source, { seqs: 16, seqLen: 256 });
 * ```
 */
import path from 'node:path';
import { OptionError } from '../errors.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { chunks, describeSource, readDocuments, type CorpusSource } from '../io/corpus.js';

export interface CalibrationOptions {
  /** Number of sequences N. */
  seqs: number;
  /** Tokens per sequence T, BOS included. */
  seqLen: number;
}

export interface CalibrationData {
  /** N sequences, each `Int32Array(T)` starting with BOS. */
  sequences: Int32Array[];
  /** Human-readable description of the source (kind and path, field). */
  description: string;
  source: CorpusSource;
  /** Documents (files, rows, books) actually read. */
  documentsRead: number;
  /** Set when the data held fewer tokens than N × T: the number of sequences that were asked for. */
  requestedSeqs?: number;
}

/** The default calibration corpus: `../shared/data/corpus/gutenberg`. */
export function defaultCalibrationPath(sharedDir: string): string {
  return path.join(sharedDir, 'data/corpus/gutenberg');
}

/**
 * Tokenise the source and cut it into `seqs` sequences of `seqLen` tokens (BOS + `seqLen − 1` text tokens).
 * Fewer sequences are returned (with `requestedSeqs` set) when the data runs out; none at all is an error.
 */
export async function calibrationSequences(tokenizer: Tokenizer, source: CorpusSource, opts: CalibrationOptions): Promise<CalibrationData> {
  const { seqs, seqLen } = opts;
  if (!(Number.isInteger(seqs) && seqs >= 1)) throw new OptionError('--seqs', `expected an integer >= 1, got ${seqs}`);
  if (!(Number.isInteger(seqLen) && seqLen >= 2)) throw new OptionError('--seq-len', `expected an integer >= 2, got ${seqLen}`);
  const bos = tokenizer.bosId;
  const body = bos === null ? seqLen : seqLen - 1;
  const need = seqs * body;
  const stream: number[] = [];
  let documentsRead = 0;
  outer: for await (const doc of readDocuments(source)) {
    documentsRead++;
    for (const piece of chunks(doc)) {
      if (piece.trim() === '') continue;
      for (const id of tokenizer.encode(piece, { bos: false })) stream.push(id);
      if (stream.length >= need) break outer;
    }
  }
  const n = Math.min(seqs, Math.floor(stream.length / body));
  if (n === 0) {
    throw new OptionError('--data', `${describeSource(source)} holds only ${stream.length} tokens, fewer than one sequence of ${seqLen}`);
  }
  const sequences: Int32Array[] = [];
  for (let s = 0; s < n; s++) {
    const seq = new Int32Array(seqLen);
    let o = 0;
    if (bos !== null) seq[o++] = bos;
    seq.set(stream.slice(s * body, (s + 1) * body), o);
    sequences.push(seq);
  }
  return {
    sequences,
    description: describeSource(source),
    source,
    documentsRead,
    ...(n < seqs ? { requestedSeqs: seqs } : {}),
  };
}
