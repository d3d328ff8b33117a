/**
 * Shared helpers of the task loaders: line-numbered reading, JSON Lines parsing and field access whose errors name
 * the file and the line (`FILE:LINE: message`).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FormatError, IoError } from '../../errors.js';

/** Read a text file (UTF-8) or throw an {@link IoError} naming it. */
export function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new IoError(file, `cannot read (${(e as Error).message})`, { cause: e });
  }
}

/** Lines of a text file without their terminators (`\n` or `\r\n`); a final empty line after the last `\n` is dropped. */
export function readLines(file: string): string[] {
  const text = readText(file);
  const lines = text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** An error about line `line` (1-based) of `file`: the message reads `FILE:LINE: ...`. */
export function lineError(file: string, line: number, message: string): FormatError {
  return new FormatError(`${file}:${line}`, message);
}

export interface JsonlRow {
  value: Record<string, unknown>;
  /** 1-based line number. */
  line: number;
}

/** Parse a JSON Lines file: one object per non-blank line. Bad JSON or a non-object names the file and line. */
export function readJsonl(file: string): JsonlRow[] {
  const out: JsonlRow[] = [];
  readLines(file).forEach((text, i) => {
    if (text.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (e) {
      throw lineError(file, i + 1, `invalid JSON (${(e as Error).message})`);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw lineError(file, i + 1, 'expected a JSON object');
    out.push({ value: value as Record<string, unknown>, line: i + 1 });
  });
  return out;
}

/** A string field of a JSON Lines row (non-empty unless `allowEmpty`). */
export function strField(row: JsonlRow, file: string, field: string, allowEmpty = false): string {
  const v = row.value[field];
  if (typeof v !== 'string') throw lineError(file, row.line, `field '${field}' must be a string, got ${describe(v)}`);
  if (!allowEmpty && v.trim() === '') throw lineError(file, row.line, `field '${field}' is empty`);
  return v;
}

/** An object field of a JSON Lines row. */
export function objField(row: JsonlRow, file: string, field: string): Record<string, unknown> {
  const v = row.value[field];
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw lineError(file, row.line, `field '${field}' must be an object, got ${describe(v)}`);
  return v as Record<string, unknown>;
}

/** Parse a non-negative integer label, or throw naming the file and line. */
export function intLabel(text: string, file: string, line: number, max: number): number {
  const t = text.trim();
  if (!/^\d+$/.test(t)) throw lineError(file, line, `expected an integer label, got '${text}'`);
  const n = Number(t);
  if (n >= max) throw lineError(file, line, `label ${n} out of range [0, ${max})`);
  return n;
}

export function describe(v: unknown): string {
  if (v === undefined) return 'nothing (field missing)';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return `${typeof v} ${JSON.stringify(v).slice(0, 40)}`;
}

/** Throw unless the file exists (so a missing data file is reported before any parsing). */
export function requireFile(file: string): void {
  if (!fs.existsSync(file)) throw new IoError(file, 'task data file not found');
}

/**
 * The default folder of the built-in task files: `$ECHOATT_TASK_DIR`, else `../shared/data/tasks` beside the package
 * root (the folder holding package.json).
 */
export function defaultTaskDir(): string {
  if (process.env.ECHOATT_TASK_DIR) return process.env.ECHOATT_TASK_DIR;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) return path.resolve('../shared/data/tasks');
    dir = up;
  }
  return path.resolve(dir, '../shared/data/tasks');
}
