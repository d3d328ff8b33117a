/**
 * GGUF v3 (llama.cpp's file format): a writer for unshared Llama models and a validating reader.
 *
 * Layout: magic "GGUF", version u32, tensor count u64, metadata count u64, metadata key/values, tensor infos
 * (name, n_dims, dims innermost-first, ggml type, offset), padding to `general.alignment` (32), tensor data (each
 * tensor aligned). Strings are u64 length + UTF-8 bytes. All little-endian.
 */
import fs from 'node:fs';
import { openForRead, fileSize, readExact, writeAll, writeAtomic } from './fsutil.js';
import { FormatError } from '../errors.js';

export const GGUF_MAGIC = 0x46554747; // "GGUF" little-endian
export const GGUF_ALIGNMENT = 32;

export enum GgufType {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7, STRING = 8, ARRAY = 9,
  UINT64 = 10, INT64 = 11, FLOAT64 = 12,
}

/** ggml tensor types we write/read. */
export enum GgmlType {
  F32 = 0,
  F16 = 1,
}

export type GgufValue =
  | { type: GgufType.UINT32 | GgufType.INT32 | GgufType.FLOAT32 | GgufType.UINT8 | GgufType.INT8 | GgufType.UINT16 | GgufType.INT16 | GgufType.FLOAT64; value: number }
  | { type: GgufType.UINT64 | GgufType.INT64; value: bigint }
  | { type: GgufType.BOOL; value: boolean }
  | { type: GgufType.STRING; value: string }
  | { type: GgufType.ARRAY; elemType: GgufType; value: (number | bigint | boolean | string)[] | Float32Array | Int32Array };

export interface GgufTensorOut {
  name: string;
  /** PyTorch-order shape (outermost first); written innermost-first as ggml wants. */
  shape: number[];
  type: GgmlType;
  /** Raw little-endian bytes of the tensor (f32 or f16). */
  data: Uint8Array;
}

class Writer {
  private chunks: Buffer[] = [];
  length = 0;
  push(b: Buffer): void {
    this.chunks.push(b);
    this.length += b.length;
  }
  u32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v >>> 0);
    this.push(b);
  }
  i32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeInt32LE(v);
    this.push(b);
  }
  u64(v: number | bigint): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }
  f32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeFloatLE(v);
    this.push(b);
  }
  str(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.push(b);
  }
  scalar(type: GgufType, v: number | bigint | boolean | string): void {
    switch (type) {
      case GgufType.UINT8: this.push(Buffer.from([Number(v) & 0xff])); break;
      case GgufType.INT8: { const b = Buffer.alloc(1); b.writeInt8(Number(v)); this.push(b); break; }
      case GgufType.UINT16: { const b = Buffer.alloc(2); b.writeUInt16LE(Number(v)); this.push(b); break; }
      case GgufType.INT16: { const b = Buffer.alloc(2); b.writeInt16LE(Number(v)); this.push(b); break; }
      case GgufType.UINT32: this.u32(Number(v)); break;
      case GgufType.INT32: this.i32(Number(v)); break;
      case GgufType.FLOAT32: this.f32(Number(v)); break;
      case GgufType.FLOAT64: { const b = Buffer.alloc(8); b.writeDoubleLE(Number(v)); this.push(b); break; }
      case GgufType.UINT64: this.u64(BigInt(v as bigint | number)); break;
      case GgufType.INT64: { const b = Buffer.alloc(8); b.writeBigInt64LE(BigInt(v as bigint | number)); this.push(b); break; }
      case GgufType.BOOL: this.push(Buffer.from([v ? 1 : 0])); break;
      case GgufType.STRING: this.str(String(v)); break;
      default: throw new Error(`cannot write GGUF scalar of type ${type}`);
    }
  }
  pad(align: number): void {
    const r = this.length % align;
    if (r) this.push(Buffer.alloc(align - r));
  }
  buffers(): Buffer[] {
    return this.chunks;
  }
}

