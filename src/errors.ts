/**
 * Typed errors. Every error echoatt throws on bad input is an {@link EchoattError} with a stable `code`,
 * and names the thing that was wrong (file, tensor, field, op, line) in its message. This is the one module that
 * defines them; every layer imports its errors from here.
 */
export class EchoattError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A kernel or tensor op got arrays whose sizes do not match the shapes it was told. */
export class ShapeError extends EchoattError {
  constructor(op: string, message: string) {
    super('E_SHAPE', `${op}: ${message}`);
  }
}

/** A value of the wrong dtype reached an op or a loader. */
export class DTypeError extends EchoattError {
  constructor(where: string, message: string) {
    super('E_DTYPE', `${where}: ${message}`);
  }
}

/** Something a user passed (flag, option, env var) is out of range or malformed. */
export class OptionError extends EchoattError {
  constructor(option: string, message: string) {
    super('E_OPTION', `${option}: ${message}`);
  }
}

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

/** A plan file or object is malformed or does not fit the model; `where` names the file or source. */
export class PlanError extends EchoattError {
  constructor(where: string, message: string) {
    super('E_PLAN', `${where}: ${message}`);
  }
}

/** A head map is malformed, does not fit the model, or is combined with something it cannot be combined with. */
export class HeadMapError extends EchoattError {
  constructor(where: string, message: string) {
    super('E_HEADMAP', `${where}: ${message}`);
  }
}

/** Error raised when the autograd is used wrongly (e.g. backward twice through one tape). */
export class AutogradError extends EchoattError {
  constructor(message: string) {
    super('E_AUTOGRAD', message);
  }
}

/** Something about an evaluation request cannot be scored (empty continuation, continuation longer than the context window). */
export class EvalError extends EchoattError {
  constructor(message: string) {
    super('E_EVAL', message);
  }
}

/** A checkpoint file is missing, malformed, or from a different run. */
export class CheckpointStateError extends EchoattError {
  constructor(file: string, message: string) {
    super('E_CHECKPOINT', `${file}: ${message}`);
  }
}

/**
 * An output folder or file cannot be written under echoatt's output policy: it holds something this command did not
 * write, an earlier run that needs `--resume` or `--force`, the command's own input, or another run's lock.
 */
export class OutputError extends EchoattError {
  readonly path: string;
  constructor(path: string, message: string, code = 'E_OUTPUT') {
    super(code, `${path}: ${message}`);
    this.path = path;
  }
}

/** The user interrupted a run (Ctrl-C); what was finished is kept and the command exits with 130. */
export class InterruptedError extends EchoattError {
  constructor(message: string) {
    super('E_INTERRUPTED', message);
  }
}
