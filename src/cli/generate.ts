/** `echoatt generate`: stream text from a model to stdout (exactly the decoded bytes), statistics to stderr. */
import type { Command } from 'commander';
import { loadModel } from '../models/load.js';
import { generate } from '../models/generate.js';
import { DEFAULT_MODEL } from './defaults.js';
import { backendFromOptions, floatOption, intOption, THREADS_FLAG, topPOption } from './options.js';

interface GenerateFlags {
  model: string;
  tokenizer?: string;
  prompt: string;
  maxTokens: number;
  steps?: number;
  temperature: number;
  topP: number;
  seed?: number;
  backend?: string;
  threads?: number;
}

export function registerGenerate(program: Command): void {
  program
    .command('generate')
    .description('generate text from a prompt (llama2.c .bin or Hugging Face directory)')
    .option('-m, --model <path>', 'model: llama2.c .bin file or Hugging Face directory', DEFAULT_MODEL)
    .option('--tokenizer <path>', 'tokenizer.bin / tokenizer.json (default: found next to the model)')
    .option('-p, --prompt <text>', 'prompt text', '')
    .option('-n, --max-tokens <n>', 'maximum number of new tokens', intOption('--max-tokens'), 256)
    .option('--steps <n>', 'bound on total sequence length incl. prompt, as run.c -n', intOption('--steps', 1))
    .option('-t, --temperature <t>', '0 = greedy', floatOption('--temperature', 0), 1)
    .option('--top-p <p>', 'nucleus sampling threshold (1 = off)', topPOption('--top-p'), 0.9)
    .option('-s, --seed <n>', 'random seed (default: time)', intOption('--seed'))
    .option('--backend <name>', 'native | reference')
    .option(...THREADS_FLAG)
    .action((f: GenerateFlags) => {
      const backend = backendFromOptions(f);
      const t0 = performance.now();
      const { model, tokenizer, stopIds } = loadModel(f.model, { tokenizer: f.tokenizer, backend, weights: 'as-stored' });
      const loadMs = performance.now() - t0;
      const res = generate(
        model, tokenizer,
        { prompt: f.prompt, maxTokens: f.maxTokens, steps: f.steps, temperature: f.temperature, topP: f.topP, seed: f.seed, stopIds },
        (bytes) => {
          process.stdout.write(bytes);
        },
      );
      // stdout carries exactly the decoded bytes (pipe-friendly); the closing newline goes with the stats.
      const n = res.tokens.length;
      process.stderr.write(
        `\n[${backend.name}, ${backend.threads} thread(s)] load ${loadMs.toFixed(0)} ms; prompt ${res.promptTokens.length} tokens in ` +
          `${res.prefillMs.toFixed(1)} ms; ${n} new tokens, decode ${res.decodeTokensPerSecond.toFixed(1)} tok/s; ` +
          `stop: ${res.stop}; seed ${res.seed}\n`,
      );
    });
}
