/**
 * Perplexity under the field's three conventions. Every result records its mode, context length and stride, because
 * the conventions give different numbers for the same model and text.
 *
 * **Token level, `chunks`** (GPTQ / SparseGPT / Wanda): the documents are joined with `"\n\n"` and tokenized once
 * (BOS per the tokenizer's convention, i.e. once at the very start for Llama-family tokenizers); the token stream is
 * cut into `floor(N / ctx)` non-overlapping windows of `ctx` tokens (the tail is dropped); in each window every token
 * but the first is predicted from the tokens before it in that window.
 * `ppl = exp(Σ NLL / (windows · (ctx − 1)))` — the same number as GPTQ's `exp(Σ_i mean_loss_i · ctx / (windows · ctx))`.
 *
 * **Token level, `sliding`** (Hugging Face "Perplexity of fixed-length models" guide): windows of up to `ctx`
 * tokens start at `0, S, 2S, ...`; each window scores only the tokens that no earlier window scored (the last
 * `end − prevEnd` of it), each predicted from up to `ctx − 1` tokens before it; it stops at the window that reaches
 * the end. Tokens are counted exactly: each of tokens `1 .. N−1` is scored once, `ppl = exp(Σ NLL / (N − 1))` (the
 * guide's own code divides by a count that is off by one per window; this does not). With `S = ctx` the windows are
 * the chunks above plus the tail, so sliding equals chunks whenever `N mod ctx ∈ {0, 1}`.
 *
 * **Word and byte level** (lm-evaluation-harness `wikitext` task): each document (for WikiText: each article, split
 * at top-level `= Title =` headings as lm-eval's `wikitext_document_level` does) is detokenized with lm-eval's
 * `wikitext_detokenizer` (WikiText files only), tokenized WITHOUT BOS, and scored with lm-eval's rolling windows
 * (`loglikelihood_rolling`: the first window is `[prefix] + tokens[:ctx−1]` predicting `tokens[:ctx]`, the prefix
 * being BOS (else EOS); each later window is the `ctx` tokens before the next unscored block of up to `ctx` tokens;
 * every token is scored exactly once). With NLL the summed negative log-likelihood over all documents' tokens:
 * `word_perplexity = exp(NLL / #words)`, `byte_perplexity = exp(NLL / #bytes)`, `bits_per_byte = NLL / #bytes / ln 2`,
 * where #words counts `re.split(r"\s+", doc)` pieces and #bytes the UTF-8 bytes of each ORIGINAL document (before
 * detokenization), exactly as lm-eval does.
 *
 * @example
 * ```ts
 * const corpus = loadPplCorpus('../shared/data/wikitext2/wiki.test.raw');
 * const r = tokenPerplexity(model, tokenizer.encode(corpus.joined), { mode: 'sliding', ctx: 512, stride: 256 });
 * console.log(r.ppl, r.scored);
 * ```
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { OptionError, IoError, EvalError } from '../errors.js';
import { prefixTokenId, type ScoringModel } from './scoring.js';

export type PplMode = 'chunks' | 'sliding';
export const PPL_MODES: readonly PplMode[] = ['chunks', 'sliding'];

/** A text corpus for perplexity: the rows joined for token-level perplexity and the documents for word/byte level. */
export interface PplCorpus {
  source: string;
  /** `wikitext`: a WikiText `.raw`/`.tokens` file (HF rows, lm-eval pages, detokenizer); `text`: plain files. */
  kind: 'wikitext' | 'text';
  /** Rows joined with `"\n\n"` (for WikiText: the lines as Hugging Face's `wikitext` loader yields them). */
  joined: string;
  /** Documents for the word/byte-level (rolling) perplexity. */
  documents: string[];
}

function isWikitextFile(p: string): boolean {
  return /^wiki\.(train|valid|test)\.(raw|tokens)$/.test(path.basename(p));
}

/** The rows Hugging Face's `wikitext` dataset yields for a file: each line with its `\n`, blank lines as `""`. */
export function wikitextRows(text: string): string[] {
  const rows: string[] = [];
  const re = /[^\n]*\n|[^\n]+$/g;
  for (const m of text.matchAll(re)) rows.push(m[0].trim() ? m[0] : '');
  return rows;
}

/** lm-eval's `wikitext_document_level` pages: a new page starts at each top-level `= Title =` line. */
export function wikitextPages(text: string): string[] {
  const pages: string[] = [];
  let cur: string[] = [];
  for (const line of text.split('\n')) {
    const r = line.replaceAll('= = =', '===').replaceAll('= =', '==').trim();
    if (r.startsWith('= ') && r.endsWith(' =')) {
      const page = cur.join('\n');
      if (page.trim()) pages.push(page);
      cur = [];
    }
    cur.push(line);
  }
  pages.push(cur.join('\n'));
  return pages;
}

