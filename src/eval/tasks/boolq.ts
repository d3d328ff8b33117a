/**
 * BoolQ (validation, 3,270 items): yes/no questions about a Wikipedia passage.
 *
 * File: `boolq/val.jsonl` in SuperGLUE format (fields question, passage, idx, label; label true/false as a JSON
 * boolean or the strings "true"/"false").
 *
 * lm-eval prompt (`super_glue/boolq/default.yaml`): context `"{passage}\nQuestion: {question}?\nAnswer:"`, choices
 * `["no", "yes"]`, gold `label` (false → 0 "no", true → 1 "yes"), target delimiter " ", metric acc.
 */
import path from 'node:path';
import { describe, lineError, readJsonl, requireFile, strField } from './common.js';
import type { ChoiceItem, Task } from './types.js';

export function loadBoolq(taskDir: string, file = path.join(taskDir, 'boolq/val.jsonl')): Task {
  requireFile(file);
  const items: ChoiceItem[] = readJsonl(file).map((row) => {
    const label = row.value.label;
    let gold: number;
    if (label === true || label === 'true' || label === 1) gold = 1;
    else if (label === false || label === 'false' || label === 0) gold = 0;
    else throw lineError(file, row.line, `field 'label' must be true or false, got ${describe(label)}`);
    return {
      kind: 'choice',
      context: `${strField(row, file, 'passage')}\nQuestion: ${strField(row, file, 'question')}?\nAnswer:`,
      choices: ['no', 'yes'],
      gold,
    };
  });
  return {
    name: 'boolq',
    source: file,
    prompt: '"{passage}\\nQuestion: {question}?\\nAnswer:" → " no" | " yes"',
    delimiter: ' ',
    metrics: ['acc'],
    items,
  };
}
