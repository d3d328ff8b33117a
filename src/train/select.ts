/** Which parameters of a model train: all, by layer, or the layers a sharing plan touches; embeddings optionally frozen. */
import type { LlamaModel } from '../models/llama.js';
import type { ModelParams } from '../models/tape-ops.js';
import type { Param } from '../autograd/tape.js';
import { OptionError } from '../errors.js';

/** 'all'; 'shared' = the echo layers; 'groups' = echo layers and their anchors; or layer indices. */
export type TrainSelection = 'all' | 'shared' | 'groups' | readonly number[];

/**
 * Set `requiresGrad` on every Param of `params` and return the trainable ones.
 *
 * @example
 * const trainable = selectTrainable(student, modelParams(student), 'groups', false);
 */
export function selectTrainable(model: LlamaModel, params: ModelParams, train: TrainSelection, freezeEmbeddings: boolean): Param[] {
  const layers = selectedLayers(model, train);
  for (const p of params.list) p.requiresGrad = layers === null;
  if (layers) {
    params.layers.forEach((lp, l) => {
      if (layers.has(l)) for (const p of Object.values(lp)) if (p) p.requiresGrad = true;
    });
  }
  if (freezeEmbeddings) {
    params.embed.requiresGrad = false;
    params.lmHead.requiresGrad = false;
  }
  const list = params.list.filter((p) => p.requiresGrad);
  if (list.length === 0) throw new OptionError('--train', 'no parameter is left to train');
  return list;
}

function selectedLayers(model: LlamaModel, train: TrainSelection): Set<number> | null {
  if (train === 'all') return null;
  if (train === 'shared' || train === 'groups') {
    const layers = new Set<number>();
    model.attention.forEach((k, l) => {
      if (k.kind !== 'echo') return;
      layers.add(l);
      if (train === 'groups') layers.add(k.anchor);
    });
    if (layers.size === 0) throw new OptionError('--train', `'${train}' selects nothing: the student shares no layers`);
    return layers;
  }
  for (const l of train) if (!(Number.isInteger(l) && l >= 0 && l < model.config.numLayers)) throw new OptionError('--train', `layer ${l} does not exist`);
  return new Set(train);
}