/** lm-eval's `wikitext_detokenizer`, step for step. */
export function wikitextDetokenize(s: string): string {
  s = s.replaceAll("s '", "s'");
  s = s.replace(/\/' [0-9]\//g, "/'[0-9]/");
  s = s.replaceAll(' @-@ ', '-').replaceAll(' @,@ ', ',').replaceAll(' @.@ ', '.');
  for (const p of [':', ';', '.', '!', '?', ',']) s = s.replaceAll(` ${p} `, `${p} `);
  s = s.replace(/\(\s*([^)]*?)\s*\)/g, '($1)');
  s = s.replace(/\[\s*([^\]]*?)\s*\]/g, '[$1]');
  s = s.replace(/{\s*([^}]*?)\s*}/g, '{$1}');
  s = s.replace(/"\s*([^"]*?)\s*"/g, '"$1"');
  s = s.replace(/'\s*([^']*?)\s*'/g, "'$1'");
  s = s.replaceAll('= = = =', '====').replaceAll('= = =', '===').replaceAll('= =', '==');
  s = s.replaceAll(' \u00b0 ', '\u00b0');
  s = s.replaceAll(' \n', '\n').replaceAll('\n ', '\n');
  s = s.replaceAll(' N ', ' 1 ');
  s = s.replaceAll(" 's", "'s");
  return s;
}

/**
 * Load a perplexity corpus: a WikiText file (`wiki.{train,valid,test}.{raw,tokens}`), any other text file (one
 * document), or a folder (each regular file directly inside it, in name order, is one document).
 */
export function loadPplCorpus(p: string): PplCorpus {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(p);
  } catch {
    throw new IoError(p, 'perplexity text not found');
  }
  const read = (f: string) => {
    try {
      return fs.readFileSync(f, 'utf8').replaceAll('\r\n', '\n');
    } catch (e) {
      throw new IoError(f, `cannot read (${(e as Error).message})`);
    }
  };
  if (stat.isDirectory()) {
    const files = fs.readdirSync(p).sort().map((f) => path.join(p, f)).filter((f) => fs.statSync(f).isFile());
    if (!files.length) throw new IoError(p, 'folder has no files');
    const docs = files.map(read);
    return { source: p, kind: 'text', joined: docs.join('\n\n'), documents: docs };
  }
  const text = read(p);
  if (isWikitextFile(p)) return { source: p, kind: 'wikitext', joined: wikitextRows(text).join('\n\n'), documents: wikitextPages(text) };
  return { source: p, kind: 'text', joined: text, documents: [text] };
}

export interface TokenPplOptions {
  mode: PplMode;
  /** Window length in tokens (≤ the model's context). */
  ctx: number;
  /** Sliding stride (1 ≤ S ≤ ctx). Default ctx / 2. Ignored by `chunks`. */
  stride?: number;
  /** Called after each window with (done, total). */
  onWindow?: (done: number, total: number) => void;
}

export interface TokenPerplexity {
  mode: PplMode;
  ctx: number;
  /** The stride used (`chunks`: ctx). */
  stride: number;
  /** Tokens in the stream. */
  tokens: number;
  /** Tokens scored (predicted). */
  scored: number;
  windows: number;
  /** Summed negative log-likelihood (nats). */
  nll: number;
  ppl: number;
}

/**
 * Summed NLL of `ids[from..]` given the tokens before them (`1 ≤ from`). One forward pass over `ids` without its
 * last token (that token is only a target), so a window of `ctx + 1` ids runs `ctx` positions.
 */
export function windowNll(model: ScoringModel, ids: Int32Array, from: number): number {
  const v = model.config.vocabSize;
  const l = ids.length;
  const n = l - from;
  if (n <= 0) return 0;
  if (from < 1) throw new EvalError('windowNll: the first token of a window has nothing to be predicted from');
  const logits = model.forward(ids.subarray(0, l - 1));
  const losses = new Float32Array(n);
  // Row t predicts token t + 1: rows from-1 .. l-2.
  model.backend.crossEntropy(logits.subarray((from - 1) * v, (l - 1) * v), ids.subarray(from), losses, n, v);
  let s = 0;
  for (let i = 0; i < n; i++) s += losses[i];
  return s;
}

function checkCtx(model: ScoringModel, ctx: number): void {
  if (!(Number.isInteger(ctx) && ctx >= 2)) throw new OptionError('--ctx', `must be an integer >= 2, got ${ctx}`);
  if (ctx > model.config.maxPositions) throw new OptionError('--ctx', `${ctx} exceeds the model's context length ${model.config.maxPositions}`);
}

