/**
 * Reverse-mode autograd over the backend kernels: {@link Tape}, {@link Var}, {@link Param} and the typed op table
 * {@link OPS} (each op's backward next to its forward). The model's trainable forward is the decoder itself, run
 * on the tape (`models/tape-ops.ts`).
 */
export { Tape, Var, Param, apply, defineOp, constant, accumulate, type OpDef } from './tape.js';
export { OPS, type OpName } from './ops/index.js';
