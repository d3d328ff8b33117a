/**
 * One call from a path to a runnable model (a {@link LlamaModel}, or a {@link SharedLlamaModel} when the config
 * records a sharing plan) and its tokenizer.
 *
 * @example
 * ```ts
 * const { model, tokenizer } = loadModel('../shared/models/stories260K/stories260K.bin');
 * ```
 */
import { loadCheckpoint, type LoadedCheckpoint } from '../io/hf.js';
import { Llama2cTokenizer, loadTokenizer, type Tokenizer } from '../tokenizer/index.js';
import { IoError } from '../io/errors.js';
import { LlamaModel, type WeightMode } from './llama.js';
import { SharedLlamaModel } from './shared-llama.js';
import { planFromConfig } from './sharing-plan.js';
import { HeadSharedLlamaModel, headMapFromConfig } from './headshared-llama.js';
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
  // A config that records a sharing plan is a shared-attention student.
  // A config that records a head map is a head-wise weight-shared model (DirectShare / PostShare).
  const model = headMapFromConfig(checkpoint.config, modelPath)
    ? HeadSharedLlamaModel.fromWeights(checkpoint.config, checkpoint.weights, opts.backend)
    : planFromConfig(checkpoint.config, modelPath)
      ? SharedLlamaModel.fromWeights(checkpoint.config, checkpoint.weights, opts.backend, opts.weights)
      : LlamaModel.fromWeights(checkpoint.config, checkpoint.weights, opts.backend, opts.weights);
  const stopIds = [...tokenizer.eosIds];
  if (tokenizer instanceof Llama2cTokenizer && tokenizer.bosId !== null) stopIds.push(tokenizer.bosId);
  return { model, tokenizer, checkpoint, stopIds };
}
