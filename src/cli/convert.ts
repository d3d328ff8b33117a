/** `echoatt convert`: llama2.c checkpoint → Hugging Face directory (q/k rows permuted to rotate-half RoPE). */
import type { Command } from 'commander';
import { loadCheckpoint } from '../io/hf.js';
import { writeHfCheckpoint } from '../io/llama2c.js';
import { OptionError } from '../errors.js';
import { DEFAULT_MODEL } from './defaults.js';

export function registerConvert(program: Command): void {
  program
    .command('convert')
    .description('convert a checkpoint to the Hugging Face layout (config.json + model.safetensors + tokenizer)')
    .option('-m, --model <path>', 'source checkpoint (llama2.c .bin or HF directory)', DEFAULT_MODEL)
    .option('--tokenizer <path>', 'tokenizer to copy alongside (default: found next to the model)')
    .requiredOption('-o, --out <dir>', 'output directory')
    .option('--to <format>', 'target format: hf', 'hf')
    .action((f: { model: string; tokenizer?: string; out: string; to: string }) => {
      if (f.to !== 'hf') throw new OptionError('--to', `unsupported target format '${f.to}' (supported: hf)`);
      const ck = loadCheckpoint(f.model);
      writeHfCheckpoint(f.out, ck.config, ck.weights, f.tokenizer ?? ck.tokenizerPath);
      process.stderr.write(`wrote ${f.out} (${ck.weights.size} tensors, ${ck.config.numLayers} layers, rope ${ck.config.ropeStyle} → half)\n`);
    });
}