/**
 * Write a GGUF v3 file atomically (temp file + rename).
 *
 * @example
 * ```ts
 * writeGguf('model.gguf', new Map([['general.architecture', { type: GgufType.STRING, value: 'llama' }]]), tensors);
 * ```
 */
export function writeGguf(file: string, metadata: ReadonlyMap<string, GgufValue>, tensors: readonly GgufTensorOut[]): void {
  const w = new Writer();
  w.u32(GGUF_MAGIC);
  w.u32(3);
  w.u64(tensors.length);
  w.u64(metadata.size);
  for (const [key, v] of metadata) {
    w.str(key);
    w.u32(v.type);
    if (v.type === GgufType.ARRAY) {
      w.u32(v.elemType);
      w.u64(v.value.length);
      for (const x of v.value) w.scalar(v.elemType, x);
    } else {
      w.scalar(v.type, v.value);
    }
  }
  let offset = 0;
  for (const t of tensors) {
    w.str(t.name);
    w.u32(t.shape.length);
    for (const d of [...t.shape].reverse()) w.u64(d);
    w.u32(t.type);
    w.u64(offset);
    offset += Math.ceil(t.data.length / GGUF_ALIGNMENT) * GGUF_ALIGNMENT;
  }
  w.pad(GGUF_ALIGNMENT);
  writeAtomic(file, (fd) => {
    for (const b of w.buffers()) writeAll(fd, b);
    for (const t of tensors) {
      writeAll(fd, t.data);
      const r = t.data.length % GGUF_ALIGNMENT;
      if (r) writeAll(fd, Buffer.alloc(GGUF_ALIGNMENT - r));
    }
  });
}

export interface GgufTensorInfo {
  name: string;
  /** PyTorch order (outermost first). */
  shape: number[];
  type: GgmlType;
  /** Absolute byte offset in the file. */
  offset: number;
  byteLength: number;
}

export interface GgufFile {
  version: number;
  metadata: Map<string, unknown>;
  tensors: Map<string, GgufTensorInfo>;
}

/** A cursor over the bytes of a GGUF header; every read past the end is a FormatError naming what was being read. */
class HeaderCursor {
  p = 0;
  constructor(private readonly buf: Buffer, private readonly file: string) {}
  private need(n: number, what: string): void {
    if (this.p + n > this.buf.length) throw new FormatError(this.file, `truncated GGUF header while reading ${what} at byte ${this.p}`);
  }
  private take<T>(n: number, what: string, read: (at: number) => T): T {
    this.need(n, what);
    const v = read(this.p);
    this.p += n;
    return v;
  }
  u32(what: string): number {
    return this.take(4, what, (at) => this.buf.readUInt32LE(at));
  }
  u64(what: string): number {
    const v = this.take(8, what, (at) => this.buf.readBigUInt64LE(at));
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new FormatError(this.file, `${what} ${v} is too large`);
    return Number(v);
  }
  str(what: string): string {
    const n = this.u64(`${what} length`);
    return this.take(n, what, (at) => this.buf.toString('utf8', at, at + n));
  }
  scalar(t: number, what: string): unknown {
    const b = this.buf;
    switch (t) {
      case GgufType.UINT8: return this.take(1, what, (at) => b.readUInt8(at));
      case GgufType.INT8: return this.take(1, what, (at) => b.readInt8(at));
      case GgufType.UINT16: return this.take(2, what, (at) => b.readUInt16LE(at));
      case GgufType.INT16: return this.take(2, what, (at) => b.readInt16LE(at));
      case GgufType.UINT32: return this.u32(what);
      case GgufType.INT32: return this.take(4, what, (at) => b.readInt32LE(at));
      case GgufType.FLOAT32: return this.take(4, what, (at) => b.readFloatLE(at));
      case GgufType.FLOAT64: return this.take(8, what, (at) => b.readDoubleLE(at));
      case GgufType.UINT64: return this.take(8, what, (at) => b.readBigUInt64LE(at));
      case GgufType.INT64: return this.take(8, what, (at) => b.readBigInt64LE(at));
      case GgufType.BOOL: return this.take(1, what, (at) => b.readUInt8(at) !== 0);
      case GgufType.STRING: return this.str(what);
      default: throw new FormatError(this.file, `${what}: unknown GGUF value type ${t}`);
    }
  }
  get length(): number {
    return this.buf.length;
  }
}

