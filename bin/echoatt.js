#!/usr/bin/env node
// Thin launcher: the CLI is compiled to dist/ by `npm ci` (the package's `prepare` script runs tsc).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(main))) {
  process.stderr.write('echoatt: dist/ is missing; run `npm run build` in the echoatt folder first\n');
  process.exit(1);
}
await import(main.href);
