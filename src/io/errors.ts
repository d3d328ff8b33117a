/**
 * Typed errors of the loading layer (checkpoints, configs, tokenizers).
 * Every message names the file and, where it applies, the tensor, field, token index or line.
 */
import { EchoattError } from '../errors.js';

/** A file is malformed: bad header, bad JSON, truncated, wrong size. */
export class FormatError extends EchoattError {
  readonly file: string;
  constructor(file: string, message: string, options?: { cause?: unknown }) {
    super('E_FORMAT', `${file}: ${message}`, options);
    this.file = file;
  }
}

/** A config.json field is missing or has the wrong type. */
export class ConfigError extends EchoattError {
  readonly file: string;
  readonly field: string;
  constructor(file: string, field: string, message: string) {
    super('E_CONFIG', `${file}: field '${field}' ${message}`);
    this.file = file;
    this.field = field;
  }
}

/** A well-formed file asks for something echoatt does not implement (architecture, rope scaling, dtype, ...). */
export class UnsupportedError extends EchoattError {
  readonly file: string;
  readonly field: string;
  constructor(file: string, field: string, value: unknown, reason?: string) {
    super('E_UNSUPPORTED', `${file}: unsupported ${field} = ${fmtValue(value)}${reason ? ` (${reason})` : ''}`);
    this.file = file;
    this.field = field;
  }
}

/**
 * The tensor set of a checkpoint does not match what the config implies.
 * `problems` lists every missing, unexpected or wrongly-shaped tensor, so one run shows them all.
 */
export class CheckpointError extends EchoattError {
  readonly file: string;
  readonly problems: readonly string[];
  constructor(file: string, problems: readonly string[]) {
    const head = problems.length === 1 ? problems[0] : `${problems.length} problems:\n  - ${problems.join('\n  - ')}`;
    super('E_CHECKPOINT', `${file}: ${head}`);
    this.file = file;
    this.problems = Object.freeze([...problems]);
  }
}

/** A file or directory could not be opened, read or written. */
export class IoError extends EchoattError {
  readonly file: string;
  constructor(file: string, message: string, options?: { cause?: unknown }) {
    super('E_IO', `${file}: ${message}`, options);
    this.file = file;
  }
}

function fmtValue(v: unknown): string {
  if (typeof v === 'string') return `'${v}'`;
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}
