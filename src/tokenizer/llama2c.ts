/**
 * llama2.c tokenizer (`tokenizer.bin` / `tok512.bin`): int32 max_token_length, then per token
 * float32 score, int32 byte length, bytes. Encoding and streaming decode reproduce run.c exactly.
 */
import fs from 'node:fs';
import type { EncodeOptions, Tokenizer } from './tokenizer.js';
import { FormatError, IoError } from '../errors.js';

const BOS = 1;
const EOS = 2;
/** run.c starts the merge search from this score, so pairs scoring at or below it never merge. */
const MIN_SCORE = -1e10;

/** Pieces are compared as byte strings; latin1 maps each byte to one UTF-16 unit, so Map keys are byte-exact. */
function key(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1');
}

/** C `isprint || isspace` in the C locale. */
function printableOrSpace(b: number): boolean {
  return (b >= 0x20 && b <= 0x7e) || (b >= 0x09 && b <= 0x0d);
}

/** Max-heap of candidate merges: best score first, ties to the leftmost pair, as run.c's linear scan picks. */
class MergeHeap {
  private readonly items: { score: number; pos: number; right: number; id: number }[] = [];
  get size(): number {
    return this.items.length;
  }
  private better(a: { score: number; pos: number }, b: { score: number; pos: number }): boolean {
    return a.score > b.score || (a.score === b.score && a.pos < b.pos);
  }
  push(x: { score: number; pos: number; right: number; id: number }): void {
    const h = this.items;
    h.push(x);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.better(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
  }
  pop(): { score: number; pos: number; right: number; id: number } {
    const h = this.items;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.better(h[l], h[m])) m = l;
        if (r < h.length && this.better(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}

export class Llama2cTokenizer implements Tokenizer {
  readonly bosId = BOS;
  readonly eosIds: readonly number[] = Object.freeze([EOS]);
  readonly vocabSize: number;
  readonly maxTokenLength: number;
  private readonly pieces: Uint8Array[];
  private readonly scores: Float32Array;
  private readonly lookup = new Map<string, number>();
  private readonly pieceKeys: string[];

  constructor(pieces: Uint8Array[], scores: Float32Array, maxTokenLength: number) {
    this.pieces = pieces;
    this.scores = scores;
    this.vocabSize = pieces.length;
    this.maxTokenLength = maxTokenLength;
    this.pieceKeys = pieces.map(key);
    // run.c bsearches a sorted copy; with duplicate pieces the first id is as good a choice and deterministic.
    this.pieceKeys.forEach((k, i) => {
      if (!this.lookup.has(k)) this.lookup.set(k, i);
    });
  }

  /** Raw bytes of a vocabulary piece. */
  piece(id: number): Uint8Array {
    this.checkId(id);
    return this.pieces[id];
  }

  score(id: number): number {
    this.checkId(id);
    return this.scores[id];
  }

  private checkId(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new RangeError(`token id ${id} out of range [0, ${this.vocabSize})`);
    }
  }

  /** Encode like run.c `encode(t, text, bos, eos, ...)`: dummy prefix, codepoint/byte-fallback lookup, best-score merges. */
  encode(text: string, opts: EncodeOptions = {}): number[] {
    const bytes = Buffer.from(text, 'utf8');
    const ids: number[] = [];
    if (opts.bos ?? true) ids.push(BOS);
    if (bytes.length > 0) {
      // run.c would push -1 when the vocab lacks " "; fall back to the byte token instead.
      ids.push(this.lookup.get(' ') ?? 0x20 + 3);
    }
    for (let i = 0; i < bytes.length; ) {
      // One UTF-8 codepoint: a lead byte plus up to 3 continuation bytes (run.c caps the buffer at 4).
      let j = i + 1;
      while (j < bytes.length && (bytes[j] & 0xc0) === 0x80 && j - i < 4) j++;
      const id = this.lookup.get(bytes.toString('latin1', i, j));
      if (id !== undefined) ids.push(id);
      else for (let k = i; k < j; k++) ids.push(bytes[k] + 3);
      i = j;
    }
    const merged = this.merge(ids);
    if (opts.eos) merged.push(EOS);
    return merged;
  }

  /** run.c's merge loop (repeatedly merge the best-scoring adjacent pair), in O(n log n) via a heap of candidate pairs. */
  private merge(ids: number[]): number[] {
    const n = ids.length;
    const tok = ids.slice();
    const next = Int32Array.from({ length: n }, (_, i) => (i + 1 < n ? i + 1 : -1));
    const prev = Int32Array.from({ length: n }, (_, i) => i - 1);
    const alive = new Uint8Array(n).fill(1);
    const heap = new MergeHeap();
    const consider = (pos: number): void => {
      const right = next[pos];
      if (pos < 0 || right < 0) return;
      const id = this.lookup.get(this.pieceKeys[tok[pos]] + this.pieceKeys[tok[right]]);
      if (id !== undefined && this.scores[id] > MIN_SCORE) heap.push({ score: this.scores[id], pos, right, id });
    };
    for (let i = 0; i + 1 < n; i++) consider(i);
    while (heap.size > 0) {
      const m = heap.pop();
      // Skip candidates made stale by an earlier merge of either side.
      if (!alive[m.pos] || next[m.pos] !== m.right) continue;
      const id = this.lookup.get(this.pieceKeys[tok[m.pos]] + this.pieceKeys[tok[m.right]]);
      if (id !== m.id) continue;
      tok[m.pos] = m.id;
      alive[m.right] = 0;
      next[m.pos] = next[m.right];
      if (next[m.right] >= 0) prev[next[m.right]] = m.pos;
      consider(prev[m.pos]);
      consider(m.pos);
    }
    const out: number[] = [];
    for (let i = 0; i < n && i >= 0; i = next[i]) {
      out.push(tok[i]);
      if (next[i] < 0) break;
    }
    return out;
  }

  /** run.c `decode` + `safe_printf`: leading space dropped after BOS, `<0xXX>` → raw byte, lone unprintable bytes dropped. */
  decodePiece(prev: number, id: number): Uint8Array {
    let p = this.rawPiece(prev, id);
    // A C string ends at its first NUL (byte piece <0x00> prints nothing).
    const nul = p.indexOf(0);
    if (nul >= 0) p = p.subarray(0, nul);
    if (p.length === 1 && !printableOrSpace(p[0])) return new Uint8Array(0);
    return p;
  }

  private rawPiece(prev: number, id: number): Uint8Array {
    let p = this.piece(id);
    if (prev === BOS && p[0] === 0x20) p = p.subarray(1);
    // sscanf("<0x%02hhX>") only needs the prefix and 1-2 hex digits to match.
    const m = /^<0x([0-9A-Fa-f]{1,2})/.exec(key(p));
    if (m) return Uint8Array.of(parseInt(m[1], 16));
    return p;
  }

  /**
   * Concatenate the pieces of `ids` as SentencePiece decoding does: BOS/EOS/UNK skipped, the leading space of the
   * first piece stripped (the dummy prefix encode adds), byte tokens joined before UTF-8 decoding.
   * Unlike {@link decodePiece}, lone non-printable bytes are kept so non-ASCII text round-trips.
   */
  decode(ids: readonly number[]): string {
    const parts: Uint8Array[] = [];
    let prev = BOS;
    for (const id of ids) {
      if (id === BOS || id === EOS || id === 0) {
        prev = id;
        continue;
      }
      parts.push(this.rawPiece(prev, id));
      prev = id;
    }
    return Buffer.concat(parts).toString('utf8');
  }
}

/**
 * Load a llama2.c tokenizer file. `vocabSize` is the model's vocab size (the format does not store it);
 * by default the whole file is read and every token counted.
 *
 * @example
 * const tok = loadLlama2cTokenizer('../shared/models/stories260K/tok512.bin', 512);
 * tok.encode('Once upon a time'); // [1, ...]
 */
export function loadLlama2cTokenizer(file: string, vocabSize?: number): Llama2cTokenizer {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new IoError(file, `cannot read tokenizer (${(e as NodeJS.ErrnoException).code ?? String(e)})`, { cause: e });
  }
  if (buf.length < 4) throw new FormatError(file, `file is ${buf.length} bytes, too short for the max_token_length header`);
  const maxLen = buf.readInt32LE(0);
  if (maxLen <= 0 || maxLen > 1 << 16) throw new FormatError(file, `max_token_length ${maxLen} is out of range (1..65536)`);
  const pieces: Uint8Array[] = [];
  const scores: number[] = [];
  let off = 4;
  while (vocabSize === undefined ? off < buf.length : pieces.length < vocabSize) {
    const i = pieces.length;
    if (off + 8 > buf.length) throw new FormatError(file, `truncated at token ${i}: need 8 bytes for score and length at byte ${off}, file has ${buf.length}`);
    const score = buf.readFloatLE(off);
    const len = buf.readInt32LE(off + 4);
    off += 8;
    if (len < 0 || len > maxLen) throw new FormatError(file, `token ${i}: length ${len} is outside 0..max_token_length ${maxLen}`);
    if (off + len > buf.length) throw new FormatError(file, `truncated at token ${i}: piece of ${len} bytes at byte ${off} runs past the end (${buf.length} bytes)`);
    if (Number.isNaN(score)) throw new FormatError(file, `token ${i}: score is NaN`);
    pieces.push(Uint8Array.prototype.slice.call(buf, off, off + len));
    scores.push(score);
    off += len;
  }
  if (pieces.length < 3) throw new FormatError(file, `only ${pieces.length} tokens; a llama2.c vocab needs at least <unk>, <s>, </s>`);
  return new Llama2cTokenizer(pieces, Float32Array.from(scores), maxLen);
}
