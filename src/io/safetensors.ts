/**
 * Safetensors reader and writer (https://huggingface.co/docs/safetensors).
 * Layout: u64 little-endian header length N, N bytes of JSON header, then the raw tensor bytes.
 * The reader parses only the header up front and reads each tensor on demand into its own buffer,
 * because checkpoints can be many GB and must never be read into one buffer.
 */
import fs from 'node:fs';
import os from 'node:os';
import { DTYPE_BYTES, bf16ToF32, f16ToF32, type DType } from '../tensor/dtype.js';
import { DTypeError, CheckpointError, FormatError, UnsupportedError } from '../errors.js';
import { numel } from '../tensor/tensor.js';
import { fileSize, isPlainObject, openForRead, readExact, writeAll, writeAtomic } from './fsutil.js';

/** A loaded tensor. `data` is f32 values for 'f32', raw IEEE-half / bfloat16 bits for 'f16' / 'bf16'. */
export interface TensorData {
  dtype: DType;
  shape: number[];
  data: Float32Array | Uint16Array;
}

/** Safetensors dtype spellings we can read. Non-float ones (and F64) are converted to f32 on read. */
export type StoredDType = 'F32' | 'F16' | 'BF16' | 'F64' | 'I8' | 'U8' | 'I16' | 'U16' | 'I32' | 'U32' | 'I64' | 'U64' | 'BOOL';

const STORED_BYTES: Readonly<Record<StoredDType, number>> = {
  F32: 4, F16: 2, BF16: 2, F64: 8, I8: 1, U8: 1, I16: 2, U16: 2, I32: 4, U32: 4, I64: 8, U64: 8, BOOL: 1,
};

/** Where one tensor lives. `dtype` is what {@link TensorSource.read} returns; `storedDtype` is the file's spelling. */
export interface TensorInfo {
  dtype: DType;
  storedDtype: StoredDType;
  shape: number[];
  /** Absolute byte offset of the tensor data in `file`. */
  byteOffset: number;
  byteLength: number;
  file: string;
}

/** An open safetensors file, or a combined view over the shards of an index. */
export interface TensorSource {
  readonly path: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  /** Read one tensor from disk into a fresh buffer. */
  read(name: string): TensorData;
  close(): void;
}

/** The largest header accepted; the reference implementation uses the same cap. */
const MAX_HEADER_BYTES = 100_000_000;

