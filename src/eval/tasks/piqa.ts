/**
 * PIQA (validation, 1,838 items): physical commonsense, 2 solutions.
 *
 * Files: `piqa/dev.jsonl` (fields goal, sol1, sol2) and `piqa/dev-labels.lst` (one label 0/1 per line, same order).
 *
 * lm-eval prompt (`piqa.yaml`): context `"Question: {goal}\nAnswer:"`, choices `[sol1, sol2]`, target delimiter " ",
 * metrics acc and acc_norm.
 */
import path from 'node:path';
import { intLabel, lineError, readJsonl, readLines, requireFile, strField } from './common.js';
import type { ChoiceItem, Task } from './types.js';

export function loadPiqa(taskDir: string, file = path.join(taskDir, 'piqa/dev.jsonl'), labelsFile = path.join(taskDir, 'piqa/dev-labels.lst')): Task {
  requireFile(file);
  requireFile(labelsFile);
  const rows = readJsonl(file);
  const labels = readLines(labelsFile);
  if (labels.length !== rows.length) {
    throw lineError(labelsFile, Math.min(labels.length, rows.length) + 1, `${labels.length} labels for ${rows.length} items in ${file}`);
  }
  const items: ChoiceItem[] = rows.map((row, i) => ({
    kind: 'choice',
    context: `Question: ${strField(row, file, 'goal')}\nAnswer:`,
    choices: [strField(row, file, 'sol1', true), strField(row, file, 'sol2', true)],
    gold: intLabel(labels[i], labelsFile, i + 1, 2),
  }));
  return {
    name: 'piqa',
    source: `${file} + ${labelsFile}`,
    prompt: '"Question: {goal}\\nAnswer:" → " {sol}" (2 solutions)',
    delimiter: ' ',
    metrics: ['acc', 'acc_norm'],
    items,
  };
}
