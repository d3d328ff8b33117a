/**
 * Held-out perplexity for side-by-side comparisons: N windows of T tokens spread evenly over a text the models never
 * trained on (each window BOS + T−1 text tokens, starting at a paragraph; see `analysis/calibration.ts`), and every
 * model's mean next-token loss on exactly those windows.
 *
 * @example
 * ```ts
 * const w = await heldOutWindows(tokenizer, '../shared/models/gutenberg16/heldout.txt', { windows: 64, seqLen: 257 });
 * heldOutPerplexity(teacher, w).perplexity;
 * ```
 */
import { calibrationSequences } from '../tokenizer/windows.js';
import { resolveCorpusSource } from '../io/corpus.js';
import type { LlamaModel } from '../models/llama.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import type { TextEncoding } from '../tokenizer/lines.js';
import { evaluateLoss, type EvalResult } from '../train/evaluate.js';

export interface HeldOutWindows {
  source: string;
  /** Each `seqLen` tokens: the first predicts nothing, the rest are scored. */
  sequences: Int32Array[];
  seqLen: number;
}

/** `windows` windows of `seqLen` tokens spread over the text at `file`. */
export async function heldOutWindows(tokenizer: Tokenizer, file: string, o: { windows: number; seqLen: number; encoding?: TextEncoding }): Promise<HeldOutWindows> {
  const cal = await calibrationSequences(tokenizer, resolveCorpusSource(file), { seqs: o.windows, seqLen: o.seqLen, encoding: o.encoding });
  return { source: file, sequences: cal.sequences, seqLen: o.seqLen };
}

export interface HeldOutResult extends EvalResult {
  source: string;
  windows: number;
  seqLen: number;
}

/** Mean next-token loss and perplexity of `model` on the windows. */
export function heldOutPerplexity(model: LlamaModel, w: HeldOutWindows, batch = 8): HeldOutResult {
  return { ...evaluateLoss(model, w.sequences, batch), source: w.source, windows: w.sequences.length, seqLen: w.seqLen };
}
