/**
 * HellaSwag (validation, 10,042 items): commonsense sentence completion, 4 endings.
 *
 * File format (`hellaswag/hellaswag_val.txt`): 6 lines per item: `activity_label: context`, the gold index (0-3),
 * then the 4 endings.
 *
 * lm-eval prompt (`hellaswag.yaml`): context `preprocess(activity_label + ": " + ctx_a + " " + ctx_b.capitalize())`,
 * choices `preprocess(ending)`, target delimiter " ", metrics acc and acc_norm. `preprocess` strips, turns
 * " [title]" into ". ", removes `[...]` spans and collapses double spaces; it is applied here again to context and
 * endings (it is idempotent on text it already cleaned). The file stores `ctx_a + " " + ctx_b` without the split, so
 * lm-eval's capitalisation of `ctx_b` cannot be reproduced: contexts are used with the casing stored in the file.
 */
import path from 'node:path';
import { intLabel, lineError, readLines, requireFile } from './common.js';
import type { ChoiceItem, Task } from './types.js';

export const HELLASWAG_FILE = 'hellaswag/hellaswag_val.txt';

/** lm-eval's hellaswag `preprocess`. */
export function hellaswagPreprocess(text: string): string {
  let t = text.trim();
  t = t.replaceAll(' [title]', '. ');
  t = t.replace(/\[.*?\]/g, '');
  t = t.replaceAll('  ', ' ');
  return t;
}

export function loadHellaswag(taskDir: string, file = path.join(taskDir, HELLASWAG_FILE)): Task {
  requireFile(file);
  const lines = readLines(file);
  if (lines.length % 6 !== 0) {
    throw lineError(file, lines.length, `expected 6 lines per item, but the file has ${lines.length} lines (not a multiple of 6)`);
  }
  const items: ChoiceItem[] = [];
  for (let i = 0; i < lines.length; i += 6) {
    const ctx = lines[i];
    if (ctx.trim() === '') throw lineError(file, i + 1, 'empty context line');
    const gold = intLabel(lines[i + 1], file, i + 2, 4);
    const endings = lines.slice(i + 2, i + 6);
    endings.forEach((e, j) => {
      if (e.trim() === '') throw lineError(file, i + 3 + j, 'empty ending');
    });
    items.push({ kind: 'choice', context: hellaswagPreprocess(ctx), choices: endings.map(hellaswagPreprocess), gold });
  }
  return {
    name: 'hellaswag',
    source: file,
    prompt: '"{activity_label}: {ctx}" → " {ending}" (4 endings)',
    delimiter: ' ',
    metrics: ['acc', 'acc_norm'],
    items,
  };
}
