/**
 * The `echoatt` command line. Each subcommand lives in its own module and registers itself here.
 */
import { Command, CommanderError } from 'commander';
import { EchoattError, InterruptedError } from '../errors.js';
import { registerGenerate } from './generate.js';
import { registerConvert } from './convert.js';
import { registerShare } from './share.js';
import { registerEval } from './eval.js';
import { registerHeadshare } from './headshare.js';
import { registerAnalyze } from './analyze.js';
import { registerDistill } from './distill.js';
import { registerPipeline } from './pipeline.js';
import { registerServe } from './serve.js';

const program = new Command();
program
  .name('echoatt')
  .description('Share attention across layers and heads to make transformer language models cheaper.')
  .version('0.1.0')
  .exitOverride();

registerGenerate(program);
registerConvert(program);
registerShare(program);
registerEval(program);
registerHeadshare(program);
registerAnalyze(program);
registerDistill(program);
registerPipeline(program);
registerServe(program);

/** The words for the filesystem failures a user can cause (a full disk, a read-only folder, a file in the way). */
const FS_WORDS: Record<string, string> = {
  EACCES: 'permission denied', EPERM: 'operation not permitted', ENOSPC: 'no space left on device', EDQUOT: 'disk quota exceeded',
  EROFS: 'read-only file system', EEXIST: 'already exists', ENOTDIR: 'a part of the path is a file, not a folder', EISDIR: 'is a folder',
  ENOENT: 'no such file or folder', EMFILE: 'too many open files', ENFILE: 'too many open files in the system', ENAMETOOLONG: 'name too long',
  EBUSY: 'busy', EIO: 'input/output error', ELOOP: 'too many symbolic links', EXDEV: 'crosses filesystems',
};

/** One line on stderr and an exit code for anything that ends a command; a stack only for bugs, behind ECHOATT_DEBUG=1. */
function fail(e: unknown): never {
  if (e instanceof CommanderError) process.exit(e.exitCode);
  if (e instanceof EchoattError) {
    process.stderr.write(`echoatt: ${e.message}\n`);
    process.exit(e instanceof InterruptedError ? 130 : 2);
  }
  const err = e as NodeJS.ErrnoException & { dest?: string };
  if (err && typeof err.code === 'string' && typeof err.syscall === 'string') {
    const where = err.path ? `${err.path}${err.dest ? ` → ${err.dest}` : ''}: ` : '';
    process.stderr.write(`echoatt: ${where}${err.syscall} failed (${err.code}${FS_WORDS[err.code] ? `: ${FS_WORDS[err.code]}` : ''})\n`);
    process.exit(2);
  }
  const debug = process.env.ECHOATT_DEBUG === '1';
  process.stderr.write(`echoatt: internal error: ${err instanceof Error ? err.message : String(e)}\n` +
    (debug && err instanceof Error ? `${err.stack}\n` : '') +
    `This is a bug in echoatt; please report it with the command you ran${debug ? '' : ' (ECHOATT_DEBUG=1 prints the stack trace)'}.\n`);
  process.exit(70);
}

process.on('uncaughtException', fail);
process.on('unhandledRejection', fail);
// Ctrl-C: a command that handles it itself (training stops at a step boundary and checkpoints) has its own listener;
// otherwise stop now. Either way the exit code is 130; output folders are recorded and unlocked by their exit hook.
process.on('SIGINT', () => {
  if (process.listenerCount('SIGINT') > 1) return;
  process.exit(130);
});

try {
  await program.parseAsync(process.argv);
} catch (e) {
  fail(e);
}
