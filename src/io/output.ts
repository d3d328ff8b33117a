/**
 * Where output goes: the one output policy of every command that writes.
 *
 * An output folder is either new (or empty), or one an earlier run of the same command wrote — recognised by the
 * manifest it writes before anything else (`.echoatt-output.json`, listing the top-level files and folders the runs
 * wrote) — and then only with `resume` (continue) or `force` (replace: deletes only what the manifest lists, and is
 * refused when the folder holds anything else or an input of the command). Anything else is refused with an
 * {@link OutputError} naming the folder and its files. A run holds an exclusive lock file (`.echoatt.lock`, created
 * with O_EXCL, holding pid and host) until it exits; a second run into the folder is refused at once, and a lock left
 * by a dead process is reported and broken only with `force`. The policy and writability are checked when the folder
 * is opened, before any computation; a folder this run created and left without output is removed again.
 *
 * @example
 * ```ts
 * const out = OutputFolder.open('runs/student', { command: 'share', force: false, inputs: [modelPath] });
 * saveModel(out.dir, student);
 * out.close(); // records what was written, releases the lock
 * ```
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { IoError, OutputError } from '../errors.js';
import { fsReason, writeTextAtomic } from './fsutil.js';

export const MANIFEST = '.echoatt-output.json';
export const LOCK = '.echoatt.lock';
/** Temporary files of `writeAtomic` left by a killed process: `.<name>.<pid>.<hex>.tmp`. */
const TEMP = /^\..+\.\d+\.[0-9a-f]{8}\.tmp$/;

interface Manifest {
  format: 'echoatt-output';
  version: 1;
  command: string;
  created: string;
  files: string[];
}

interface LockInfo {
  pid: number;
  host: string;
  command: string;
  started: string;
}

export interface OutputOptions {
  /** The command writing (`distill`, `pipeline`, ...): only its own earlier runs are continued or replaced. */
  command: string;
  /** Continue an earlier run of this command in the folder. */
  resume?: boolean;
  /** Replace an earlier run (without `resume`), or break a stale lock. */
  force?: boolean;
  /** Paths the command reads: none may lie inside the output folder. */
  inputs?: readonly (string | undefined)[];
  /** The flag that named the folder, for messages. */
  flag?: string;
  /** Whether this command has `--resume` (for the advice in messages). */
  resumable?: boolean;
}

const openFolders = new Set<OutputFolder>();
let exitHookInstalled = false;

/** An output folder held by this process under the policy above. */
export class OutputFolder {
  private closed = false;
  private readonly before: Set<string>;

  private constructor(readonly dir: string, readonly created: boolean, readonly resumed: boolean, private manifest: Manifest) {
    this.before = new Set(entries(dir));
  }

  /** Apply the policy to `dir`, take its lock and write its manifest; throws {@link OutputError} / {@link IoError}. */
  static open(dir: string, o: OutputOptions): OutputFolder {
    const abs = path.resolve(dir);
    const flag = o.flag ?? '--out';
    const created = ensureFolder(abs, flag);
    try {
      takeLock(abs, o);
    } catch (e) {
      if (created) fs.rmSync(abs, { recursive: true, force: true });
      throw e;
    }
    try {
      const { manifest, resumed } = admit(abs, o, flag);
      writeManifest(abs, manifest);
      const f = new OutputFolder(abs, created, resumed, manifest);
      openFolders.add(f);
      installExitHook();
      return f;
    } catch (e) {
      releaseLock(abs);
      if (created) fs.rmSync(abs, { recursive: true, force: true });
      throw e;
    }
  }

  /** A path inside the folder. */
  file(name: string): string {
    return path.join(this.dir, name);
  }

  /** Record every top-level entry that appeared since the folder was opened (so `force` may replace it later). */
  sync(): void {
    const now = entries(this.dir).filter((e) => !this.before.has(e) && !this.manifest.files.includes(e));
    if (!now.length) return;
    this.manifest = { ...this.manifest, files: [...this.manifest.files, ...now].sort() };
    writeManifest(this.dir, this.manifest);
  }

