/**
 * Backend selection.
 *
 * @example
 * ```ts
 * import { getBackend } from 'echoatt';
 * const be = getBackend();            // native if the addon loaded, else reference (with one stderr notice)
 * const ref = getBackend('reference'); // the plain-TypeScript oracle
 * ```
 * `ECHOATT_BACKEND=reference|native` picks the default; `ECHOATT_THREADS=N` sets the native thread count (validated in
 * `threads.ts`; a bad value is an error, not ignored).
 */
import type { Backend } from './backend.js';
import { ReferenceBackend } from './reference.js';
import { loadNativeBackend, nativeLoadError } from './native.js';
import { checkedBackend } from './validate.js';
import { OptionError } from '../errors.js';
import { envThreads } from './threads.js';

export type BackendName = 'reference' | 'native';
export type { Backend } from './backend.js';

const cache = new Map<BackendName, Backend>();
let warned = false;

/** Names of the backends that can be used in this process. */
export function availableBackends(): BackendName[] {
  return loadNativeBackend() ? ['native', 'reference'] : ['reference'];
}

/**
 * Get a (validated) backend. With no name: `ECHOATT_BACKEND` if set, else native, falling back to reference with a
 * single notice on stderr when the addon is unavailable. Asking for `'native'` explicitly when it cannot load throws.
 */
export function getBackend(name?: BackendName): Backend {
  const wanted = name ?? envBackend();
  const resolved: BackendName = wanted ?? (loadNativeBackend() ? 'native' : 'reference');
  if (wanted === undefined && resolved === 'reference' && !warned) {
    warned = true;
    process.stderr.write(`echoatt: native backend unavailable (${nativeLoadError() ?? 'unknown reason'}); using the slower reference backend\n`);
  }
  let be = cache.get(resolved);
  if (!be) {
    if (resolved === 'native') {
      const nb = loadNativeBackend();
      if (!nb) throw new OptionError('backend', `native backend unavailable: ${nativeLoadError() ?? 'unknown reason'}`);
      be = checkedBackend(nb);
      const threads = envThreads();
      if (threads !== undefined) be.setThreads(threads);
    } else {
      be = checkedBackend(new ReferenceBackend());
    }
    cache.set(resolved, be);
  }
  return be;
}

function envBackend(): BackendName | undefined {
  const v = process.env.ECHOATT_BACKEND;
  if (v === undefined || v === '') return undefined;
  if (v !== 'reference' && v !== 'native') {
    throw new OptionError('ECHOATT_BACKEND', `expected 'reference' or 'native', got '${v}'`);
  }
  return v;
}

/**
 * The SIMD level a backend computes with, for bench headers and reports: the native addon's (`avx512`, `avx2`,
 * `portable`), or `none` for the TypeScript reference.
 */
export function simdLevel(be: Backend): string {
  return be.name === 'native' ? (loadNativeBackend()?.simd ?? 'unknown') : 'none (TypeScript reference)';
}
