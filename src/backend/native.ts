// TEMPORARY STUB (to be replaced by the native backend implementation)
import type { Backend } from './backend.js';
export function loadNativeBackend(): Backend | undefined { return undefined; }
export function nativeLoadError(): string | undefined { return 'stub'; }
