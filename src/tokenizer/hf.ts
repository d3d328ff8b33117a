/**
 * Hugging Face `tokenizer.json` tokenizers through `@huggingface/tokenizers`, plus a byte-exact streaming
 * `decodePiece` for the two decoder families Llama-like models use (SentencePiece byte-fallback, GPT-2 byte-level).
 */
import path from 'node:path';
import { Tokenizer as HfLib } from '@huggingface/tokenizers';
import { isFile, isPlainObject, readJsonFile } from '../io/fsutil.js';
import type { EncodeOptions, Tokenizer } from './tokenizer.js';
import { FormatError } from '../errors.js';

type PieceMode = 'sentencepiece' | 'bytelevel' | 'generic';

/** GPT-2's reversible byte ↔ printable-unicode table, inverted: maps each stand-in char back to its byte. */
function unicodeToBytes(): Map<string, number> {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const map = new Map<string, number>();
  for (const b of bs) map.set(String.fromCodePoint(b), b);
  let n = 0;
  for (let b = 0; b < 256; b++) if (!bs.includes(b)) map.set(String.fromCodePoint(256 + n++), b);
  return map;
}

function decoderTypes(dec: unknown): string[] {
  if (!isPlainObject(dec)) return [];
  const inner = Array.isArray(dec.decoders) ? dec.decoders.flatMap(decoderTypes) : [];
  return typeof dec.type === 'string' ? [dec.type, ...inner] : inner;
}

/** A token given as a string or an AddedToken-like `{content}` object in tokenizer_config.json. */
function tokenContent(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (isPlainObject(v) && typeof v.content === 'string') return v.content;
  return null;
}

function idList(v: unknown): number[] {
  const list = Array.isArray(v) ? v : [v];
  return list.filter((x): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0);
}

function readSidecar(dir: string, name: string): Record<string, unknown> {
  const p = path.join(dir, name);
  if (!isFile(p)) return {};
  const j = readJsonFile(p);
  if (!isPlainObject(j)) throw new FormatError(p, 'expected a JSON object');
  return j;
}

const utf8 = new TextEncoder();
const EMPTY = new Uint8Array(0);