  /** Record what was written and release the lock; a folder this run created and left empty is removed. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    openFolders.delete(this);
    try {
      if (this.created && entries(this.dir).length === 0) {
        fs.rmSync(this.dir, { recursive: true, force: true });
        return;
      }
      this.sync();
    } finally {
      releaseLock(this.dir);
    }
  }
}

/** Close every open folder (on exit, however the process ends short of SIGKILL). */
function closeOutputFolders(): void {
  for (const f of [...openFolders]) {
    try {
      f.close();
    } catch {
      /* exiting anyway: a failed record (disk full) must not hide the error that ended the run */
    }
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', closeOutputFolders);
}

/**
 * A single output file (`convert --to gguf`): refused when it exists unless `force`, always when it is an input.
 */
export function checkOutputFile(file: string, o: { force?: boolean; inputs?: readonly (string | undefined)[]; flag?: string }): void {
  const abs = path.resolve(file);
  const flag = o.flag ?? '--out';
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(abs);
  } catch {
    st = undefined;
  }
  const parent = path.dirname(abs);
  if (!st) {
    ensureFolder(parent, flag);
    if (!writable(parent)) throw new IoError(parent, 'cannot write here (permission denied or read-only)');
    return;
  }
  if (st.isDirectory()) throw new OutputError(file, `${flag} names a folder; give a file name`);
  if ((o.inputs ?? []).some((i) => i !== undefined && path.resolve(i) === abs)) throw new OutputError(file, `${flag} is the input of this command; write to another file`);
  if (!o.force) throw new OutputError(file, `${flag} exists; pass --force to overwrite it`);
}

/** Create `abs` (and parents) when missing; true when it did. A file in the way or an fs failure is a typed error. */
function ensureFolder(abs: string, flag: string): boolean {
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(abs);
  } catch {
    st = undefined;
  }
  if (st) {
    if (!st.isDirectory()) throw new OutputError(abs, `${flag} names an existing file, not a folder; choose a folder`);
    return false;
  }
  try {
    fs.mkdirSync(abs, { recursive: true });
  } catch (e) {
    throw new IoError(abs, `cannot create the output folder (${fsReason(e)})`, { cause: e });
  }
  return true;
}

