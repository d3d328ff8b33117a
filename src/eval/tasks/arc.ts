/**
 * ARC-Easy (test, 2,376 items) and ARC-Challenge (test, 1,172 items): grade-school science questions, 3-5 choices.
 *
 * Files: `arc/ARC-{Easy,Challenge}-Test.jsonl` in the original AI2 format:
 * `{"id", "question": {"stem", "choices": [{"text", "label"}]}, "answerKey"}` (labels A-E or 1-5).
 *
 * lm-eval prompt (`arc_easy.yaml`, shared by arc_challenge): context `"Question: {question}\nAnswer:"`, choices
 * `choices.text`, gold `choices.label.index(answerKey)`, target delimiter " ", metrics acc and acc_norm.
 */
import path from 'node:path';
import { describe, lineError, objField, readJsonl, requireFile, strField } from './common.js';
import type { ChoiceItem, Task } from './types.js';

export type ArcVariant = 'easy' | 'challenge';

export function arcFile(taskDir: string, variant: ArcVariant, split: 'Test' | 'Dev' = 'Test'): string {
  return path.join(taskDir, `arc/ARC-${variant === 'easy' ? 'Easy' : 'Challenge'}-${split}.jsonl`);
}

export function loadArc(taskDir: string, variant: ArcVariant, file = arcFile(taskDir, variant)): Task {
  requireFile(file);
  const items: ChoiceItem[] = readJsonl(file).map((row) => {
    const q = objField(row, file, 'question');
    const stem = q.stem;
    if (typeof stem !== 'string' || !stem.trim()) throw lineError(file, row.line, `field 'question.stem' must be a non-empty string, got ${describe(stem)}`);
    const choices = q.choices;
    if (!Array.isArray(choices) || choices.length < 2) throw lineError(file, row.line, `field 'question.choices' must be an array of at least 2 choices`);
    const texts: string[] = [];
    const labels: string[] = [];
    choices.forEach((c: unknown, j) => {
      const o = c as Record<string, unknown> | null;
      if (!o || typeof o.text !== 'string' || typeof o.label !== 'string') {
        throw lineError(file, row.line, `question.choices[${j}] must have string 'text' and 'label'`);
      }
      texts.push(o.text);
      labels.push(o.label);
    });
    const key = strField(row, file, 'answerKey').trim();
    const gold = labels.indexOf(key);
    if (gold < 0) throw lineError(file, row.line, `answerKey '${key}' is not one of the choice labels [${labels.join(', ')}]`);
    return { kind: 'choice', context: `Question: ${stem}\nAnswer:`, choices: texts, gold };
  });
  return {
    name: variant === 'easy' ? 'arc_easy' : 'arc_challenge',
    source: file,
    prompt: '"Question: {question}\\nAnswer:" → " {choice}" (3-5 choices)',
    delimiter: ' ',
    metrics: ['acc', 'acc_norm'],
    items,
  };
}
