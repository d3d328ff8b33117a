/**
 * `echoatt serve`: an OpenAI-compatible server over any model echoatt loads, with continuous batching. The KV memory
 * budget decides how many sequences decode together: a student's echo layers keep no K cache, so more fit.
 * SIGTERM / Ctrl-C: stop accepting, let running requests finish (30 s at most), exit 0 (130 after Ctrl-C).
 */
import type { Command } from 'commander';
import { loadModel } from '../models/load.js';
import { startServer } from '../serve/server.js';
import { OptionError } from '../errors.js';
import { resolveModelSpec } from '../io/hub.js';
import { DEFAULT_MODEL } from './defaults.js';
import { backendFromOptions, intOption, THREADS_FLAG } from './options.js';

interface ServeFlags {
  model: string;
  tokenizer?: string;
  name?: string;
  host: string;
  port: number;
  maxBatch: number;
  kvMemory?: number;
  maxQueue: number;
  ctx?: number;
  apiKey?: string;
  weights: string;
  backend?: string;
  threads?: number;
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('serve a model (teacher or student) over an OpenAI-compatible HTTP API with continuous batching')
    .option('-m, --model <path>', 'model: llama2.c .bin, Hugging Face directory or repo id (org/name[@revision], from the local HF cache)', DEFAULT_MODEL)
    .option('--tokenizer <path>', 'tokenizer (default: found next to the model)')
    .option('--name <id>', 'model id clients pass as "model" (default: the model folder / file name)')
    .option('--host <addr>', 'address to bind', '127.0.0.1')
    .option('--port <n>', 'port (0 = any free port)', intOption('--port', 0, 65535), 8080)
    .option('--max-batch <n>', 'most sequences decoded together', intOption('--max-batch', 1), 16)
    .option('--kv-memory <MiB>', 'KV-cache budget: sequences that fit at full context (at most --max-batch) decode together', intOption('--kv-memory', 1))
    .option('--max-queue <n>', 'requests that may wait for a free slot; more get 429', intOption('--max-queue', 0), 64)
    .option('--ctx <n>', 'tokens per sequence, prompt + completion (default: the model\'s context)', intOption('--ctx', 2))
    .option('--api-key <key>', 'require Authorization: Bearer <key> on /v1/*')
    .option('--weights <mode>', 'as-stored (half-precision weights stay half) | f32', 'as-stored')
    .option('--backend <name>', 'native | reference')
    .option(...THREADS_FLAG)
    .action(runServe);
}

async function runServe(f: ServeFlags): Promise<void> {
  if (f.weights !== 'as-stored' && f.weights !== 'f32') throw new OptionError('--weights', `expected as-stored or f32, got '${f.weights}'`);
  const backend = backendFromOptions(f);
  const modelPath = resolveModelSpec(f.model);
  const loaded = loadModel(modelPath, { tokenizer: f.tokenizer, backend, weights: f.weights });
  const ctx = Math.min(f.ctx ?? loaded.model.config.maxPositions, loaded.model.config.maxPositions);
  const perSeq = loaded.model.newSlotCache(1, 1).bytesPerToken() * ctx;
  let slots = f.maxBatch;
  if (f.kvMemory !== undefined) {
    slots = Math.min(f.maxBatch, Math.floor((f.kvMemory * 1048576) / perSeq));
    if (slots < 1) throw new OptionError('--kv-memory', `${f.kvMemory} MiB holds no ${ctx}-token sequence (one needs ${(perSeq / 1048576).toFixed(2)} MiB)`);
  }
  const name = f.name ?? (modelPath !== f.model ? f.model : undefined); // a repo id is its own name
  const server = await startServer({ loaded, modelPath, name, host: f.host, port: f.port, slots, capacity: ctx, maxQueue: f.maxQueue, apiKey: f.apiKey });
  const kinds = loaded.model.attention.filter((k) => k.kind === 'echo').length;
  process.stdout.write(`echoatt serve: ${server.name} on ${server.url} — ${slots} sequences × ${ctx} tokens decode together ` +
    `(KV cache ${(server.engine.cache.bytes() / 1048576).toFixed(1)} MiB${kinds ? `; ${kinds} echo layers keep V only` : ''})\n`);
  let stopping = false;
  const stop = (code: number) => () => {
    if (stopping) return;
    stopping = true;
    process.stderr.write('echoatt serve: stopping: no new requests; finishing the running ones\n');
    void server.close().then(() => process.exit(code));
  };
  process.on('SIGTERM', stop(0));
  process.on('SIGINT', stop(130));
}
