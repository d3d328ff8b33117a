/**
 * Checkpoints as models see them: a resolved config plus exactly the tensors its layer kinds need, from a Hugging
 * Face directory or a llama2.c `.bin`; and writing a config + tensor map back as a standard HF directory.
 */
import { resolveModelSpec } from '../io/hub.js';
import path from 'node:path';
import { configFromJson, configToHfJson, llama2cConfig, type LlamaConfig } from './config.js';
import { checkTensorSet } from './tensor-spec.js';
import { CheckpointError, IoError } from '../errors.js';
import { isDirectory, isFile, readJsonFile } from '../io/fsutil.js';
import { loadLlama2c } from '../io/llama2c.js';
import { permuteForHalfRope } from '../io/llama2c.js';
import { findTokenizer, openHfWeights, writeHfCheckpoint } from '../io/hf.js';
import type { TensorData } from '../io/safetensors.js';

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
export function loadCheckpoint(spec: string, opts: { strict?: boolean } = {}): LoadedCheckpoint {
  const p = resolveModelSpec(spec); // a Hugging Face repo id → its snapshot in the local cache
  if (isDirectory(p)) return loadHfCheckpoint(p, opts);
  if (!isFile(p)) throw new IoError(p, 'checkpoint not found');
  if (path.basename(p) === 'config.json' || p.endsWith('.safetensors') || p.endsWith('.safetensors.index.json')) {
    return loadHfCheckpoint(path.dirname(p), opts);
  }
  if (p.endsWith('.bin')) {
    const { header, weights } = loadLlama2c(p);
    const config = llama2cConfig(header);
    const { problems } = checkTensorSet(config, weights);
    if (problems.length > 0) throw new CheckpointError(p, problems); // a bug guard: the file layout and the table must agree
    const dir = path.dirname(p);
    return { format: 'llama2c', config, weights, tokenizerPath: findTokenizer(dir, [`tok${config.vocabSize}.bin`, 'tokenizer.bin']), notes: [] };
  }
  throw new IoError(p, 'unknown checkpoint type (expected a llama2.c .bin file or a directory with config.json)');
}

/**
 * Write a Hugging Face checkpoint directory (see `io/hf.ts` writeHfCheckpoint: atomic, config last) after checking
 * the tensors against the config's table. With `ropeStyle: 'interleaved'` the q/k rows (and biases) are permuted to
 * rotate-half order and the config is written as 'half', so the result is a standard HF Llama checkpoint.
 *
 * @example
 * const ck = loadCheckpoint('stories260K.bin');
 * writeModelCheckpoint('out/stories260K-hf', ck.config, ck.weights, 'tok512.bin');
 */
export function writeModelCheckpoint(dir: string, config: Readonly<LlamaConfig>, weights: ReadonlyMap<string, TensorData>, tokenizer?: string): void {
  const { problems } = checkTensorSet(config, weights);
  if (problems.length > 0) throw new CheckpointError(dir, problems);
  const interleaved = config.ropeStyle === 'interleaved';
  const out: [string, TensorData][] = [];
  for (const [name, t] of weights) {
    if (name === 'lm_head.weight' && config.tieWordEmbeddings) continue;
    const m = interleaved ? /\.self_attn\.([qk])_proj\.(weight|bias)$/.exec(name) : null;
    if (!m) {
      out.push([name, t]);
      continue;
    }
    // A head-shared layer stores only its own groups: permute the heads it has.
    const rowsPerHead = m[2] === 'weight' ? config.headDim * config.hiddenSize : config.headDim;
    const heads = t.data.length / rowsPerHead;
    const dimIn = m[2] === 'weight' ? config.hiddenSize : 1;
    out.push([name, { ...t, shape: [...t.shape], data: permuteForHalfRope(t.data, heads, config.headDim, dimIn) }]);
  }
  writeHfCheckpoint(dir, configToHfJson({ ...config, ropeStyle: 'half' }), out, tokenizer);
}