function readMetadata(c: HeaderCursor, file: string, nKv: number): Map<string, unknown> {
  const metadata = new Map<string, unknown>();
  for (let i = 0; i < nKv; i++) {
    const key = c.str(`metadata key ${i}`);
    const t = c.u32(`type of '${key}'`);
    if (t !== GgufType.ARRAY) {
      metadata.set(key, c.scalar(t, `'${key}'`));
      continue;
    }
    const et = c.u32(`element type of '${key}'`);
    const n = c.u64(`length of '${key}'`);
    if (n > c.length) throw new FormatError(file, `array '${key}' claims ${n} elements`);
    const arr: unknown[] = [];
    for (let j = 0; j < n; j++) arr.push(c.scalar(et, `'${key}'[${j}]`));
    metadata.set(key, arr);
  }
  return metadata;
}

function readTensorInfos(c: HeaderCursor, file: string, nTensors: number): Omit<GgufTensorInfo, 'byteLength'>[] {
  const infos: Omit<GgufTensorInfo, 'byteLength'>[] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = c.str(`tensor ${i} name`);
    const nd = c.u32(`dims of '${name}'`);
    if (nd < 1 || nd > 4) throw new FormatError(file, `tensor '${name}' has ${nd} dimensions`);
    const dims: number[] = [];
    for (let d = 0; d < nd; d++) dims.push(c.u64(`dim ${d} of '${name}'`));
    const type = c.u32(`type of '${name}'`);
    if (type !== GgmlType.F32 && type !== GgmlType.F16) throw new FormatError(file, `tensor '${name}' has ggml type ${type} (only F32/F16 are read)`);
    infos.push({ name, shape: dims.reverse(), type, offset: c.u64(`offset of '${name}'`) });
  }
  return infos;
}

/** Read and validate a GGUF file's header, metadata and tensor table (not the tensor data). */
export function readGgufHeader(file: string): GgufFile {
  const fd = openForRead(file);
  try {
    const size = fileSize(fd, file);
    // Headers of real models (big vocabularies) run to a few MB; read up to 64 MiB of it.
    const buf = Buffer.alloc(Math.min(size, 64 << 20));
    readExact(fd, file, buf, 0, 'GGUF header');
    const c = new HeaderCursor(buf, file);
    if (c.u32('magic') !== GGUF_MAGIC) throw new FormatError(file, 'not a GGUF file (bad magic)');
    const version = c.u32('version');
    if (version !== 2 && version !== 3) throw new FormatError(file, `unsupported GGUF version ${version}`);
    const nTensors = c.u64('tensor count');
    const nKv = c.u64('metadata count');
    if (nKv > 1e6 || nTensors > 1e6) throw new FormatError(file, `implausible counts (${nTensors} tensors, ${nKv} metadata entries)`);
    const metadata = readMetadata(c, file, nKv);
    const infos = readTensorInfos(c, file, nTensors);
    const align = Number(metadata.get('general.alignment') ?? GGUF_ALIGNMENT);
    const dataStart = Math.ceil(c.p / align) * align;
    const tensors = new Map<string, GgufTensorInfo>();
    for (const t of infos) {
      const byteLength = t.shape.reduce((a, b) => a * b, 1) * (t.type === GgmlType.F32 ? 4 : 2);
      const offset = dataStart + t.offset;
      if (offset + byteLength > size) throw new FormatError(file, `tensor '${t.name}' data [${offset}, ${offset + byteLength}) is past the end of the file (${size} bytes)`);
      if (tensors.has(t.name)) throw new FormatError(file, `duplicate tensor '${t.name}'`);
      tensors.set(t.name, { ...t, offset, byteLength });
    }
    return { version, metadata, tensors };
  } finally {
    fs.closeSync(fd);
  }
}
