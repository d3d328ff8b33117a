/**
 * Thread counts: the one place that validates them, whether they come from `--threads`, `ECHOATT_THREADS` or a
 * library call to `setThreads`. A bad value is an `OptionError` naming where it came from.
 *
 * @example
 * parseThreads('2', '--threads'); // 2
 * parseThreads('two', 'ECHOATT_THREADS'); // throws OptionError: ECHOATT_THREADS: expected an integer from 1 to 1024, got 'two'
 */
import os from 'node:os';
import { OptionError } from '../errors.js';

/** The native thread pool's limit. */
export const MAX_THREADS = 1024;

/** The most threads a user may ask for: 4 × the cores (more only adds contention; a larger number is a typo). */
export function maxUserThreads(): number {
  return Math.min(MAX_THREADS, 4 * os.availableParallelism());
}

/** A thread count given as text (a flag or an environment variable): 1 … 4 × the cores. */
export function parseThreads(text: string, source: string): number {
  const t = text.trim();
  const max = maxUserThreads();
  if (!/^\d+$/.test(t) || Number(t) < 1 || Number(t) > max) {
    throw new OptionError(source, `expected an integer from 1 to ${max} (4 × the ${os.availableParallelism()} cores), got '${text}'`);
  }
  return checkThreads(Number(t), source);
}

/** A thread count given as a number. */
export function checkThreads(n: number, source: string): number {
  if (!(Number.isInteger(n) && n >= 1 && n <= MAX_THREADS)) throw new OptionError(source, `expected an integer from 1 to ${MAX_THREADS}, got ${n}`);
  return n;
}

/** `ECHOATT_THREADS`, validated, or undefined when unset or empty. */
export function envThreads(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const v = env.ECHOATT_THREADS;
  return v === undefined || v.trim() === '' ? undefined : parseThreads(v, 'ECHOATT_THREADS');
}
