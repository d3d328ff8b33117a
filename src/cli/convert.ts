/**
 * `echoatt convert`: llama2.c or Hugging Face checkpoint → Hugging Face directory (q/k rows permuted to rotate-half
 * RoPE) or → GGUF v3 file for llama.cpp (F32/F16).
 */
import type { Command } from 'commander';
import { loadModel } from '../models/load.js';
import { exportGguf, ggufTokenizerOf } from '../export/gguf.js';
import { OptionError } from '../errors.js';
import { DEFAULT_MODEL } from './defaults.js';
import { loadCheckpoint, writeModelCheckpoint } from '../models/checkpoint.js';
import { checkOutputFile, OutputFolder } from '../io/output.js';

interface ConvertFlags {
  model: string;
  tokenizer?: string;
  out: string;
  to: string;
  dtype: string;
  force?: boolean;
}

export function registerConvert(program: Command): void {
  program
    .command('convert')
    .description('convert a checkpoint to the Hugging Face layout, or to GGUF for llama.cpp')
    .option('-m, --model <path>', 'source checkpoint (llama2.c .bin or HF directory)', DEFAULT_MODEL)
    .option('--tokenizer <path>', 'tokenizer to carry over (default: found next to the model)')
    .requiredOption('-o, --out <path>', 'output directory (hf) or file (gguf)')
    .option('--to <format>', 'target format: hf | gguf', 'hf')
    .option('--dtype <t>', 'gguf tensor type: f16 | f32', 'f16')
    .option('--force', 'replace an earlier convert output in --out (only the files it wrote), or overwrite the GGUF file')
    .action((f: ConvertFlags) => {
      const inputs = [f.model, f.tokenizer];
      if (f.to === 'hf') {
        const out = OutputFolder.open(f.out, { command: 'convert', force: f.force, inputs });
        const ck = loadCheckpoint(f.model);
        writeModelCheckpoint(out.dir, ck.config, ck.weights, f.tokenizer ?? ck.tokenizerPath);
        out.close();
        process.stderr.write(`wrote ${f.out} (${ck.weights.size} tensors, ${ck.config.numLayers} layers, rope ${ck.config.ropeStyle} → half)\n`);
        return;
      }
      if (f.to !== 'gguf') throw new OptionError('--to', `unsupported target format '${f.to}' (supported: hf, gguf)`);
      if (f.dtype !== 'f16' && f.dtype !== 'f32') throw new OptionError('--dtype', `expected f16 or f32, got '${f.dtype}'`);
      checkOutputFile(f.out, { force: f.force, inputs });
      const { model, tokenizer } = loadModel(f.model, { tokenizer: f.tokenizer });
      exportGguf(f.out, model, ggufTokenizerOf(tokenizer), { dtype: f.dtype });
      process.stderr.write(`wrote ${f.out} (GGUF v3, ${f.dtype}, ${model.config.numLayers} layers)\n`);
    });
}