/** Whether this process may create files in `dir` (as root, permissions do not stop it; a read-only mount does). */
function writable(dir: string): boolean {
  try {
    fs.accessSync(dir, fs.constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** Decide whether this run may use the folder; the manifest to write. */
function admit(abs: string, o: OutputOptions, flag: string): { manifest: Manifest; resumed: boolean } {
  const inside = (o.inputs ?? []).filter((i): i is string => i !== undefined).map((i) => path.resolve(i)).filter((i) => i === abs || i.startsWith(abs + path.sep));
  if (inside.length) throw new OutputError(abs, `${flag} holds an input of this command (${inside.map((i) => path.relative(abs, i) || '.').join(', ')}); write to another folder`);
  const fresh: Manifest = { format: 'echoatt-output', version: 1, command: o.command, created: new Date().toISOString(), files: [] };
  const here = entries(abs);
  if (here.length === 0) return { manifest: fresh, resumed: false };
  const prev = readManifest(abs);
  if (!prev) throw new OutputError(abs, `${flag} is not empty and was not written by echoatt (holds ${list(here)}); choose a new or empty folder`);
  const foreign = here.filter((e) => !prev.files.includes(e));
  const again = prev.files.filter((e) => here.includes(e));
  if (o.resume) {
    if (prev.command !== o.command) throw new OutputError(abs, `holds the output of \`echoatt ${prev.command}\`; --resume continues only an earlier \`echoatt ${o.command}\` run there`);
    return { manifest: { ...prev, files: [...prev.files] }, resumed: true };
  }
  if (!o.force) {
    const how = o.resumable ? '--resume to continue it or --force to replace it' : '--force to replace it';
    throw new OutputError(abs, `holds the output of an earlier \`echoatt ${prev.command}\` run (${list(again.length ? again : here)} would be overwritten); pass ${how}, or choose another folder`);
  }
  if (foreign.length) throw new OutputError(abs, `--force replaces only what echoatt wrote, and this folder also holds ${list(foreign)}; move those away or choose another folder`);
  for (const e of here) {
    try {
      fs.rmSync(path.join(abs, e), { recursive: true, force: true });
    } catch (err) {
      throw new IoError(path.join(abs, e), `cannot remove (${fsReason(err)})`, { cause: err });
    }
  }
  return { manifest: fresh, resumed: false };
}

/** Top-level entries other than the manifest, the lock and leftover temporary files. */
function entries(abs: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(abs);
  } catch (e) {
    throw new IoError(abs, `cannot list the output folder (${fsReason(e)})`, { cause: e });
  }
  return names.filter((n) => n !== MANIFEST && n !== LOCK && !TEMP.test(n)).sort();
}

function list(names: readonly string[]): string {
  const shown = names.slice(0, 6).join(', ');
  return names.length > 6 ? `${shown} and ${names.length - 6} more` : shown;
}

function readManifest(abs: string): Manifest | null {
  const f = path.join(abs, MANIFEST);
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(f, 'utf8'));
  } catch {
    return null;
  }
  const m = raw as Partial<Manifest>;
  if (m.format !== 'echoatt-output' || typeof m.command !== 'string' || !Array.isArray(m.files) || !m.files.every((x) => typeof x === 'string')) return null;
  return { format: 'echoatt-output', version: 1, command: m.command, created: String(m.created ?? ''), files: m.files };
}

function writeManifest(abs: string, m: Manifest): void {
  writeTextAtomic(path.join(abs, MANIFEST), `${JSON.stringify(m, null, 2)}\n`);
}

/** Take the folder's lock with O_EXCL; a live holder refuses, a dead one is reported (broken with `force`). */
function takeLock(abs: string, o: OutputOptions): void {
  const file = path.join(abs, LOCK);
  const info: LockInfo = { pid: process.pid, host: os.hostname(), command: o.command, started: new Date().toISOString() };
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = fs.openSync(file, 'wx');
      try {
        fs.writeSync(fd, `${JSON.stringify(info)}\n`);
      } finally {
        fs.closeSync(fd);
      }
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new IoError(abs, `cannot write in the output folder (${fsReason(e)})`, { cause: e });
    }
    const held = readLock(file);
    const alive = held !== null && held.host === os.hostname() && pidAlive(held.pid);
    const who = held ? `pid ${held.pid} on ${held.host}, \`echoatt ${held.command}\` since ${held.started}` : 'an unreadable lock file';
    if (alive || (held && held.host !== os.hostname() && !o.force)) {
      throw new OutputError(abs, `is in use by another echoatt run (${who}); wait for it to finish or choose another folder`, 'E_LOCKED');
    }
    if (!o.force) throw new OutputError(abs, `holds a stale lock (${who}, no longer running); pass --force to break it`, 'E_LOCKED');
    fs.rmSync(file, { force: true });
  }
  throw new OutputError(abs, 'another run took the lock at the same moment', 'E_LOCKED');
}

function readLock(file: string): LockInfo | null {
  try {
    const v = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<LockInfo>;
    return typeof v.pid === 'number' && typeof v.host === 'string' ? { pid: v.pid, host: v.host, command: String(v.command), started: String(v.started) } : null;
  } catch {
    return null;
  }
}

function pidAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function releaseLock(abs: string): void {
  const file = path.join(abs, LOCK);
  const held = readLock(file);
  if (held && held.pid === process.pid && held.host === os.hostname()) fs.rmSync(file, { force: true });
}