export class HfTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly maxTokenLength: number;
  readonly bosId: number | null;
  readonly eosIds: readonly number[];
  readonly file: string;
  private readonly addBos: boolean;
  private readonly mode: PieceMode;
  private readonly special = new Set<number>();
  private readonly byteDecoder = unicodeToBytes();

  constructor(private readonly lib: HfLib, json: Record<string, unknown>, file: string, tokConfig: Record<string, unknown>, modelConfig: Record<string, unknown>) {
    this.file = file;
    const vocab = lib.get_vocab(true);
    let maxId = -1;
    let longest = 1;
    for (const [token, id] of vocab) {
      maxId = Math.max(maxId, id);
      // The entry's own UTF-8 length bounds what it decodes to ('▁', 'Ġ' and <0xNN> take more bytes than they stand for).
      longest = Math.max(longest, Buffer.byteLength(token));
    }
    this.vocabSize = maxId + 1;
    this.maxTokenLength = longest;
    for (const [id, t] of lib.get_added_tokens_decoder()) if (t.special) this.special.add(id);
    const idOf = (v: unknown): number | null => {
      const c = tokenContent(v);
      return c === null ? null : lib.token_to_id(c) ?? null;
    };
    this.bosId = idOf(tokConfig.bos_token) ?? idList(modelConfig.bos_token_id)[0] ?? null;
    const eos = [idOf(tokConfig.eos_token), ...idList(modelConfig.eos_token_id)].filter((x): x is number => x !== null);
    this.eosIds = Object.freeze([...new Set(eos)]);
    if (typeof tokConfig.add_bos_token === 'boolean') this.addBos = tokConfig.add_bos_token;
    else {
      const withSpecial = lib.encode('a').ids;
      this.addBos = this.bosId !== null && withSpecial[0] === this.bosId;
    }
    const types = decoderTypes(json.decoder);
    this.mode = types.includes('ByteLevel') ? 'bytelevel'
      : types.includes('ByteFallback') || types.includes('Metaspace') || types.includes('Replace') ? 'sentencepiece'
      : 'generic';
  }

  /** Run a library call; its failures on a malformed tokenizer become a FormatError naming the file. */
  private guard<T>(what: string, f: () => T): T {
    try {
      return f();
    } catch (e) {
      throw new FormatError(this.file, `${what} failed (${(e as Error).message}); the tokenizer.json may be malformed`, { cause: e });
    }
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const ids = text.length > 0 ? [...this.guard('encode', () => this.lib.encode(text, { add_special_tokens: false }).ids)] : [];
    const bad = ids.find((id) => !Number.isInteger(id) || id < 0);
    if (bad !== undefined) throw new FormatError(this.file, `encode produced an invalid token id ${String(bad)}; the tokenizer.json vocabulary is malformed`);
    if ((opts.bos ?? this.addBos) && this.bosId !== null) ids.unshift(this.bosId);
    if (opts.eos && this.eosIds.length > 0) ids.push(this.eosIds[0]);
    return ids;
  }

  decode(ids: readonly number[]): string {
    const keep = ids.filter((id) => !this.special.has(id) && id !== this.bosId && !this.eosIds.includes(id));
    return keep.length === 0 ? '' : this.guard('decode', () => this.lib.decode(keep, { skip_special_tokens: true, clean_up_tokenization_spaces: false }));
  }

  decodePiece(prev: number, id: number): Uint8Array {
    if (this.special.has(id) || id === this.bosId || this.eosIds.includes(id)) return EMPTY;
    const tok = this.lib.id_to_token(id);
    if (tok === undefined) throw new RangeError(`${this.file}: token id ${id} out of range [0, ${this.vocabSize})`);
    if (this.mode === 'bytelevel') {
      const out: number[] = [];
      for (const ch of tok) {
        const b = this.byteDecoder.get(ch);
        if (b !== undefined) out.push(b);
        else out.push(...utf8.encode(ch)); // added tokens are stored as plain text
      }
      return Uint8Array.from(out);
    }
    if (this.mode === 'sentencepiece') {
      const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(tok);
      if (m) return Uint8Array.of(parseInt(m[1], 16));
      let s = tok.replaceAll('\u2581', ' ');
      // As SentencePiece (and run.c): the dummy-prefix space of the first word after BOS is not printed.
      if (prev === this.bosId && s.startsWith(' ')) s = s.slice(1);
      return utf8.encode(s);
    }
    return utf8.encode(this.guard('decode', () => this.lib.decode([id], { clean_up_tokenization_spaces: false })));
  }
}

/**
 * Load a `tokenizer.json`. BOS/EOS come from `tokenizer_config.json` and `config.json` /
 * `generation_config.json` in the same directory when present.
 *
 * @example
 * const tok = loadHfTokenizer('../shared/tokenizers/llama2-32k/tokenizer.json');
 * tok.decode(tok.encode('Hello world')); // 'Hello world'
 */
export function loadHfTokenizer(file: string): HfTokenizer {
  const json = readJsonFile(file);
  if (!isPlainObject(json)) throw new FormatError(file, 'tokenizer.json is not a JSON object');
  if (!isPlainObject(json.model)) throw new FormatError(file, "tokenizer.json has no 'model' object");
  const dir = path.dirname(file);
  const tokConfig = readSidecar(dir, 'tokenizer_config.json');
  const modelConfig = { ...readSidecar(dir, 'config.json') };
  const gen = readSidecar(dir, 'generation_config.json');
  if (gen.eos_token_id !== undefined) modelConfig.eos_token_id = [...idList(modelConfig.eos_token_id), ...idList(gen.eos_token_id)];
  let lib: HfLib;
  try {
    lib = new HfLib(json, tokConfig);
  } catch (e) {
    throw new FormatError(file, `malformed tokenizer.json (${(e as Error).message})`, { cause: e });
  }
  try {
    return new HfTokenizer(lib, json, file, tokConfig, modelConfig);
  } catch (e) {
    if (e instanceof FormatError) throw e;
    throw new FormatError(file, `malformed tokenizer.json (${(e as Error).message})`, { cause: e });
  }
}
