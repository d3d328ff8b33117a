/**
 * Reverse-mode autograd over the backend kernels: {@link Tape}, {@link Var}, {@link Param}, the typed op table
 * {@link OPS} (each op's backward next to its forward), and the trainable forward pass of Llama models and
 * shared-attention students ({@link forwardTrain}).
 */
export { Tape, Var, Param, apply, defineOp, constant, accumulate, AutogradError, type OpDef } from './tape.js';
export { OPS, type OpName } from './ops/index.js';
export { modelParams, forwardTrain, type ModelParams, type LayerParamVars, type TrainForwardOptions, type TrainForwardResult } from './model.js';
