/**
 * Sharded safetensors checkpoints: `model.safetensors.index.json` maps each tensor name to a shard file;
 * this presents all shards as one {@link TensorSource}.
 */
import path from 'node:path';
import { isFile, isPlainObject, readJsonFile, writeTextAtomic } from './fsutil.js';
import { openSafetensors, writeSafetensors, type TensorData, type TensorInfo, type TensorSource } from './safetensors.js';
import { EchoattError, CheckpointError, FormatError } from '../errors.js';
import { DTYPE_BYTES } from '../tensor/dtype.js';

/**
 * Open a sharded checkpoint through its index. Every problem (shard missing or unreadable, tensor not in
 * its shard, shard path escaping the directory) is collected and thrown as one {@link CheckpointError}.
 *
 * @example
 * const src = openSafetensorsIndex('ckpt/model.safetensors.index.json');
 * const w = src.read('model.norm.weight');
 * src.close();
 */
export function openSafetensorsIndex(indexFile: string): TensorSource {
  const json = readJsonFile(indexFile);
  if (!isPlainObject(json) || !isPlainObject(json.weight_map)) throw new FormatError(indexFile, "index has no 'weight_map' object");
  const metadata: Record<string, string> = {};
  if (isPlainObject(json.metadata)) {
    for (const [k, v] of Object.entries(json.metadata)) if (typeof v === 'string' || typeof v === 'number') metadata[k] = String(v);
  }
  const dir = path.dirname(indexFile);
  const problems: string[] = [];
  const byFile = new Map<string, string[]>();
  for (const [name, shard] of Object.entries(json.weight_map)) {
    if (typeof shard !== 'string' || shard === '' || path.isAbsolute(shard) || shard.split(/[\\/]/).includes('..')) {
      problems.push(`weight_map['${name}'] = ${JSON.stringify(shard)} is not a file name inside the checkpoint directory`);
      continue;
    }
    const list = byFile.get(shard) ?? [];
    list.push(name);
    byFile.set(shard, list);
  }
  const shards = new Map<string, TensorSource>();
  const tensors = new Map<string, TensorInfo>();
  for (const [shard, names] of byFile) {
    const file = path.join(dir, shard);
    if (!isFile(file)) {
      problems.push(`shard '${shard}' (${names.length} tensors, e.g. '${names[0]}') does not exist`);
      continue;
    }
    let src: TensorSource;
    try {
      src = openSafetensors(file);
    } catch (e) {
      if (!(e instanceof EchoattError)) throw e;
      problems.push(e.message);
      continue;
    }
    shards.set(shard, src);
    for (const name of names) {
      const info = src.tensors.get(name);
      if (info) tensors.set(name, info);
      else problems.push(`tensor '${name}' is mapped to shard '${shard}' but that file does not contain it`);
    }
  }
  if (problems.length > 0) {
    for (const s of shards.values()) s.close();
    throw new CheckpointError(indexFile, problems);
  }
  return {
    path: indexFile,
    metadata: Object.freeze(metadata),
    tensors,
    read(name: string): TensorData {
      const shard = (json.weight_map as Record<string, string>)[name];
      const src = shard === undefined ? undefined : shards.get(shard);
      if (!src) throw new CheckpointError(indexFile, [`no tensor named '${name}'`]);
      return src.read(name);
    },
    close(): void {
      for (const s of shards.values()) s.close();
    },
  };
}

/**
 * Write tensors as HF-style shards `model-00001-of-0000N.safetensors` plus `model.safetensors.index.json`
 * (written last, atomically). A shard is closed once it would exceed `maxShardBytes` (a single larger tensor
 * gets a shard of its own). Returns the shard file names.
 *
 * @example
 * writeShardedSafetensors('ckpt', weights, { maxShardBytes: 2 ** 30 });
 */
export function writeShardedSafetensors(
  dir: string,
  tensors: Iterable<readonly [string, TensorData]>,
  opts: { maxShardBytes?: number; metadata?: Readonly<Record<string, string>> } = {},
): string[] {
  const max = opts.maxShardBytes ?? 5 * 2 ** 30;
  const groups: (readonly [string, TensorData])[][] = [];
  let cur: (readonly [string, TensorData])[] = [];
  let curBytes = 0;
  let total = 0;
  for (const entry of tensors) {
    const bytes = entry[1].data.length * DTYPE_BYTES[entry[1].dtype];
    if (cur.length > 0 && curBytes + bytes > max) {
      groups.push(cur);
      cur = [];
      curBytes = 0;
    }
    cur.push(entry);
    curBytes += bytes;
    total += bytes;
  }
  if (cur.length > 0) groups.push(cur);
  const n = groups.length;
  const pad = (i: number): string => String(i).padStart(5, '0');
  const names: string[] = [];
  const weightMap: Record<string, string> = {};
  groups.forEach((g, i) => {
    const shard = `model-${pad(i + 1)}-of-${pad(n)}.safetensors`;
    writeSafetensors(path.join(dir, shard), g, opts.metadata ?? { format: 'pt' });
    for (const [name] of g) weightMap[name] = shard;
    names.push(shard);
  });
  const index = { metadata: { total_size: total }, weight_map: weightMap };
  writeTextAtomic(path.join(dir, 'model.safetensors.index.json'), `${JSON.stringify(index, null, 2)}\n`);
  return names;
}
