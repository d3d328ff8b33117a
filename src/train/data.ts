/**
 * Training data: token sequences of `seqLen + 1` tokens (inputs are the first `seqLen`, labels the
 * last `seqLen`), packed from documents in order, each document starting with BOS.
 *
 * Sources:
 * - text: a `.txt` file (one document), a folder of `.txt` files, a `.jsonl` field or a `.parquet` column (one
 *   document per row; read through `io/corpus.ts`, which uses `hyparquet` for parquet), or `.jsonl` files of token
 *   ids (`{"ids": [...]}` lines, e.g. teacher samples of an earlier run);
 * - teacher samples: N sequences sampled from the teacher from BOS (EchoAtt's first stage trains on the teacher's
 *   pseudo-labels), stored as `{"ids": [...], "text": "..."}` lines so that a resumed run reuses exactly the same data.
 *
 * Reading stops once `maxTokens` tokens are collected, so a large corpus costs only what a run uses.
 */
import fs from 'node:fs';
import path from 'node:path';
import { readDocuments, resolveCorpusSource, describeSource } from '../io/corpus.js';
import { generate } from '../models/generate.js';
import type { LlamaModel } from '../models/llama.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { encodeLines, type TextEncoding } from '../tokenizer/lines.js';
import { calibrationSequences } from '../tokenizer/windows.js';
import { writeAtomic, writeAll } from '../io/fsutil.js';
import { OptionError, FormatError, IoError } from '../errors.js';

export interface TokenDataset {
  /** Each `Int32Array(seqLen + 1)`. */
  sequences: Int32Array[];
  description: string;
  /** FNV-1a hash of every token, to check a resumed run sees the same data. */
  fingerprint: string;
}

/** Concatenate documents and cut them into sequences of `seqLen + 1` tokens (the remainder is dropped). */
export function packDocuments(docs: Iterable<readonly number[]>, seqLen: number, maxTokens = Infinity): Int32Array[] {
  const L = seqLen + 1;
  const out: Int32Array[] = [];
  let cur = new Int32Array(L);
  let fill = 0;
  let total = 0;
  for (const doc of docs) {
    for (const id of doc) {
      cur[fill++] = id;
      if (fill === L) {
        out.push(cur);
        cur = new Int32Array(L);
        fill = 0;
        total += L;
        if (total >= maxTokens) return out;
      }
    }
  }
  return out;
}

/** Hash of a dataset's tokens (hex). */
export function fingerprint(seqs: readonly Int32Array[]): string {
  let h = 0x811c9dc5;
  for (const s of seqs) {
    for (let i = 0; i < s.length; i++) {
      let x = s[i];
      for (let b = 0; b < 4; b++) {
        h ^= x & 0xff;
        h = Math.imul(h, 0x01000193) >>> 0;
        x >>>= 8;
      }
    }
  }
  return `${seqs.length}:${h.toString(16).padStart(8, '0')}`;
}

export interface TextDataOptions {
  seqLen: number;
  field?: string;
  /** Stop after this many tokens. */
  maxTokens?: number;
  /** `lines`: one paragraph per line, encoded line by line (`tokenizer/lines.ts`). */
  encoding?: TextEncoding;
  /**
   * Take the sequences at evenly spaced paragraphs over each whole source (each BOS + `seqLen` tokens) instead of
   * packing documents from the start, so a run that reads a fraction of a corpus still sees all of it. Needs `maxTokens`.
   */
  spread?: boolean;
}

/** Tokenise text sources (in the order given) into sequences. */
export async function textSequences(tokenizer: Tokenizer, paths: readonly string[], opts: TextDataOptions): Promise<TokenDataset> {
  const L = opts.seqLen + 1;
  const maxTokens = opts.maxTokens ?? Infinity;
  if (opts.spread) return spreadSequences(tokenizer, paths, opts);
  const docs: number[][] = [];
  let total = 0;
  const descs: string[] = [];
  outer: for (const p of paths) {
    const source = resolveCorpusSource(p, opts.field !== undefined && /\.(jsonl|ndjson|parquet)$/i.test(p) ? { field: opts.field } : {});
    descs.push(describeSource(source));
    for await (const text of readDocuments(source)) {
      const ids = opts.encoding === 'lines' ? [...(tokenizer.bosId !== null ? [tokenizer.bosId] : []), ...encodeLines(tokenizer, text)] : tokenizer.encode(text, { bos: true });
      docs.push(ids);
      total += ids.length;
      if (total >= maxTokens + L) break outer;
    }
  }
  const sequences = packDocuments(docs, opts.seqLen, maxTokens);
  const how = opts.encoding === 'lines' ? ' (line by line)' : '';
  return { sequences, description: descs.join(' + ') + how, fingerprint: fingerprint(sequences) };
}

export interface SampleOptions {
  /** Number of samples. */
  count: number;
  /** Maximum new tokens per sample. Default 256. */
  length?: number;
  /** Default 1 (sample the teacher's own distribution). */
  temperature?: number;
  /** Default 1 (no nucleus cut). */
  topP?: number;
  /** Sample `i` uses seed `seed + i`. */
  seed: number;
  /** Token ids that end a sample (default: the tokenizer's EOS ids). */
  stopIds?: readonly number[];
  onSample?: (done: number, total: number) => void;
}

