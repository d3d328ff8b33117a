/**
 * OpenBookQA (main, test: 500 items): elementary science questions, 4 choices.
 *
 * File: `openbookqa/test.tsv` with a header row `ID, Question Stem, Choices, Complete Question, Answer Key`
 * (tab-separated); `Choices` reads `(A) text (B) text (C) text (D) text`.
 *
 * lm-eval prompt (`openbookqa.yaml`): context `question_stem` (no template), choices `choices.text`, gold
 * `choices.label.index(answerKey)`, target delimiter " ", metrics acc and acc_norm.
 */
import path from 'node:path';
import { lineError, readLines, requireFile } from './common.js';
import type { ChoiceItem, Task } from './types.js';

const LABELS = ['A', 'B', 'C', 'D'];

/** Split `(A) x (B) y (C) z (D) w` into its four texts, or return null when the markers are not all there in order. */
export function splitObqaChoices(s: string): string[] | null {
  const starts: number[] = [];
  let from = 0;
  for (const l of LABELS) {
    const marker = `(${l}) `;
    const at = s.indexOf(marker, from);
    if (at < 0 || (at > 0 && s[at - 1] !== ' ')) return null;
    starts.push(at);
    from = at + marker.length;
  }
  return starts.map((st, i) => s.slice(st + 4, i + 1 < starts.length ? starts[i + 1] : s.length).trim());
}

export function loadOpenbookqa(taskDir: string, file = path.join(taskDir, 'openbookqa/test.tsv')): Task {
  requireFile(file);
  const lines = readLines(file);
  if (!lines.length) throw lineError(file, 1, 'empty file (expected a header row)');
  const header = lines[0].split('\t').map((h) => h.trim());
  const col = (name: string): number => {
    const i = header.indexOf(name);
    if (i < 0) throw lineError(file, 1, `header has no '${name}' column (got: ${header.join(', ')})`);
    return i;
  };
  const cStem = col('Question Stem');
  const cChoices = col('Choices');
  const cKey = col('Answer Key');
  const items: ChoiceItem[] = [];
  for (let i = 1; i < lines.length; i++) {
    if (lines[i].trim() === '') continue;
    const f = lines[i].split('\t');
    if (f.length !== header.length) throw lineError(file, i + 1, `expected ${header.length} tab-separated fields, got ${f.length}`);
    const stem = f[cStem].trim();
    if (!stem) throw lineError(file, i + 1, 'empty question stem');
    const choices = splitObqaChoices(f[cChoices]);
    if (!choices) throw lineError(file, i + 1, `cannot parse choices '${f[cChoices].slice(0, 60)}' (expected "(A) ... (B) ... (C) ... (D) ...")`);
    const gold = LABELS.indexOf(f[cKey].trim());
    if (gold < 0) throw lineError(file, i + 1, `answer key '${f[cKey]}' is not one of A-D`);
    items.push({ kind: 'choice', context: stem, choices, gold });
  }
  return {
    name: 'openbookqa',
    source: file,
    prompt: '"{question_stem}" → " {choice}" (4 choices)',
    delimiter: ' ',
    metrics: ['acc', 'acc_norm'],
    items,
  };
}
