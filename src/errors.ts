/**
 * Typed errors. Every error echoatt throws on bad input is an {@link EchoattError} with a stable `code`,
 * and names the thing that was wrong (file, tensor, field, op, line) in its message.
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
