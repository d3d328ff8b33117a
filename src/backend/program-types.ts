/** The types of step programs (see `program.ts`), apart so that the {@link Backend} contract can name them. */

export type ProgramArray = Float32Array | Uint16Array | Int32Array;

export interface StepProgram {
  code: Int32Array;
  consts: Float64Array;
  arrays: readonly ProgramArray[];
  /** Positions `0 .. maxPos-1` may be run. */
  maxPos: number;
  /** Tokens `0 .. vocab-1` may be run. */
  vocab: number;
  /** What each instruction is for (e.g. `layer 3 q_proj`), for profiles. */
  labels?: readonly string[];
}

/** Runs one step: token `token` at position `pos`. */
export interface StepRunner {
  (token: number, pos: number): void;
  /** Turn per-instruction timing on or off; returns the nanoseconds accumulated per instruction so far (then reset). */
  profile(on: boolean): Float64Array;
}
