/** Parsing helpers for CLI flags: every bad value becomes an OptionError naming the flag. */
import { OptionError } from '../errors.js';
import { getBackend, type BackendName } from '../backend/index.js';
import type { Backend } from '../backend/backend.js';
import { parseThreads } from '../backend/threads.js';

/** The `--threads` option, as every command that runs a model declares it. */
export const THREADS_FLAG = ['--threads <n>', 'native threads (default: ECHOATT_THREADS, else all cores)', (v: string) => parseThreads(v, '--threads')] as const;

export function intOption(flag: string, min = 0, max = Number.MAX_SAFE_INTEGER) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^-?\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new OptionError(flag, max === Number.MAX_SAFE_INTEGER ? `expected an integer >= ${min}, got '${v}'` : `expected an integer from ${min} to ${max}, got '${v}'`);
    }
    return n;
  };
}

export function floatOption(flag: string, min = -Infinity) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < min) throw new OptionError(flag, `expected a number >= ${min}, got '${v}'`);
    return n;
  };
}

/** A nucleus threshold: in (0, 1] (1 = off). */
export function topPOption(flag: string) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n <= 0 || n > 1) throw new OptionError(flag, `expected a number in (0, 1] (1 = off), got '${v}'`);
    return n;
  };
}

/** Apply `--backend` / `--threads` and return the backend to use. */
export function backendFromOptions(opts: { backend?: string; threads?: number }): Backend {
  if (opts.backend !== undefined && opts.backend !== 'native' && opts.backend !== 'reference') {
    throw new OptionError('--backend', `expected 'native' or 'reference', got '${opts.backend}'`);
  }
  const be = getBackend(opts.backend as BackendName | undefined);
  if (opts.threads !== undefined) be.setThreads(opts.threads);
  return be;
}
