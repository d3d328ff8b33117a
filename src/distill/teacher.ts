/**
 * The teacher's side of distillation: its logits (and hidden states) for a batch, computed on the fly in inference
 * mode, or read from a disk cache keyed by the teacher and the data, so repeated epochs do not recompute them.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { LlamaModel } from '../models/llama.js';
import { forwardTrain, type ModelParams } from '../models/tape-ops.js';
import { HalfWeight } from '../tensor/weight.js';
import { writeAtomic, writeAll } from '../io/fsutil.js';
import { CheckpointStateError } from '../errors.js';

export interface TeacherOut {
  logits: Float32Array; // (B·T, V)
  hidden: Map<number, Float32Array>;
}

export class TeacherTargets {
  private readonly cacheDir: string | null;

  /** `cacheRoot`: cache logits under it (only when no hidden states are needed). */
  constructor(
    private readonly teacher: LlamaModel, private readonly params: ModelParams, private readonly seqLen: number,
    private readonly hiddenLayers: readonly number[], cacheRoot: string | undefined, dataFingerprint: string,
  ) {
    this.cacheDir = cacheRoot && hiddenLayers.length === 0 ? path.resolve(cacheRoot, `${teacherKey(teacher)}-${dataFingerprint.replace(/[^0-9a-z]/gi, '_')}`) : null;
    if (this.cacheDir) fs.mkdirSync(this.cacheDir, { recursive: true });
  }

  /** Outputs for sequences `idxs` of the dataset, whose inputs are `ids` `(B, T)`. */
  get(idxs: readonly number[], ids: Int32Array): TeacherOut {
    const per = this.seqLen * this.teacher.config.vocabSize;
    const files = this.cacheDir ? idxs.map((i) => path.join(this.cacheDir!, `${i}.f32`)) : [];
    if (files.length && files.every((f) => fs.existsSync(f))) {
      const logits = new Float32Array(idxs.length * per);
      files.forEach((f, b) => {
        const buf = fs.readFileSync(f);
        if (buf.byteLength !== per * 4) throw new CheckpointStateError(f, 'teacher cache entry has the wrong size');
        logits.set(new Float32Array(buf.buffer, buf.byteOffset, per), b * per);
      });
      return { logits, hidden: new Map() };
    }
    const r = forwardTrain(this.teacher, this.params, ids, { batch: idxs.length, tape: null, hiddenLayers: this.hiddenLayers });
    const hidden = new Map<number, Float32Array>();
    for (const [l, v] of r.hidden) hidden.set(l, v.data);
    files.forEach((f, b) => {
      if (fs.existsSync(f)) return;
      const bytes = new Uint8Array(r.logits.data.buffer, r.logits.data.byteOffset + b * per * 4, per * 4);
      writeAtomic(f, (fd) => writeAll(fd, bytes));
    });
    return { logits: r.logits.data, hidden };
  }
}

/** A short hash identifying a teacher: its config and a strided sample of every parameter. */
function teacherKey(m: LlamaModel): string {
  let h = 0x811c9dc5;
  const mix = (x: number) => {
    h ^= x;
    h = Math.imul(h, 0x01000193) >>> 0;
  };
  for (const ch of JSON.stringify(m.config)) mix(ch.charCodeAt(0));
  const bits = new Int32Array(1);
  const f = new Float32Array(bits.buffer);
  const arrays = [m.params.embed, m.params.norm, m.params.lmHead, ...m.params.layers.flatMap((lp) => Object.values(lp))]
    .map((a) => (a instanceof HalfWeight ? a.bits : a))
    .filter((a): a is Float32Array | Uint16Array => a instanceof Float32Array || a instanceof Uint16Array);
  for (const a of arrays) {
    const stride = Math.max(1, Math.floor(a.length / 256));
    for (let i = 0; i < a.length; i += stride) {
      f[0] = a[i];
      mix(bits[0]);
    }
  }
  return h.toString(16).padStart(8, '0');
}
