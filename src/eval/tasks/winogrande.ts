/**
 * Winogrande (dev, 1,267 items): pronoun resolution with two options, scored by lm-eval's partial evaluation.
 *
 * File: `winogrande/winogrande.jsonl` with `{context_options: [2 strings], continuation, gold}` (gold 0/1), where
 * `context_options[i]` is the sentence up to the blank with option i filled in and `continuation` is the rest of the
 * sentence after the blank. If `winogrande/dev-labels.lst` (original labels 1/2) sits beside it, every gold is
 * checked against it.
 *
 * lm-eval prompt (`winogrande/default.yaml`, partial scoring): for each option, context
 * `sentence[:blank] + option`, continuation `sentence[blank+1:].strip()`, target delimiter " "; the option whose
 * context gives the shared continuation the highest log-likelihood wins. Metric acc.
 */
import fs from 'node:fs';
import path from 'node:path';
import { lineError, readJsonl, readLines, requireFile, strField, describe } from './common.js';
import type { PartialItem, Task } from './types.js';

export function loadWinogrande(taskDir: string, file = path.join(taskDir, 'winogrande/winogrande.jsonl')): Task {
  requireFile(file);
  const rows = readJsonl(file);
  const items: PartialItem[] = rows.map((row) => {
    const opts = row.value.context_options;
    if (!Array.isArray(opts) || opts.length < 2 || !opts.every((o) => typeof o === 'string' && o.trim() !== '')) {
      throw lineError(file, row.line, `field 'context_options' must be an array of at least 2 non-empty strings, got ${describe(opts)}`);
    }
    const gold = row.value.gold;
    if (typeof gold !== 'number' || !Number.isInteger(gold) || gold < 0 || gold >= opts.length) {
      throw lineError(file, row.line, `field 'gold' must be an integer in [0, ${opts.length}), got ${describe(gold)}`);
    }
    return { kind: 'partial', contexts: opts as string[], continuation: strField(row, file, 'continuation'), gold };
  });
  const labelsFile = path.join(path.dirname(file), 'dev-labels.lst');
  let source = file;
  if (fs.existsSync(labelsFile)) {
    const labels = readLines(labelsFile);
    if (labels.length === items.length) {
      labels.forEach((l, i) => {
        if (Number(l.trim()) !== items[i].gold + 1) {
          throw lineError(labelsFile, i + 1, `label ${l.trim()} disagrees with gold ${items[i].gold} (expected gold + 1) at ${file}:${rows[i].line}`);
        }
      });
      source += ` (gold checked against ${labelsFile})`;
    }
  }
  return {
    name: 'winogrande',
    source,
    prompt: 'partial: "{sentence up to the blank, option filled in}" → " {rest of the sentence}" (2 options)',
    delimiter: ' ',
    metrics: ['acc'],
    items,
  };
}
