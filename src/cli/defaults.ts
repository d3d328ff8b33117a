/** Where the embedded default model lives: `../shared/models/stories260K` beside the package root. */
export { PACKAGE_ROOT, SHARED_DIR, DEFAULT_MODEL } from '../paths.js';
