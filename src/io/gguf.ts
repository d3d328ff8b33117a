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

/** Read and validate a GGUF file's header, metadata and tensor table (not the tensor data). */
export function readGgufHeader(file: string): GgufFile {
  const fd = openForRead(file);
  try {
    const size = fileSize(fd, file);
    // Headers of real models (big vocabularies) run to a few MB; read up to 64 MiB of it.
    const headLen = Math.min(size, 64 << 20);
    const buf = Buffer.alloc(headLen);
    readExact(fd, file, buf, 0, 'GGUF header');
    let p = 0;
    const need = (n: number, what: string) => {
      if (p + n > buf.length) throw new FormatError(file, `truncated GGUF header while reading ${what} at byte ${p}`);
    };
    const u32 = (what: string) => { need(4, what); const v = buf.readUInt32LE(p); p += 4; return v; };
    const u64 = (what: string) => {
      need(8, what);
      const v = buf.readBigUInt64LE(p);
      p += 8;
      if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new FormatError(file, `${what} ${v} is too large`);
      return Number(v);
    };
    const str = (what: string) => {
      const n = u64(`${what} length`);
      need(n, what);
      const s = buf.toString('utf8', p, p + n);
      p += n;
      return s;
    };
    const scalar = (t: number, what: string): unknown => {
      switch (t) {
        case GgufType.UINT8: need(1, what); return buf.readUInt8(p++);
        case GgufType.INT8: need(1, what); return buf.readInt8(p++);
        case GgufType.UINT16: { need(2, what); const v = buf.readUInt16LE(p); p += 2; return v; }
        case GgufType.INT16: { need(2, what); const v = buf.readInt16LE(p); p += 2; return v; }
        case GgufType.UINT32: return u32(what);
        case GgufType.INT32: { need(4, what); const v = buf.readInt32LE(p); p += 4; return v; }
        case GgufType.FLOAT32: { need(4, what); const v = buf.readFloatLE(p); p += 4; return v; }
        case GgufType.FLOAT64: { need(8, what); const v = buf.readDoubleLE(p); p += 8; return v; }
        case GgufType.UINT64: { need(8, what); const v = buf.readBigUInt64LE(p); p += 8; return v; }
        case GgufType.INT64: { need(8, what); const v = buf.readBigInt64LE(p); p += 8; return v; }
        case GgufType.BOOL: need(1, what); return buf.readUInt8(p++) !== 0;
        case GgufType.STRING: return str(what);
        default: throw new FormatError(file, `${what}: unknown GGUF value type ${t}`);
      }
    };
    if (u32('magic') !== GGUF_MAGIC) throw new FormatError(file, 'not a GGUF file (bad magic)');
    const version = u32('version');
    if (version !== 2 && version !== 3) throw new FormatError(file, `unsupported GGUF version ${version}`);
    const nTensors = u64('tensor count');
    const nKv = u64('metadata count');
    if (nKv > 1e6 || nTensors > 1e6) throw new FormatError(file, `implausible counts (${nTensors} tensors, ${nKv} metadata entries)`);
    const metadata = new Map<string, unknown>();
    for (let i = 0; i < nKv; i++) {
      const key = str(`metadata key ${i}`);
      const t = u32(`type of '${key}'`);
      if (t === GgufType.ARRAY) {
        const et = u32(`element type of '${key}'`);
        const n = u64(`length of '${key}'`);
        if (n > buf.length) throw new FormatError(file, `array '${key}' claims ${n} elements`);
        const arr: unknown[] = [];
        for (let j = 0; j < n; j++) arr.push(scalar(et, `'${key}'[${j}]`));
        metadata.set(key, arr);
      } else {
        metadata.set(key, scalar(t, `'${key}'`));
      }
    }
    const infos: Omit<GgufTensorInfo, 'byteLength'>[] = [];
    for (let i = 0; i < nTensors; i++) {
      const name = str(`tensor ${i} name`);
      const nd = u32(`dims of '${name}'`);
      if (nd < 1 || nd > 4) throw new FormatError(file, `tensor '${name}' has ${nd} dimensions`);
      const dims: number[] = [];
      for (let d = 0; d < nd; d++) dims.push(u64(`dim ${d} of '${name}'`));
      const type = u32(`type of '${name}'`);
      if (type !== GgmlType.F32 && type !== GgmlType.F16) throw new FormatError(file, `tensor '${name}' has ggml type ${type} (only F32/F16 are read)`);
      infos.push({ name, shape: dims.reverse(), type, offset: u64(`offset of '${name}'`) });
    }
    const align = Number(metadata.get('general.alignment') ?? GGUF_ALIGNMENT);
    const dataStart = Math.ceil(p / align) * align;
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
