/**
 * Small file helpers shared by the loaders: typed I/O errors, JSON reading, atomic writes.
 */
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { FormatError, IoError } from '../errors.js';

/** The errno code of an fs failure (without the path Node repeats in its message), else the error as text. */
export function fsReason(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  return err && typeof err.code === 'string' ? err.code : String(e);
}

/** True if `p` exists and is a directory (no throw). */
export function isDirectory(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** True if `p` exists and is a regular file (no throw). */
export function isFile(p: string): boolean {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

/** `fs.openSync` for reading, with an {@link IoError} naming the file. */
export function openForRead(file: string): number {
  try {
    return fs.openSync(file, 'r');
  } catch (e) {
    throw new IoError(file, `cannot open (${fsReason(e)})`, { cause: e });
  }
}

/** Size in bytes of an open file, with an {@link IoError} naming it on failure. */
export function fileSize(fd: number, file: string): number {
  try {
    return fs.fstatSync(fd).size;
  } catch (e) {
    throw new IoError(file, `cannot stat (${fsReason(e)})`, { cause: e });
  }
}

/**
 * Fill `dst` from `fd` at `position`, looping because one readSync call reads at most ~2 GiB
 * and may return short counts. A short file is a {@link FormatError}, naming `what`.
 */
export function readExact(fd: number, file: string, dst: Uint8Array, position: number, what: string): void {
  const CHUNK = 1 << 30;
  let done = 0;
  while (done < dst.length) {
    const len = Math.min(CHUNK, dst.length - done);
    let n: number;
    try {
      n = fs.readSync(fd, dst, done, len, position + done);
    } catch (e) {
      throw new IoError(file, `read failed for ${what} (${fsReason(e)})`, { cause: e });
    }
    if (n === 0) throw new FormatError(file, `unexpected end of file while reading ${what} (byte ${position + done})`);
    done += n;
  }
}

/** Read and parse a JSON file; malformed JSON is a {@link FormatError} naming the file. */
export function readJsonFile(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new IoError(file, `cannot read (${fsReason(e)})`, { cause: e });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new FormatError(file, `invalid JSON (${(e as Error).message})`, { cause: e });
  }
}

/** A JSON object (not null, not an array). */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Write a file so readers never see a partial one: write a temp file in the same directory
 * (rename is only atomic within one filesystem), fsync it, then rename over the target.
 * `write` gets the open fd of the temp file.
 */
export function writeAtomic(file: string, write: (fd: number) => void): void {
  const dir = path.dirname(path.resolve(file));
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'wx');
    write(fd);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, file);
  } catch (e) {
    if (fd !== undefined) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    // fs failures (ENOSPC, EACCES, ...) become typed; errors thrown by `write` itself pass through.
    if (typeof (e as NodeJS.ErrnoException | undefined)?.syscall === 'string') {
      throw new IoError(file, `write failed (${fsReason(e)})`, { cause: e });
    }
    throw e;
  }
  // Persist the rename itself; not possible on every platform, so best effort.
  try {
    const dfd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(dfd);
    } finally {
      fs.closeSync(dfd);
    }
  } catch {
    /* directory fsync unsupported (e.g. Windows) */
  }
}

/** Write all of `data` to `fd`, chunked for the same ~2 GiB per-call limit as reads. */
export function writeAll(fd: number, data: Uint8Array): void {
  const CHUNK = 1 << 30;
  let done = 0;
  while (done < data.length) {
    done += fs.writeSync(fd, data, done, Math.min(CHUNK, data.length - done));
  }
}

/**
 * Append one whole line (a metrics record) with a single write; if the disk fills part-way, the partial bytes are cut
 * off again so the file never ends in a torn line, and the failure is an {@link IoError} naming the file.
 */
export function appendLine(file: string, line: string): void {
  const data = Buffer.from(line.endsWith('\n') ? line : `${line}\n`, 'utf8');
  let fd: number | undefined;
  let size = 0;
  try {
    fd = fs.openSync(file, 'a');
    size = fs.fstatSync(fd).size;
    const n = fs.writeSync(fd, data, 0, data.length);
    if (n !== data.length) throw Object.assign(new Error('short write'), { code: 'ENOSPC', syscall: 'write' });
  } catch (e) {
    if (fd !== undefined) {
      try {
        fs.ftruncateSync(fd, size);
      } catch {
        /* nothing more to do: resume drops a torn last line */
      }
    }
    throw new IoError(file, `append failed (${fsReason(e)})`, { cause: e });
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Atomically write a text file (JSON configs). */
export function writeTextAtomic(file: string, text: string): void {
  writeAtomic(file, (fd) => writeAll(fd, Buffer.from(text, 'utf8')));
}

/**
 * Text from bytes that must be UTF-8: a {@link FormatError} naming the file and the byte offset of the first byte that
 * is not (or of a NUL byte, which text never holds: the file is binary).
 */
export function decodeUtf8Text(buf: Uint8Array, file: string): string {
  const bad = firstNonText(buf);
  if (bad >= 0) {
    const what = buf[bad] === 0 ? 'a NUL byte' : `byte 0x${buf[bad].toString(16).padStart(2, '0')}, which is not UTF-8`;
    throw new FormatError(file, `not UTF-8 text: ${what} at byte offset ${bad}`);
  }
  return Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength).toString('utf8');
}

/** Offset of the first byte that breaks UTF-8 (or is NUL), else −1. */
function firstNonText(b: Uint8Array): number {
  const n = b.length;
  let i = 0;
  while (i < n) {
    const c = b[i];
    if (c < 0x80) {
      if (c === 0) return i;
      i++;
      continue;
    }
    const len = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (len === 0 || i + len > n) return i;
    const c1 = b[i + 1];
    // Overlong forms, surrogates and code points above U+10FFFF are excluded by the second byte's range.
    const lo = c === 0xe0 ? 0xa0 : c === 0xf0 ? 0x90 : 0x80;
    const hi = c === 0xed ? 0x9f : c === 0xf4 ? 0x8f : 0xbf;
    if (c1 < lo || c1 > hi) return i;
    for (let k = 2; k < len; k++) if ((b[i + k] & 0xc0) !== 0x80) return i;
    i += len;
  }
  return -1;
}
