/**
 * Token windows over a text corpus (calibration for the analysis and the search, held-out windows, spread training
 * data): `N` sequences of `T` tokens, each the tokenizer's BOS (when it has one) followed by `T − 1` text tokens.
 *
 * Windows are spread over the whole source: window `k` starts at the first paragraph after character `k · C / N` of
 * the documents joined by newlines (C characters in all), so a folder of books or a file of many documents is sampled
 * from end to end, and the result is a pure function of (data, tokenizer, N, T). Text that is too short for N separate
 * windows is cut into consecutive sequences instead. Text is encoded joined or line by line (`lines.ts`).
 *
 * @example
 * ```ts
 * const source = resolveCorpusSource('data/train.jsonl', { field: 'text' });
 * const { sequences } = await calibrationSequences(tokenizer, source, { seqs: 16, seqLen: 256 });
 * ```
 */
import { OptionError } from '../errors.js';
import type { Tokenizer } from './tokenizer.js';
import { encodeText, type TextEncoding } from './lines.js';
import { chunks, describeSource, readDocuments, type CorpusSource } from '../io/corpus.js';

export interface CalibrationOptions {
  /** `lines`: the text is one paragraph per line, encoded line by line (see `tokenizer/lines.ts`). Default `joined`. */
  encoding?: TextEncoding;
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
  /** Documents the sequences start in (how widely the corpus was sampled). */
  documentsSampled: number;
  /** Set when the data held fewer tokens than N × T: the number of sequences that were asked for. */
  requestedSeqs?: number;
}

/** Characters of text read at most (the rest of a larger corpus is not read). */
export const MAX_CORPUS_CHARS = 128 * 1024 * 1024;

/**
 * `seqs` sequences of `seqLen` tokens (BOS + `seqLen − 1` text tokens) spread over the whole source: window `k`
 * starts at character `k · C / N` of the concatenated documents (C characters in all), moved to the next line start,
 * so a folder of books or a file of many documents is sampled from end to end, not only from its first document.
 * When the text is too short for N separate windows, it is cut into consecutive sequences instead, and fewer
 * sequences are returned (with `requestedSeqs` set) if it runs out; none at all is an error.
 */
export async function calibrationSequences(tokenizer: Tokenizer, source: CorpusSource, opts: CalibrationOptions): Promise<CalibrationData> {
  const { seqs, seqLen } = opts;
  if (!(Number.isInteger(seqs) && seqs >= 1)) throw new OptionError('--seqs', `expected an integer >= 1, got ${seqs}`);
  if (!(Number.isInteger(seqLen) && seqLen >= 2)) throw new OptionError('--seq-len', `expected an integer >= 2, got ${seqLen}`);
  const { text, starts: docStarts } = await readCorpus(source);
  const bos = tokenizer.bosId;
  const body = bos === null ? seqLen : seqLen - 1;
  const encode = (t: string) => encodeText(tokenizer, t, opts.encoding);
  const windows = spreadWindows(tokenizer, encode, text, seqs, body) ?? consecutiveWindows(encode, text, seqs, body);
  if (windows.length === 0) {
    throw new OptionError('--data', `${describeSource(source)} holds fewer tokens than one sequence of ${seqLen}`);
  }
  const sequences = windows.map(({ ids }) => {
    const seq = new Int32Array(seqLen);
    if (bos !== null) seq[0] = bos;
    seq.set(ids, bos === null ? 0 : 1);
    return seq;
  });
  const docOf = (at: number) => docStarts.filter((d) => d <= at).length - 1;
  return {
    sequences,
    description: describeSource(source),
    source,
    documentsRead: docStarts.length,
    documentsSampled: new Set(windows.map((w) => docOf(w.at))).size,
    ...(windows.length < seqs ? { requestedSeqs: seqs } : {}),
  };
}

/** The documents of a source joined by newlines (up to {@link MAX_CORPUS_CHARS}), and where each document starts. */
async function readCorpus(source: CorpusSource): Promise<{ text: string; starts: number[] }> {
  const parts: string[] = [];
  const starts: number[] = [];
  let chars = 0;
  for await (const doc of readDocuments(source)) {
    if (doc.trim() === '') continue;
    starts.push(chars);
    parts.push(doc);
    chars += doc.length + 1;
    if (chars >= MAX_CORPUS_CHARS) break;
  }
  return { text: parts.join('\n'), starts };
}

/** The first `body` tokens of `text` from `at` (fewer at its end), and how many characters they took. */
function tokensFrom(encode: (t: string) => number[], text: string, at: number, body: number): { ids: number[]; end: number } {
  for (let span = 8 * body + 64; ; span *= 2) {
    let end = Math.min(text.length, at + span);
    if (end < text.length) {
      const ws = text.lastIndexOf(' ', end);
      const nl = text.lastIndexOf('\n', end);
      const cut = Math.max(ws, nl);
      if (cut > at) end = cut; // cut between words, so the last kept tokens are whole
    }
    const ids = encode(text.slice(at, end));
    // A margin of tokens past `body` keeps the cut from changing the tokens that are kept.
    if (ids.length >= body + 8 || end >= text.length) return { ids: ids.slice(0, body), end };
  }
}

/** N windows at evenly spaced line starts, or null when the text is too short for them not to overlap. */
function spreadWindows(tokenizer: Tokenizer, encode: (t: string) => number[], text: string, n: number, body: number): { ids: number[]; at: number }[] | null {
  const starts = Array.from({ length: n }, (_, k) => {
    const c = Math.floor((k * text.length) / n);
    if (c === 0) return 0;
    let at = text.indexOf('\n', c);
    if (at < 0) return text.length;
    while (at < text.length && /\s/.test(text[at])) at++; // the next paragraph's first character
    return at;
  });
  const out: { ids: number[]; at: number }[] = [];
  for (let k = 0; k < n; k++) {
    const next = k + 1 < n ? starts[k + 1] : text.length;
    if (starts[k] >= next) return null;
    const w = tokensFrom(encode, text, starts[k], body);
    // The kept tokens' text must end before the next window starts (windows never share text).
    if (w.ids.length < body || (k + 1 < n && starts[k] + tokenizer.decode(w.ids).length > next)) return null;
    out.push({ ids: w.ids, at: starts[k] });
  }
  return out;
}

/** Consecutive windows from the start of the text (small corpora). */
function consecutiveWindows(encode: (t: string) => number[], text: string, n: number, body: number): { ids: number[]; at: number }[] {
  const stream: number[] = [];
  for (const piece of chunks(text)) {
    if (piece.trim() === '') continue;
    for (const id of encode(piece)) stream.push(id);
    if (stream.length >= n * body) break;
  }
  const count = Math.min(n, Math.floor(stream.length / body));
  return Array.from({ length: count }, (_, k) => ({ ids: stream.slice(k * body, (k + 1) * body), at: 0 }));
}
