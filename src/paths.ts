/** Where the package lives on disk, and the `../shared` folder beside it (the embedded default model and data). */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) return process.cwd();
    dir = up;
  }
  return dir;
}

/** The folder holding echoatt's package.json (works from `src/` under tsx and from `dist/`). */
export const PACKAGE_ROOT = packageRoot();
export const SHARED_DIR = path.resolve(PACKAGE_ROOT, '../shared');
export const DEFAULT_MODEL = path.join(SHARED_DIR, 'models/stories260K/stories260K.bin');
