/**
 * lm-evaluation-harness `multiple_choice` metrics over per-item scores: `acc`, `acc_norm` (log-likelihood divided by
 * the choice's character length), ties to the first maximum as NumPy's `argmax`, and lm-eval's `mean_stderr`; plus
 * item selection for `--limit`.
 */
import type { MetricName, Task, TaskItem } from './tasks/types.js';

/** Per-item raw scores: one log-likelihood per choice / context option (one for `loglikelihood` items). */
export interface ItemScore {
  lls: number[];
  greedy: boolean[];
  /** Continuation tokens scored (all choices). */
  tokens: number;
}

/** Index of the first maximum (NumPy `argmax`: a NaN counts as the maximum, the first NaN wins). */
export function argmaxFirst(xs: readonly number[]): number {
  let best = 0;
  for (let i = 0; i < xs.length; i++) {
    if (Number.isNaN(xs[i])) return i;
    if (xs[i] > xs[best]) best = i;
  }
  return best;
}

/** Character length as Python's `len`: Unicode code points. */
export function charLength(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** lm-eval `multiple_choice` per-item metrics from the choices' summed log-likelihoods. */
export function choiceMetrics(lls: readonly number[], choices: readonly string[], gold: number): { acc: number; acc_norm: number } {
  const norm = lls.map((ll, i) => ll / charLength(choices[i]));
  return { acc: argmaxFirst(lls) === gold ? 1 : 0, acc_norm: argmaxFirst(norm) === gold ? 1 : 0 };
}

/** Mean and lm-eval `mean_stderr` (`sqrt(sample variance / n)`; NaN for n < 2). */
export function meanStderr(xs: readonly number[]): { mean: number; stderr: number } {
  const n = xs.length;
  if (n === 0) return { mean: NaN, stderr: NaN };
  let s = 0;
  for (const x of xs) s += x;
  const mean = s / n;
  if (n < 2) return { mean, stderr: NaN };
  let ss = 0;
  for (const x of xs) ss += (x - mean) * (x - mean);
  return { mean, stderr: Math.sqrt(ss / (n - 1) / n) };
}

export interface MetricValue {
  value: number;
  /** Standard error; null where lm-eval uses a bootstrap (perplexity), which echoatt does not compute. */
  stderr: number | null;
}

export interface TaskResult {
  task: string;
  /** Items scored. */
  n: number;
  /** Items in the task before `limit`. */
  total: number;
  metrics: Partial<Record<MetricName, MetricValue>>;
  /** Expected `acc` of uniform guessing (mean of 1 / number of options); null for `loglikelihood` tasks. */
  chance: number | null;
  /** Continuation tokens scored. */
  tokens: number;
  seconds: number;
  prompt: string;
  source: string;
}

/** Aggregate per-item scores of `task` into its metrics. `items` are the scored items (after `limit`). */
export function aggregate(task: Task, items: readonly TaskItem[], scores: readonly ItemScore[]): Partial<Record<MetricName, MetricValue>> {
  const out: Partial<Record<MetricName, MetricValue>> = {};
  const acc: number[] = [];
  const accNorm: number[] = [];
  const lls: number[] = [];
  items.forEach((item, i) => {
    const s = scores[i];
    if (item.kind === 'choice') {
      const m = choiceMetrics(s.lls, item.choices, item.gold);
      acc.push(m.acc);
      accNorm.push(m.acc_norm);
    } else if (item.kind === 'partial') {
      acc.push(argmaxFirst(s.lls) === item.gold ? 1 : 0);
    } else {
      acc.push(s.greedy[0] ? 1 : 0);
      lls.push(s.lls[0]);
    }
  });
  for (const m of task.metrics) {
    if (m === 'acc' && acc.length) {
      const r = meanStderr(acc);
      out.acc = { value: r.mean, stderr: r.stderr };
    } else if (m === 'acc_norm' && accNorm.length) {
      const r = meanStderr(accNorm);
      out.acc_norm = { value: r.mean, stderr: r.stderr };
    } else if (m === 'perplexity' && lls.length) {
      out.perplexity = { value: Math.exp(-meanStderr(lls).mean), stderr: null };
    }
  }
  return out;
}

/** Mean over items of 1 / number of options (the `acc` of guessing); null when the task has `loglikelihood` items. */
export function chanceLevel(items: readonly TaskItem[]): number | null {
  if (!items.length || items.some((i) => i.kind === 'loglikelihood')) return null;
  let s = 0;
  for (const i of items) s += 1 / (i.kind === 'choice' ? i.choices.length : (i as { contexts: string[] }).contexts.length);
  return s / items.length;
}

/**
 * The first `limit` items (lm-eval `--limit`), or, with `seed`, `limit` items drawn without replacement by a seeded
 * shuffle (mulberry32 + Fisher-Yates) and kept in file order. No limit: all items.
 */
export function selectItems<T>(items: readonly T[], limit?: number, seed?: number): T[] {
  if (limit === undefined || limit >= items.length) return [...items];
  if (seed === undefined) return items.slice(0, limit);
  let s = seed >>> 0;
  const rand = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const idx = Array.from(items.keys());
  for (let i = idx.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [idx[i], idx[j]] = [idx[j], idx[i]];
  }
  return idx.slice(0, limit).sort((a, b) => a - b).map((i) => items[i]);
}
