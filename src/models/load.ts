/**
 * Models on disk: one call from a path to a runnable {@link LlamaModel} (teacher or any student: the config says how
 * its layers share) and its tokenizer, and {@link saveModel}, its inverse.
 *
 * @example
 * ```ts
 * const { model, tokenizer, checkpoint } = loadModel('../shared/models/stories260K/stories260K.bin');
 * saveModel('out/copy', model, checkpoint.tokenizerPath);
 * loadModel('out/copy').model; // the same logits
 * ```
 */
import path from 'node:path';
import { Llama2cTokenizer, loadTokenizer, type Tokenizer } from '../tokenizer/index.js';
import { IoError } from '../errors.js';
import { LlamaModel } from './llama.js';
import { weightsFromParams, type WeightMode } from './params.js';
import { loadCheckpoint, writeModelCheckpoint, type LoadedCheckpoint } from './checkpoint.js';
import type { Backend } from '../backend/backend.js';

export interface LoadedModel {
  model: LlamaModel;
  tokenizer: Tokenizer;
  checkpoint: LoadedCheckpoint;
  /** Token ids that end generation: EOS, plus BOS with a llama2.c tokenizer (run.c stops there between stories). */
  stopIds: number[];
}

/**
 * `weights`: `'f32'` (default) widens f16/bf16 matrices so the model can be trained; `'as-stored'` keeps them half
 * precision (half the memory and bandwidth, inference only). Head-shared models are always f32.
 */
export function loadModel(
  modelPath: string,
  opts: { tokenizer?: string; backend?: Backend; strict?: boolean; weights?: WeightMode } = {},
): LoadedModel {
  const checkpoint = loadCheckpoint(modelPath, { strict: opts.strict });
  const tokPath = opts.tokenizer ?? checkpoint.tokenizerPath;
  if (!tokPath) throw new IoError(modelPath, 'no tokenizer found next to the model; pass one with --tokenizer');
  const tokenizer = loadTokenizer(tokPath, { vocabSize: checkpoint.config.vocabSize });
  const mode = checkpoint.config.sharing.headMap ? 'f32' : opts.weights;
  const model = LlamaModel.fromWeights(checkpoint.config, checkpoint.weights, opts.backend, mode);
  return { model, tokenizer, checkpoint, stopIds: stopIdsOf(tokenizer) };
}

/** Token ids that end generation for `tokenizer`: EOS, plus BOS for llama2.c tokenizers (run.c's story boundary). */
export function stopIdsOf(tokenizer: Tokenizer): number[] {
  const stopIds = [...tokenizer.eosIds];
  if (tokenizer instanceof Llama2cTokenizer && tokenizer.bosId !== null) stopIds.push(tokenizer.bosId);
  return stopIds;
}

/**
 * Save any model (teacher, layer-shared, head-shared or both) in the Hugging Face layout: model.safetensors (in the
 * weights' in-memory dtype) + config.json (with the plan under `echoatt_sharing` and the head map under
 * `echoatt_head_sharing`) + tokenizer, written atomically, config last.
 */
export function saveModel(dir: string, model: LlamaModel, tokenizerPath?: string): void {
  writeModelCheckpoint(dir, model.config, weightsFromParams(model.config, model.params), tokenizerPath);
}

/** A short name for a model path: the file name without `.bin`, or the folder's name for a generic `model.bin`. */
export function modelName(modelPath: string): string {
  const base = path.basename(modelPath).replace(/\.bin$/, '');
  return base === 'model' || base === 'config.json' ? path.basename(path.dirname(path.resolve(modelPath))) : base;
}
