/**
 * Thread counts: the one place that validates them, whether they come from `--threads`, `ECHOATT_THREADS` or a
 * library call to `setThreads`. A bad value is an `OptionError` naming where it came from.
 *
 * @example
 * parseThreads('2', '--threads'); // 2
 * parseThreads('two', 'ECHOATT_THREADS'); // throws OptionError: ECHOATT_THREADS: expected an integer from 1 to 1024, got 'two'
 */
import { OptionError } from '../errors.js';

/** The native thread pool's limit. */
export const MAX_THREADS = 1024;

/** A thread count given as text (a flag or an environment variable). */
export function parseThreads(text: string, source: string): number {
  const t = text.trim();
  if (!/^\d+$/.test(t)) throw new OptionError(source, `expected an integer from 1 to ${MAX_THREADS}, got '${text}'`);
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