function checkLittleEndian(): void {
  // Typed arrays use host byte order and safetensors is little-endian; all supported Node targets are LE.
  if (os.endianness() !== 'LE') throw new UnsupportedError('safetensors', 'host endianness', os.endianness());
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function toDType(stored: StoredDType): DType {
  return stored === 'F16' ? 'f16' : stored === 'BF16' ? 'bf16' : 'f32';
}

/** Parse and validate a header; every problem found is reported in one {@link FormatError}. */
function parseHeader(file: string, header: unknown, dataStart: number, size: number): { metadata: Record<string, string>; tensors: Map<string, TensorInfo> } {
  if (!isPlainObject(header)) throw new FormatError(file, 'safetensors header is not a JSON object');
  const problems: string[] = [];
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, TensorInfo>();
  const spans: { name: string; begin: number; end: number }[] = [];
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (!isPlainObject(entry)) problems.push(`__metadata__ is not an object`);
      else for (const [k, v] of Object.entries(entry)) {
        if (typeof v !== 'string') problems.push(`__metadata__.${k} is not a string`);
        else metadata[k] = v;
      }
      continue;
    }
    if (!isPlainObject(entry)) {
      problems.push(`tensor '${name}': entry is not an object`);
      continue;
    }
    const { dtype, shape, data_offsets: offs } = entry;
    if (typeof dtype !== 'string') {
      problems.push(`tensor '${name}': dtype missing or not a string`);
      continue;
    }
    if (!Object.hasOwn(STORED_BYTES, dtype)) {
      throw new UnsupportedError(file, `dtype of tensor '${name}'`, dtype, 'supported: F32, F16, BF16; F64 and integer types convert to f32');
    }
    const stored = dtype as StoredDType;
    if (!Array.isArray(shape) || !shape.every(isCount)) {
      problems.push(`tensor '${name}': shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
      continue;
    }
    if (!Array.isArray(offs) || offs.length !== 2 || !isCount(offs[0]) || !isCount(offs[1]) || offs[1] < offs[0]) {
      problems.push(`tensor '${name}': data_offsets ${JSON.stringify(offs)} is not [begin, end] with 0 <= begin <= end`);
      continue;
    }
    const [begin, end] = offs as [number, number];
    const dims = shape as number[];
    const want = numel(dims) * STORED_BYTES[stored];
    if (end - begin !== want) {
      problems.push(`tensor '${name}': data_offsets [${begin}, ${end}] span ${end - begin} bytes but ${stored}[${dims.join(', ')}] needs ${want}`);
      continue;
    }
    if (dataStart + end > size) {
      problems.push(`tensor '${name}': data_offsets [${begin}, ${end}] end past the file (data section is ${size - dataStart} bytes; truncated file?)`);
      continue;
    }
    if (end > begin) spans.push({ name, begin, end });
    tensors.set(name, { dtype: toDType(stored), storedDtype: stored, shape: dims, byteOffset: dataStart + begin, byteLength: want, file });
  }
  spans.sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < spans.length; i++) {
    const a = spans[i - 1];
    const b = spans[i];
    if (b.begin < a.end) problems.push(`tensors '${a.name}' [${a.begin}, ${a.end}) and '${b.name}' [${b.begin}, ${b.end}) overlap`);
  }
  if (problems.length > 0) {
    throw new FormatError(file, `invalid safetensors header: ${problems.length === 1 ? problems[0] : `\n  - ${problems.join('\n  - ')}`}`);
  }
  return { metadata, tensors };
}

/** Convert stored bytes of a non-native dtype to f32, refusing integers that f32 cannot hold exactly. */
function convertToF32(file: string, name: string, stored: StoredDType, bytes: Uint8Array, n: number): Float32Array {
  const buf = bytes.buffer;
  const src: ArrayLike<number | bigint> =
    stored === 'F64' ? new Float64Array(buf, 0, n)
    : stored === 'I8' ? new Int8Array(buf, 0, n)
    : stored === 'U8' || stored === 'BOOL' ? new Uint8Array(buf, 0, n)
    : stored === 'I16' ? new Int16Array(buf, 0, n)
    : stored === 'U16' ? new Uint16Array(buf, 0, n)
    : stored === 'I32' ? new Int32Array(buf, 0, n)
    : stored === 'U32' ? new Uint32Array(buf, 0, n)
    : stored === 'I64' ? new BigInt64Array(buf, 0, n)
    : new BigUint64Array(buf, 0, n);
  const out = new Float32Array(n);
  const exact = stored !== 'F64';
  for (let i = 0; i < n; i++) {
    const v = src[i];
    const x = typeof v === 'bigint' ? Number(v) : v;
    out[i] = x;
    if (exact && (out[i] !== x || (typeof v === 'bigint' && BigInt(x) !== v))) {
      throw new FormatError(file, `tensor '${name}' (${stored}) element ${i} = ${v} is not exactly representable as f32`);
    }
  }
  return out;
}

/**
 * Open a `.safetensors` file: reads and validates only the header; tensors are read on demand.
 * Call `close()` when done (the file descriptor stays open until then).
 *
 * @example
 * const st = openSafetensors('model.safetensors');
 * try { const emb = st.read('model.embed_tokens.weight'); } finally { st.close(); }
 */
export function openSafetensors(file: string): TensorSource {
  checkLittleEndian();
  const fd = openForRead(file);
  try {
    const size = fileSize(fd, file);
    if (size < 8) throw new FormatError(file, `file is ${size} bytes, too short for a safetensors header length`);
    const lenBuf = new Uint8Array(8);
    readExact(fd, file, lenBuf, 0, 'header length');
    const n = new DataView(lenBuf.buffer).getBigUint64(0, true);
    if (n < 2n || n > BigInt(Math.min(MAX_HEADER_BYTES, size - 8))) {
      throw new FormatError(file, `header length ${n} is invalid (file is ${size} bytes, header must be 2..${Math.min(MAX_HEADER_BYTES, size - 8)} bytes)`);
    }
    const headerLen = Number(n);
    const hbytes = new Uint8Array(headerLen);
    readExact(fd, file, hbytes, 8, 'header');
    let header: unknown;
    try {
      header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(hbytes));
    } catch (e) {
      throw new FormatError(file, `safetensors header is not valid UTF-8 JSON (${(e as Error).message})`, { cause: e });
    }
    const { metadata, tensors } = parseHeader(file, header, 8 + headerLen, size);
    let open = true;
    return {
      path: file,
      metadata: Object.freeze(metadata),
      tensors,
      read(name: string): TensorData {
        const info = tensors.get(name);
        if (!info) throw new CheckpointError(file, [`no tensor named '${name}'`]);
        if (!open) throw new FormatError(file, `read of '${name}' after close()`);
        const count = numel(info.shape);
        if (info.storedDtype === 'F32' || info.storedDtype === 'F16' || info.storedDtype === 'BF16') {
          const data = info.dtype === 'f32' ? new Float32Array(count) : new Uint16Array(count);
          readExact(fd, file, new Uint8Array(data.buffer), info.byteOffset, `tensor '${name}'`);
          return { dtype: info.dtype, shape: [...info.shape], data };
        }
        const bytes = new Uint8Array(info.byteLength);
        readExact(fd, file, bytes, info.byteOffset, `tensor '${name}'`);
        return { dtype: 'f32', shape: [...info.shape], data: convertToF32(file, name, info.storedDtype, bytes, count) };
      },
      close(): void {
        if (open) fs.closeSync(fd);
        open = false;
      },
    };
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

const STORED_NAME: Readonly<Record<DType, StoredDType>> = { f32: 'F32', f16: 'F16', bf16: 'BF16' };

/** Check that a TensorData is self-consistent before it is written. */
export function checkTensorData(where: string, name: string, t: TensorData): void {
  const wantArray = t.dtype === 'f32' ? Float32Array : Uint16Array;
  if (!(t.data instanceof wantArray)) {
    throw new DTypeError(where, `tensor '${name}' has dtype ${t.dtype} but its data is a ${t.data.constructor.name}`);
  }
  if (!t.shape.every(isCount) || numel(t.shape) !== t.data.length) {
    throw new FormatError(where, `tensor '${name}' has shape [${t.shape.join(', ')}] but ${t.data.length} elements`);
  }
}

/** Serialize the header: data offsets in iteration order, padded with spaces to 8-byte alignment like HF does. */
export function buildHeader(file: string, tensors: readonly (readonly [string, TensorData])[], metadata?: Readonly<Record<string, string>>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = { ...metadata };
  let offset = 0;
  for (const [name, t] of tensors) {
    if (name === '__metadata__' || Object.hasOwn(header, name)) throw new FormatError(file, `duplicate or reserved tensor name '${name}'`);
    checkTensorData(file, name, t);
    const bytes = t.data.length * DTYPE_BYTES[t.dtype];
    header[name] = { dtype: STORED_NAME[t.dtype], shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  const len = Buffer.byteLength(json, 'utf8');
  json += ' '.repeat((8 - ((8 + len) % 8)) % 8);
  const body = Buffer.from(json, 'utf8');
  const out = new Uint8Array(8 + body.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(body.length), true);
  out.set(body, 8);
  return out;
}

/**
 * Write tensors to a `.safetensors` file atomically (temp file in the same directory, fsync, rename).
 * Tensors are written in iteration order; f16/bf16 data is written as raw bits.
 *
 * @example
 * writeSafetensors('out.safetensors', [['w', { dtype: 'f32', shape: [2], data: new Float32Array([1, 2]) }]], { format: 'pt' });
 */
export function writeSafetensors(file: string, tensors: Iterable<readonly [string, TensorData]>, metadata?: Readonly<Record<string, string>>): void {
  checkLittleEndian();
  const list = [...tensors];
  const header = buildHeader(file, list, metadata);
  writeAtomic(file, (fd) => {
    writeAll(fd, header);
    for (const [, t] of list) writeAll(fd, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  });
}

/** Convert any TensorData to f32 values (copying only when the dtype is half precision). */
export function toF32(t: TensorData): Float32Array {
  if (t.dtype === 'f32') return t.data as Float32Array;
  return t.dtype === 'f16' ? f16ToF32(t.data as Uint16Array) : bf16ToF32(t.data as Uint16Array);
}
