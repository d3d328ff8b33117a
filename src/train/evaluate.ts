/** Held-out loss during training: mean next-token cross-entropy through the model's inference forward. */
import type { LlamaModel } from '../models/llama.js';

export interface EvalResult {
  /** Mean next-token cross-entropy (nats). */
  loss: number;
  perplexity: number;
  tokens: number;
  sequences: number;
}

/**
 * Mean next-token cross-entropy of `model` on sequences of `T + 1` tokens (inputs the first T, targets the last T).
 *
 * @example
 * evaluateLoss(model, heldOut.sequences).perplexity;
 */
export function evaluateLoss(model: LlamaModel, seqs: readonly Int32Array[], batch = 8): EvalResult {
  const be = model.backend;
  const V = model.config.vocabSize;
  let sum = 0;
  let tokens = 0;
  for (let i = 0; i < seqs.length; i += batch) {
    const group = seqs.slice(i, i + batch);
    const t = group[0].length - 1;
    const ids = new Int32Array(group.length * t);
    const tg = new Int32Array(group.length * t);
    group.forEach((s, b) => {
      ids.set(s.subarray(0, t), b * t);
      tg.set(s.subarray(1), b * t);
    });
    const logits = model.forward(ids, { batch: group.length });
    const losses = new Float32Array(ids.length);
    be.crossEntropy(logits, tg, losses, ids.length, V);
    for (const l of losses) sum += l;
    tokens += ids.length;
  }
  const loss = tokens ? sum / tokens : NaN;
  return { loss, perplexity: Math.exp(loss), tokens, sequences: seqs.length };
}
