/**
 * Hugging Face checkpoint directories (config.json + model.safetensors or a sharded index),
 * and {@link loadCheckpoint}, which also takes llama2.c `.bin` files.
 */
import path from 'node:path';
import { configFromJson, type LlamaConfig } from '../models/config.js';
import { checkTensorSet } from '../models/tensor-names.js';
import { CheckpointError, IoError } from './errors.js';
import { isDirectory, isFile, readJsonFile } from './fsutil.js';
import { loadLlama2c } from './llama2c.js';
import { openSafetensors, type TensorData, type TensorSource } from './safetensors.js';
import { openSafetensorsIndex } from './sharded.js';

export interface LoadedCheckpoint {
  format: 'hf' | 'llama2c';
  config: Readonly<LlamaConfig>;
  /** Exactly the tensors of `expectedTensors(config)`, HF names, (out, in) layout, stored dtype. */
  weights: Map<string, TensorData>;
  /** A tokenizer found next to the weights, if any. */
  tokenizerPath?: string;
  /** Things tolerated while loading (e.g. an lm_head.weight ignored because embeddings are tied). */
  notes: string[];
}

/** Open the weights of an HF directory: the sharded index when present, else model.safetensors. */
export function openHfWeights(dir: string): TensorSource {
  const index = path.join(dir, 'model.safetensors.index.json');
  if (isFile(index)) return openSafetensorsIndex(index);
  const single = path.join(dir, 'model.safetensors');
  if (isFile(single)) return openSafetensors(single);
  throw new IoError(dir, 'no model.safetensors or model.safetensors.index.json (PyTorch .bin weights are not supported)');
}

function findTokenizer(dir: string, names: string[]): string | undefined {
  return names.map((n) => path.join(dir, n)).find(isFile);
}

/**
 * Load an HF Llama/Mistral/Qwen2 checkpoint directory. All missing, unexpected and wrongly-shaped tensors
 * are reported together in one {@link CheckpointError}; `strict: false` turns unexpected tensors into notes.
 *
 * @example
 * const ck = loadHfCheckpoint('../shared/reference/hf-llama-tiny-gqa');
 * ck.config.numKvHeads; // 2
 */
export function loadHfCheckpoint(dir: string, opts: { strict?: boolean } = {}): LoadedCheckpoint {
  const configFile = path.join(dir, 'config.json');
  if (!isFile(configFile)) throw new IoError(dir, 'no config.json in checkpoint directory');
  const config = configFromJson(readJsonFile(configFile), configFile);
  const src = openHfWeights(dir);
  try {
    const { problems, notes, ignored } = checkTensorSet(config, src.tensors, opts.strict ?? true);
    if (problems.length > 0) throw new CheckpointError(src.path, problems);
    const skip = new Set(ignored);
    const weights = new Map<string, TensorData>();
    for (const name of src.tensors.keys()) if (!skip.has(name)) weights.set(name, src.read(name));
    return { format: 'hf', config, weights, tokenizerPath: findTokenizer(dir, ['tokenizer.json', 'tokenizer.bin']), notes };
  } finally {
    src.close();
  }
}

/**
 * Load any supported checkpoint: a llama2.c `.bin` file, or a directory with config.json (HF format).
 * For llama2.c, a sibling `tok{vocab}.bin` or `tokenizer.bin` is reported as `tokenizerPath`.
 *
 * @example
 * const ck = loadCheckpoint('../shared/models/stories260K/stories260K.bin');
 * ck.config.ropeStyle; // 'interleaved'
 */
export function loadCheckpoint(p: string, opts: { strict?: boolean } = {}): LoadedCheckpoint {
  if (isDirectory(p)) return loadHfCheckpoint(p, opts);
  if (!isFile(p)) throw new IoError(p, 'checkpoint not found');
  if (path.basename(p) === 'config.json' || p.endsWith('.safetensors') || p.endsWith('.safetensors.index.json')) {
    return loadHfCheckpoint(path.dirname(p), opts);
  }
  if (p.endsWith('.bin')) {
    const { config, weights } = loadLlama2c(p);
    const dir = path.dirname(p);
    return { format: 'llama2c', config, weights, tokenizerPath: findTokenizer(dir, [`tok${config.vocabSize}.bin`, 'tokenizer.bin']), notes: [] };
  }
  throw new IoError(p, 'unknown checkpoint type (expected a llama2.c .bin file or a directory with config.json)');
}
