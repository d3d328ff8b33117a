/**
 * User-defined tasks from a small JSON spec, like an lm-eval task YAML, so a new benchmark needs no code.
 *
 * ```json
 * {
 *   "name": "piqa_mine",
 *   "data": "piqa.jsonl",
 *   "type": "multiple_choice",
 *   "context": "Question: {{goal}}\nAnswer:",
 *   "choices": ["{{sol1}}", "{{sol2}}"],
 *   "gold": "{{label}}",
 *   "delimiter": " ",
 *   "metrics": ["acc", "acc_norm"]
 * }
 * ```
 *
 * Fields:
 * - `name` (string, required).
 * - `data` (required): the data file, relative to the spec file; `format` `jsonl` | `json` | `parquet` (default: from
 *   the extension). JSON: an array of objects, or an object whose `data` (or `rows`) field is that array.
 * - `type`: `multiple_choice` (default: `context` + `choices`), `partial` (Winogrande-style: `contexts` + shared
 *   `continuation`) or `loglikelihood` (LAMBADA-style: `context` + `continuation`).
 * - Templates: `{{path}}` inserts a field; a path is `a.b.c` or `a[0].b`; filters follow `|`: `trim`, `lower`,
 *   `upper`, `capitalize` (first letter upper, rest lower, as Python). A template that is exactly one `{{path}}`
 *   yields the field's raw value, so `"choices": "{{choices.text}}"` takes a whole array; an array of templates gives
 *   one choice each; text without `{{` is literal (`"choices": ["no", "yes"]`).
 * - `gold` (choice and partial types): a template. Its value is looked up in `goldLabels` (a template yielding the
 *   label list, e.g. `"{{choices.label}}"`) when given; otherwise an integer (or integer string) is the index, a
 *   boolean (or "true"/"false") is 1/0, and any other string must equal one of the choices.
 * - `delimiter`: lm-eval's `target_delimiter`, default `" "`.
 * - `metrics`: subset of `acc`, `acc_norm` (multiple_choice), `perplexity` (loglikelihood). Defaults:
 *   multiple_choice `["acc", "acc_norm"]`, partial `["acc"]`, loglikelihood `["perplexity", "acc"]`.
 *
 * Errors name the spec file and field, or the data file and row (JSON Lines: line) that failed.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, readJsonl } from './tasks/common.js';
import type { MetricName, Task, TaskItem } from './tasks/types.js';
import { FormatError, IoError } from '../errors.js';

export type TaskSpecType = 'multiple_choice' | 'partial' | 'loglikelihood';

export interface TaskSpec {
  name: string;
  data: string;
  format?: 'jsonl' | 'json' | 'parquet';
  type?: TaskSpecType;
  context?: string;
  contexts?: string | string[];
  choices?: string | string[];
  continuation?: string;
  gold?: string;
  goldLabels?: string;
  delimiter?: string;
  metrics?: MetricName[];
  description?: string;
}

type Row = Record<string, unknown>;

const PLACEHOLDER = /\{\{\s*([^}]*?)\s*\}\}/g;
const SINGLE = /^\{\{\s*([^}]*?)\s*\}\}$/;

function applyFilter(v: unknown, filter: string, where: string): unknown {
  const s = typeof v === 'string' ? v : String(v);
  switch (filter) {
    case 'trim':
      return s.trim();
    case 'lower':
      return s.toLowerCase();
    case 'upper':
      return s.toUpperCase();
    case 'capitalize':
      return s.length ? s[0].toUpperCase() + s.slice(1).toLowerCase() : s;
    default:
      throw new Error(`${where}: unknown filter '${filter}' (trim, lower, upper, capitalize)`);
  }
}

/** Evaluate `path|filter|...` on a row. Throws an Error (message only) when a field is missing. */
function evalExpr(row: Row, expr: string): unknown {
  const [p, ...filters] = expr.split('|').map((x) => x.trim());
  if (!p) throw new Error('empty {{ }} placeholder');
  let v: unknown = row;
  for (const part of p.match(/[^.[\]]+|\[\d+\]/g) ?? []) {
    const key: string | number = part.startsWith('[') ? Number(part.slice(1, -1)) : part;
    if (typeof v !== 'object' || v === null) throw new Error(`field '${p}' not found`);
    if (typeof key === 'string' && Array.isArray(v) && key !== 'length') {
      // `choices.text` on an array of objects maps over it (the lm-eval/Jinja habit of `choices.text` on HF dicts of lists).
      v = v.map((x) => (x && typeof x === 'object' ? (x as Row)[key] : undefined));
      if ((v as unknown[]).some((x) => x === undefined)) throw new Error(`field '${p}' not found in every array element`);
      continue;
    }
    v = (v as Record<string | number, unknown>)[key];
    if (v === undefined) throw new Error(`field '${p}' not found`);
  }
  for (const f of filters) v = applyFilter(v, f, p);
  return v;
}