/** Sample documents from the teacher, each `[BOS, ...generated]`. */
export function sampleFromTeacher(teacher: LlamaModel, tokenizer: Tokenizer, opts: SampleOptions): number[][] {
  const docs: number[][] = [];
  for (let i = 0; i < opts.count; i++) {
    const r = generate(
      teacher, tokenizer,
      {
        prompt: '', maxTokens: opts.length ?? 256, temperature: opts.temperature ?? 1, topP: opts.topP ?? 1,
        seed: opts.seed + i, stopIds: opts.stopIds,
      },
      () => {},
    );
    docs.push([...r.promptTokens, ...r.tokens]);
    opts.onSample?.(i + 1, opts.count);
  }
  return docs;
}

/** Write samples as jsonl (`{"ids": [...], "text": "..."}`), atomically. */
export function writeSamples(file: string, docs: readonly (readonly number[])[], tokenizer: Tokenizer): void {
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const text = docs.map((ids) => JSON.stringify({ ids, text: tokenizer.decode(ids) })).join('\n') + '\n';
  writeAtomic(file, (fd) => writeAll(fd, Buffer.from(text, 'utf8')));
}

/** Read samples written by {@link writeSamples} (only `ids` is used). */
export function readSamples(file: string): number[][] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new IoError(file, `cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`, { cause: e });
  }
  const out: number[][] = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let o: unknown;
    try {
      o = JSON.parse(line);
    } catch {
      throw new FormatError(file, `line ${i + 1} is not JSON`);
    }
    const ids = (o as { ids?: unknown }).ids;
    if (!Array.isArray(ids) || !ids.every((x) => Number.isInteger(x) && x >= 0)) throw new FormatError(file, `line ${i + 1} has no 'ids' list of token ids`);
    out.push(ids as number[]);
  });
  return out;
}

/** Check every token of a dataset is inside the vocabulary. */
export function checkVocab(ds: TokenDataset, vocab: number, what: string): void {
  for (const s of ds.sequences) for (let i = 0; i < s.length; i++) {
    if (s[i] < 0 || s[i] >= vocab) throw new OptionError(what, `token id ${s[i]} is outside the model's vocabulary of ${vocab}`);
  }
}

/** Text files, folders and ids-jsonl files (used as they are) into one dataset, in the order given. */
export async function loadData(tokenizer: Tokenizer, paths: readonly string[], o: TextDataOptions & { maxTokens: number }): Promise<TokenDataset> {
  const idFiles = paths.filter(isIdsJsonl);
  const textFiles = paths.filter((p) => !isIdsJsonl(p));
  const parts: TokenDataset[] = [];
  if (textFiles.length) parts.push(await textSequences(tokenizer, textFiles, o));
  for (const f of idFiles) {
    const seqs = packDocuments(readSamples(f), o.seqLen, o.maxTokens);
    parts.push({ sequences: seqs, description: `ids:${f}`, fingerprint: fingerprint(seqs) });
  }
  return joinDatasets(parts);
}

/** Several datasets as one (sequences in order; descriptions and fingerprints joined). */
export function joinDatasets(parts: readonly TokenDataset[]): TokenDataset {
  return { sequences: parts.flatMap((p) => p.sequences), description: parts.map((p) => p.description).join(' + '), fingerprint: parts.map((p) => p.fingerprint).join('+') };
}

function isIdsJsonl(p: string): boolean {
  if (!/\.jsonl$/i.test(p) || !fs.existsSync(p)) return false;
  const fd = fs.openSync(p, 'r');
  try {
    const buf = Buffer.alloc(256);
    const n = fs.readSync(fd, buf, 0, 256, 0);
    return /^\s*\{\s*"ids"\s*:/.test(buf.subarray(0, n).toString('utf8'));
  } finally {
    fs.closeSync(fd);
  }
}

/** {@link textSequences} with `spread`: windows at evenly spaced paragraphs, the count split evenly over the sources. */
async function spreadSequences(tokenizer: Tokenizer, paths: readonly string[], opts: TextDataOptions): Promise<TokenDataset> {
  if (opts.maxTokens === undefined || !Number.isFinite(opts.maxTokens)) throw new OptionError('data', 'spread sequences need a token budget (maxTokens)');
  const total = Math.max(1, Math.ceil(opts.maxTokens / (opts.seqLen + 1)));
  const sequences: Int32Array[] = [];
  const descs: string[] = [];
  for (const [i, p] of paths.entries()) {
    const source = resolveCorpusSource(p, opts.field !== undefined && /\.(jsonl|ndjson|parquet)$/i.test(p) ? { field: opts.field } : {});
    const n = Math.floor(total / paths.length) + (i < total % paths.length ? 1 : 0);
    if (n === 0) continue;
    const cal = await calibrationSequences(tokenizer, source, { seqs: n, seqLen: opts.seqLen + 1, encoding: opts.encoding });
    sequences.push(...cal.sequences);
    descs.push(`${describeSource(source)} (${cal.sequences.length} windows spread over ${cal.documentsRead} document(s)${opts.encoding === 'lines' ? ', line by line' : ''})`);
  }
  return { sequences, description: descs.join(' + '), fingerprint: fingerprint(sequences) };
}
