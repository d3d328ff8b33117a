/**
 * Text corpora on disk, read lazily document by document: a plain text file (one document), a folder of `.txt` files
 * (sorted by name), one field of a `.jsonl` file or one column of a `.parquet` file (via `hyparquet`), or a folder of
 * Project Gutenberg books (licence header and footer stripped, hard line wraps joined, paragraphs separated by a blank
 * line). Calibration (analysis) and training data (distillation) both read text through here.
 *
 * @example
 * ```ts
 * const source = resolveCorpusSource('data/train.jsonl', { field: 'text' });
 * for await (const doc of readDocuments(source)) console.log(doc.length);
 * ```
 */
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { OptionError, IoError, FormatError } from '../errors.js';
import { decodeUtf8Text, fsReason } from './fsutil.js';

export type CorpusKind = 'text' | 'folder' | 'jsonl' | 'parquet' | 'gutenberg';

/** Where text comes from. */
export interface CorpusSource {
  kind: CorpusKind;
  /** File or folder. */
  path: string;
  /** jsonl field / parquet column holding the text (default `text`). */
  field?: string;
}

/**
 * Decide how to read `p`: a folder (of `.txt` files; `gutenberg` in its name strips licence headers), a `.jsonl`
 * / `.ndjson` file (needs a field, default `text`), a `.parquet` file (column, default `text`), or any other file as
 * plain text.
 */
export function resolveCorpusSource(p: string, opts: { field?: string } = {}): CorpusSource {
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch {
    throw new IoError(p, 'text data not found');
  }
  const lower = p.toLowerCase();
  if (st.isDirectory()) {
    const kind: CorpusKind = path.basename(path.resolve(p)).toLowerCase().includes('gutenberg') ? 'gutenberg' : 'folder';
    return { kind, path: p };
  }
  if (lower.endsWith('.jsonl') || lower.endsWith('.ndjson')) return { kind: 'jsonl', path: p, field: opts.field ?? 'text' };
  if (lower.endsWith('.parquet')) return { kind: 'parquet', path: p, field: opts.field ?? 'text' };
  if (opts.field !== undefined) throw new OptionError('--field', `only applies to .jsonl and .parquet data, not '${p}'`);
  return { kind: 'text', path: p };
}

export function describeSource(s: CorpusSource): string {
  return s.field !== undefined ? `${s.kind}:${s.path}#${s.field}` : `${s.kind}:${s.path}`;
}

/**
 * Keep the text between Project Gutenberg's `*** START OF ...` and `*** END OF ...` lines (the whole text when a
 * marker is missing).
 */
export function stripGutenberg(text: string): string {
  const start = /^\*\*\* ?START OF.*$/m.exec(text);
  let body = start ? text.slice(start.index + start[0].length) : text;
  const end = /^\*\*\* ?END OF.*$/m.exec(body);
  if (end) body = body.slice(0, end.index);
  return body;
}

/** Join hard-wrapped lines inside paragraphs; paragraphs stay separated by one blank line. */
export function unwrapParagraphs(text: string): string {
  return text
    .replace(/\r\n?/g, '\n')
    .split(/\n[ \t]*\n+/)
    .map((p) => p.replace(/\s*\n\s*/g, ' ').trim())
    .filter((p) => p.length > 0)
    .join('\n\n');
}

function readText(file: string): string {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new IoError(file, `cannot read (${fsReason(e)})`, { cause: e });
  }
  return decodeUtf8Text(buf, file);
}

function listTxt(dir: string): string[] {
  const names = fs.readdirSync(dir).filter((n) => n.toLowerCase().endsWith('.txt')).sort();
  if (names.length === 0) throw new IoError(dir, 'folder holds no .txt files');
  return names.map((n) => path.join(dir, n));
}

/** The documents of a source, in a fixed order, read lazily. */
export async function* readDocuments(source: CorpusSource): AsyncGenerator<string> {
  switch (source.kind) {
    case 'text':
      yield readText(source.path);
      return;
    case 'folder':
      for (const f of listTxt(source.path)) yield readText(f);
      return;
    case 'gutenberg':
      for (const f of listTxt(source.path)) yield unwrapParagraphs(stripGutenberg(readText(f)));
      return;
    case 'jsonl':
      yield* readJsonl(source.path, source.field ?? 'text');
      return;
    case 'parquet':
      yield* readParquet(source.path, source.field ?? 'text');
      return;
  }
}

async function* readJsonl(file: string, field: string): AsyncGenerator<string> {
  let stream: fs.ReadStream;
  try {
    fs.accessSync(file, fs.constants.R_OK);
    stream = fs.createReadStream(file, { encoding: 'utf8' });
  } catch (e) {
    throw new IoError(file, `cannot read (${fsReason(e)})`, { cause: e });
  }
  const rl = readline.createInterface({ input: stream, crlfDelay: Infinity });
  let lineNo = 0;
  let found = 0;
  try {
    for await (const line of rl) {
      lineNo++;
      if (line.trim() === '') continue;
      let obj: unknown;
      try {
        obj = JSON.parse(line);
      } catch {
        throw new FormatError(file, `line ${lineNo} is not valid JSON`);
      }
      if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new FormatError(file, `line ${lineNo} is not a JSON object`);
      const v = (obj as Record<string, unknown>)[field];
      if (v === undefined || v === null) continue;
      if (typeof v !== 'string') throw new FormatError(file, `line ${lineNo}: field '${field}' is ${typeof v}, not a string`);
      found++;
      yield v;
    }
  } finally {
    rl.close();
    stream.destroy();
  }
  if (found === 0) throw new FormatError(file, `no line has a string field '${field}' (pick one with --field)`);
}

async function* readParquet(file: string, column: string): AsyncGenerator<string> {
  const { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, parquetSchema } = await import('hyparquet');
  let buf;
  try {
    buf = await asyncBufferFromFile(file);
  } catch (e) {
    throw new IoError(file, `cannot read (${fsReason(e)})`, { cause: e });
  }
  let meta;
  try {
    meta = await parquetMetadataAsync(buf);
  } catch (e) {
    throw new FormatError(file, `not a readable parquet file (${(e as Error).message})`);
  }
  const names = parquetSchema(meta).children.map((c) => c.element.name);
  if (!names.includes(column)) throw new FormatError(file, `no column '${column}' (columns: ${names.join(', ')}; pick one with --field)`);
  const total = Number(meta.num_rows);
  const BATCH = 1024;
  for (let start = 0; start < total; start += BATCH) {
    const rows = await parquetReadObjects({ file: buf, metadata: meta, columns: [column], rowStart: start, rowEnd: Math.min(total, start + BATCH) });
    for (const row of rows) {
      const v = row[column];
      if (v === null || v === undefined) continue;
      if (typeof v !== 'string') throw new FormatError(file, `column '${column}' holds ${typeof v} values, not strings`);
      yield v;
    }
  }
}

/** Split a long document into chunks of about `size` characters at paragraph or line boundaries (bounds tokenizer cost). */
export function* chunks(text: string, size = 4000): Generator<string> {
  let i = 0;
  while (i < text.length) {
    if (text.length - i <= size) {
      yield text.slice(i);
      return;
    }
    let j = text.lastIndexOf('\n\n', i + size);
    if (j <= i) j = text.lastIndexOf('\n', i + size);
    if (j <= i) j = text.lastIndexOf(' ', i + size);
    if (j <= i) j = i + size;
    yield text.slice(i, j);
    i = j;
    while (i < text.length && (text[i] === '\n' || text[i] === ' ')) i++;
  }
}