/** Render a template against a row (see the module doc). A lone placeholder returns the raw value. */
export function renderTemplate(template: string, row: Row): unknown {
  const single = SINGLE.exec(template);
  if (single) return evalExpr(row, single[1]);
  return template.replace(PLACEHOLDER, (_, expr: string) => {
    const v = evalExpr(row, expr);
    if (typeof v === 'object' && v !== null) throw new Error(`'${expr}' is not a scalar and cannot be inserted into text`);
    return String(v);
  });
}

function asString(v: unknown, what: string): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  throw new Error(`${what} must be text, got ${describe(v)}`);
}

function renderList(t: string | string[], row: Row, what: string): string[] {
  if (Array.isArray(t)) return t.map((x, i) => asString(renderTemplate(x, row), `${what}[${i}]`));
  const v = renderTemplate(t, row);
  if (!Array.isArray(v)) throw new Error(`${what} must yield an array, got ${describe(v)}`);
  return v.map((x, i) => asString(x, `${what}[${i}]`));
}

/** Resolve the gold value of a row to an index into `options` (rules in the module doc). */
export function resolveGold(value: unknown, options: readonly string[], labels?: readonly string[]): number {
  let idx: number;
  if (labels) {
    idx = labels.indexOf(String(value).trim());
    if (idx < 0) throw new Error(`gold '${String(value)}' is not one of the labels [${labels.join(', ')}]`);
  } else if (typeof value === 'number' || typeof value === 'bigint') {
    idx = Number(value);
  } else if (typeof value === 'boolean') {
    idx = value ? 1 : 0;
  } else if (typeof value === 'string') {
    const t = value.trim();
    if (/^-?\d+$/.test(t)) idx = Number(t);
    else if (t === 'true' || t === 'false') idx = t === 'true' ? 1 : 0;
    else {
      idx = options.indexOf(value);
      if (idx < 0) idx = options.indexOf(t);
      if (idx < 0) throw new Error(`gold '${value}' is neither an index nor one of the choices`);
    }
  } else {
    throw new Error(`gold must be an index, a boolean or a choice text, got ${describe(value)}`);
  }
  if (!(Number.isInteger(idx) && idx >= 0 && idx < options.length)) throw new Error(`gold index ${idx} out of range [0, ${options.length})`);
  return idx;
}

/** Parse and check a spec object (without reading its data). `file` names the spec in errors. */
export function parseTaskSpec(json: unknown, file: string): TaskSpec {
  const bad = (field: string, msg: string) => new FormatError(file, `field '${field}' ${msg}`);
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new FormatError(file, 'a task spec must be a JSON object');
  const o = json as Record<string, unknown>;
  const known = new Set(['name', 'data', 'format', 'type', 'context', 'contexts', 'choices', 'continuation', 'gold', 'goldLabels', 'delimiter', 'metrics', 'description']);
  for (const k of Object.keys(o)) if (!known.has(k)) throw bad(k, `is not a task spec field (known: ${[...known].join(', ')})`);
  const str = (k: string, required: boolean): string | undefined => {
    const v = o[k];
    if (v === undefined) {
      if (required) throw bad(k, 'is required');
      return undefined;
    }
    if (typeof v !== 'string') throw bad(k, `must be a string, got ${describe(v)}`);
    return v;
  };
  const strOrList = (k: string): string | string[] | undefined => {
    const v = o[k];
    if (v === undefined || typeof v === 'string') return v;
    if (Array.isArray(v) && v.every((x) => typeof x === 'string') && v.length > 0) return v as string[];
    throw bad(k, 'must be a template string or a non-empty array of template strings');
  };
  const type = (str('type', false) ?? 'multiple_choice') as TaskSpecType;
  if (!['multiple_choice', 'partial', 'loglikelihood'].includes(type)) throw bad('type', `must be multiple_choice, partial or loglikelihood, got '${type}'`);
  const format = str('format', false) as TaskSpec['format'];
  if (format !== undefined && !['jsonl', 'json', 'parquet'].includes(format)) throw bad('format', `must be jsonl, json or parquet, got '${format}'`);
  const spec: TaskSpec = {
    name: str('name', true)!,
    data: str('data', true)!,
    format,
    type,
    context: str('context', type !== 'partial'),
    contexts: strOrList('contexts'),
    choices: strOrList('choices'),
    continuation: str('continuation', type !== 'multiple_choice'),
    gold: str('gold', type !== 'loglikelihood'),
    goldLabels: str('goldLabels', false),
    delimiter: str('delimiter', false),
    description: str('description', false),
  };
  if (type === 'multiple_choice' && spec.choices === undefined) throw bad('choices', 'is required for multiple_choice tasks');
  if (type === 'partial' && spec.contexts === undefined) throw bad('contexts', 'is required for partial tasks');
  const allowed: Record<TaskSpecType, MetricName[]> = {
    multiple_choice: ['acc', 'acc_norm'],
    partial: ['acc'],
    loglikelihood: ['perplexity', 'acc'],
  };
  if (o.metrics !== undefined) {
    if (!Array.isArray(o.metrics) || !o.metrics.length) throw bad('metrics', 'must be a non-empty array');
    for (const m of o.metrics) {
      if (!allowed[type].includes(m as MetricName)) throw bad('metrics', `'${String(m)}' is not a metric of ${type} tasks (${allowed[type].join(', ')})`);
    }
    spec.metrics = o.metrics as MetricName[];
  } else {
    spec.metrics = allowed[type];
  }
  return spec;
}

