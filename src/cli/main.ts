/**
 * The `echoatt` command line. Each subcommand lives in its own module and registers itself here.
 */
import { Command, CommanderError } from 'commander';
import { EchoattError } from '../errors.js';
import { registerGenerate } from './generate.js';
import { registerConvert } from './convert.js';
import { registerShare } from './share.js';
import { registerEval } from './eval.js';
import { registerHeadshare } from './headshare.js';
import { registerAnalyze } from './analyze.js';
import { registerDistill } from './distill.js';
import { registerPipeline } from './pipeline.js';

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

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) process.exit(e.exitCode);
  if (e instanceof EchoattError) {
    process.stderr.write(`echoatt: ${e.message}\n`);
    process.exit(2);
  }
  throw e;
}