/** Token-level perplexity of a token stream (see the module doc for the two modes). */
export function tokenPerplexity(model: ScoringModel, ids: ArrayLike<number>, opts: TokenPplOptions): TokenPerplexity {
  const { mode, ctx } = opts;
  checkCtx(model, ctx);
  const all = Int32Array.from(ids);
  const n = all.length;
  let nll = 0;
  let scored = 0;
  let windows = 0;
  if (mode === 'chunks') {
    const count = Math.floor(n / ctx);
    if (count === 0) throw new EvalError(`text has ${n} tokens, fewer than one ${ctx}-token chunk`);
    for (let i = 0; i < count; i++) {
      nll += windowNll(model, all.subarray(i * ctx, (i + 1) * ctx), 1);
      scored += ctx - 1;
      windows++;
      opts.onWindow?.(i + 1, count);
    }
    return { mode, ctx, stride: ctx, tokens: n, scored, windows, nll, ppl: Math.exp(nll / scored) };
  }
  if (mode !== 'sliding') throw new OptionError('--ppl-mode', `expected 'chunks' or 'sliding', got '${String(mode)}'`);
  const stride = opts.stride ?? Math.max(1, Math.floor(ctx / 2));
  if (!(Number.isInteger(stride) && stride >= 1 && stride <= ctx)) throw new OptionError('--stride', `must be an integer in [1, ${ctx}], got ${stride}`);
  if (n < 2) throw new EvalError(`text has ${n} tokens; at least 2 are needed`);
  const total = Math.max(1, Math.ceil(Math.max(0, n - ctx) / stride) + 1);
  let prevEnd = 0;
  for (let begin = 0; begin < n; begin += stride) {
    const end = Math.min(begin + ctx, n);
    const len = end - begin;
    const from = Math.max(len - (end - prevEnd), 1);
    nll += windowNll(model, all.subarray(begin, end), from);
    scored += Math.max(0, len - from);
    windows++;
    opts.onWindow?.(windows, total);
    prevEnd = end;
    if (end === n) break;
  }
  return { mode, ctx, stride, tokens: n, scored, windows, nll, ppl: Math.exp(nll / scored) };
}

/**
 * lm-eval `loglikelihood_rolling` of one token list (no BOS in `tokens`): summed NLL over every token, in the
 * disjoint rolling windows described in the module doc.
 */
export function rollingNll(model: ScoringModel, tokens: readonly number[], ctx: number, prefix: number): { nll: number; windows: number } {
  checkCtx(model, ctx);
  const n = tokens.length;
  if (n === 0) return { nll: 0, windows: 0 };
  const first = Math.min(ctx, n);
  const w0 = Int32Array.from([prefix, ...tokens.slice(0, first)]); // its last token is a target only
  let nll = windowNll(model, w0, 1);
  let windows = 1;
  let predicted = first;
  while (predicted < n) {
    const predLen = Math.min(n - predicted, ctx);
    const end = predicted + predLen;
    // Input tokens[end-ctx-1 .. end-2] (ctx positions) predicts tokens[end-ctx .. end-1]; the last predLen are new.
    const w = Int32Array.from(tokens.slice(end - ctx - 1, end));
    nll += windowNll(model, w, w.length - predLen);
    windows++;
    predicted = end;
  }
  return { nll, windows };
}

export interface WordBytePerplexity {
  ctx: number;
  documents: number;
  tokens: number;
  words: number;
  bytes: number;
  nll: number;
  /** Token-level perplexity of the same rolling pass: exp(NLL / tokens). */
  tokenPerplexity: number;
  wordPerplexity: number;
  bytePerplexity: number;
  bitsPerByte: number;
  detokenized: boolean;
}

/** Word- and byte-level perplexity like lm-eval's `wikitext` task (see the module doc). */
export function wordBytePerplexity(
  model: ScoringModel, tok: Tokenizer, corpus: PplCorpus, ctx: number, onDoc?: (done: number, total: number) => void,
): WordBytePerplexity {
  const prefix = prefixTokenId(tok);
  const detok = corpus.kind === 'wikitext';
  let nll = 0;
  let tokens = 0;
  let words = 0;
  let bytes = 0;
  corpus.documents.forEach((doc, i) => {
    const ids = tok.encode(detok ? wikitextDetokenize(doc) : doc, { bos: false });
    nll += rollingNll(model, ids, ctx, prefix).nll;
    tokens += ids.length;
    words += doc.split(/\s+/).length;
    bytes += Buffer.byteLength(doc, 'utf8');
    onDoc?.(i + 1, corpus.documents.length);
  });
  return {
    ctx,
    documents: corpus.documents.length,
    tokens,
    words,
    bytes,
    nll,
    tokenPerplexity: Math.exp(nll / tokens),
    wordPerplexity: Math.exp(nll / words),
    bytePerplexity: Math.exp(nll / bytes),
    bitsPerByte: nll / bytes / Math.LN2,
    detokenized: detok,
  };
}