interface DataRow {
  row: Row;
  /** How to name this row in errors. */
  where: string;
}

async function readData(file: string, format: 'jsonl' | 'json' | 'parquet'): Promise<DataRow[]> {
  if (!fs.existsSync(file)) throw new IoError(file, 'task data file not found');
  if (format === 'jsonl') return readJsonl(file).map((r) => ({ row: r.value, where: `${file}:${r.line}` }));
  if (format === 'json') {
    let v: unknown;
    try {
      v = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (e) {
      throw new FormatError(file, `invalid JSON (${(e as Error).message})`);
    }
    const arr = Array.isArray(v) ? v : ((v as Row | null)?.data ?? (v as Row | null)?.rows);
    if (!Array.isArray(arr)) throw new FormatError(file, 'expected an array of objects, or an object with a "data" array');
    return arr.map((r, i) => {
      if (typeof r !== 'object' || r === null || Array.isArray(r)) throw new FormatError(`${file}: row ${i}`, 'expected a JSON object');
      return { row: r as Row, where: `${file}: row ${i}` };
    });
  }
  const { asyncBufferFromFile, parquetReadObjects } = await import('hyparquet');
  let rows: Row[];
  try {
    rows = (await parquetReadObjects({ file: await asyncBufferFromFile(file) })) as Row[];
  } catch (e) {
    throw new FormatError(file, `cannot read parquet (${(e as Error).message})`);
  }
  return rows.map((r, i) => ({ row: normalizeBigints(r) as Row, where: `${file}: row ${i}` }));
}

function normalizeBigints(v: unknown): unknown {
  if (typeof v === 'bigint') return Number(v);
  if (Array.isArray(v)) return v.map(normalizeBigints);
  if (v && typeof v === 'object' && !(v instanceof Uint8Array) && !(v instanceof Date)) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalizeBigints(x)]));
  }
  return v;
}

/** Build a task's items from a parsed spec; `dataFile` is already resolved. */
export async function taskFromSpec(spec: TaskSpec, dataFile: string): Promise<Task> {
  const format = spec.format ?? (dataFile.endsWith('.parquet') ? 'parquet' : dataFile.endsWith('.jsonl') ? 'jsonl' : 'json');
  const rows = await readData(dataFile, format);
  const type = spec.type ?? 'multiple_choice';
  const items: TaskItem[] = rows.map(({ row, where }) => {
    try {
      if (type === 'multiple_choice') {
        const context = asString(renderTemplate(spec.context!, row), 'context');
        const choices = renderList(spec.choices!, row, 'choices');
        if (choices.length < 2) throw new Error(`choices must yield at least 2 options, got ${choices.length}`);
        const labels = spec.goldLabels ? renderList(spec.goldLabels, row, 'goldLabels') : undefined;
        return { kind: 'choice', context, choices, gold: resolveGold(renderTemplate(spec.gold!, row), choices, labels) };
      }
      if (type === 'partial') {
        const contexts = renderList(spec.contexts!, row, 'contexts');
        if (contexts.length < 2) throw new Error(`contexts must yield at least 2 options, got ${contexts.length}`);
        const labels = spec.goldLabels ? renderList(spec.goldLabels, row, 'goldLabels') : undefined;
        const continuation = asString(renderTemplate(spec.continuation!, row), 'continuation');
        return { kind: 'partial', contexts, continuation, gold: resolveGold(renderTemplate(spec.gold!, row), contexts, labels) };
      }
      return {
        kind: 'loglikelihood',
        context: asString(renderTemplate(spec.context!, row), 'context'),
        continuation: asString(renderTemplate(spec.continuation!, row), 'continuation'),
      };
    } catch (e) {
      if (e instanceof FormatError) throw e;
      throw new FormatError(where, (e as Error).message);
    }
  });
  if (!items.length) throw new FormatError(dataFile, 'no rows');
  const shown = (t: string | string[] | undefined) => (t === undefined ? '' : JSON.stringify(t));
  const prompt =
    type === 'multiple_choice' ? `${shown(spec.context)} → ${shown(spec.choices)}`
    : type === 'partial' ? `partial: ${shown(spec.contexts)} → ${shown(spec.continuation)}`
    : `${shown(spec.context)} → ${shown(spec.continuation)}`;
  return {
    name: spec.name,
    source: dataFile,
    prompt: spec.description ? `${spec.description}: ${prompt}` : prompt,
    delimiter: spec.delimiter ?? ' ',
    metrics: spec.metrics ?? [],
    items,
  };
}

/** Read a task spec file and its data. */
export async function loadTaskSpec(specFile: string): Promise<Task> {
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(specFile, 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new IoError(specFile, 'task spec not found');
    throw new FormatError(specFile, `invalid JSON (${(e as Error).message})`);
  }
  const spec = parseTaskSpec(json, specFile);
  return taskFromSpec(spec, path.resolve(path.dirname(specFile), spec.data));
}
