/**
 * Hugging Face checkpoint directories as files: the weights (model.safetensors or a sharded index), the tokenizer
 * beside them, and writing a directory atomically. What the tensors mean (config, expected names and shapes) is
 * the model layer's business (`models/checkpoint.ts`).
 */
import fs from 'node:fs';
import path from 'node:path';
import { IoError } from '../errors.js';
import { isDirectory, isFile, writeTextAtomic } from './fsutil.js';
import { openSafetensors, writeSafetensors, type TensorData, type TensorSource } from './safetensors.js';
import { openSafetensorsIndex } from './sharded.js';

/** Open the weights of an HF directory: the sharded index when present, else model.safetensors. */
export function openHfWeights(dir: string): TensorSource {
  const index = path.join(dir, 'model.safetensors.index.json');
  if (isFile(index)) return openSafetensorsIndex(index);
  const single = path.join(dir, 'model.safetensors');
  if (isFile(single)) return openSafetensors(single);
  throw new IoError(dir, 'no model.safetensors or model.safetensors.index.json (PyTorch .bin weights are not supported)');
}

/** The first of `names` that exists as a file in `dir`. */
export function findTokenizer(dir: string, names: readonly string[]): string | undefined {
  return names.map((n) => path.join(dir, n)).find(isFile);
}

/**
 * Write a Hugging Face checkpoint directory: `model.safetensors`, the tokenizer, then `config.json` last (so a
 * directory with a config is complete), each atomically. The caller gives the tensors exactly as they are to be
 * stored and the config as a JSON object. `tokenizer`: a `tokenizer.json` path or a directory holding one (copied
 * with its `tokenizer_config.json`), or a llama2.c `.bin` tokenizer (copied as `tokenizer.bin`).
 *
 * @example
 * writeHfCheckpoint('out/model', configToHfJson(cfg), [['model.norm.weight', norm]], 'tok512.bin');
 */
export function writeHfCheckpoint(dir: string, configJson: Record<string, unknown>, tensors: readonly (readonly [string, TensorData])[], tokenizer?: string): void {
  fs.mkdirSync(dir, { recursive: true });
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors.map(([n, t]) => [n, t] as [string, TensorData]), { format: 'pt' });
  if (tokenizer !== undefined) copyTokenizer(tokenizer, dir);
  writeTextAtomic(path.join(dir, 'config.json'), `${JSON.stringify(configJson, null, 2)}\n`);
}

function copyTokenizer(src: string, dir: string): void {
  const file = isDirectory(src) ? path.join(src, 'tokenizer.json') : src;
  if (!isFile(file)) throw new IoError(file, 'tokenizer file not found');
  if (file.endsWith('.bin')) {
    fs.copyFileSync(file, path.join(dir, 'tokenizer.bin'));
    return;
  }
  fs.copyFileSync(file, path.join(dir, 'tokenizer.json'));
  const side = path.join(path.dirname(file), 'tokenizer_config.json');
  if (isFile(side)) fs.copyFileSync(side, path.join(dir, 'tokenizer_config.json'));
}
