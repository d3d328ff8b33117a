/**
 * LAMBADA, OpenAI version (test, 5,153 items): predict the last word of a passage.
 *
 * File: `lambada/lambada_openai.jsonl` with `{context, continuation}` (the passage without its last word, and the
 * last word).
 *
 * lm-eval prompt (`lambada_openai.yaml`): context `text.split(' ')[:-1] joined by ' '`, target
 * `' ' + last word`, target delimiter "" (the same token split as delimiter " " with the bare word, used here).
 * Metrics: acc = the whole continuation is the greedy (argmax) choice at every one of its tokens, and perplexity =
 * exp(−mean over items of the continuation's summed log-likelihood).
 */
import path from 'node:path';
import { readJsonl, requireFile, strField } from './common.js';
import type { LoglikelihoodItem, Task } from './types.js';

export function loadLambada(taskDir: string, file = path.join(taskDir, 'lambada/lambada_openai.jsonl')): Task {
  requireFile(file);
  const items: LoglikelihoodItem[] = readJsonl(file).map((row) => ({
    kind: 'loglikelihood',
    context: strField(row, file, 'context'),
    continuation: strField(row, file, 'continuation'),
  }));
  return {
    name: 'lambada_openai',
    source: file,
    prompt: '"{text without its last word}" → " {last word}"',
    delimiter: ' ',
    metrics: ['perplexity', 'acc'],
    items,
  };
}
