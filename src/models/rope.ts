/**
 * RoPE frequency tables, with the rope_scaling variants Hugging Face applies to `inv_freq`.
 * Angles are formed in float32 (as llama2.c's `cosf(pos * freq)` and HF's float32 `inv_freq` do), so logits
 * match both references closely.
 */
import type { LlamaConfig } from './config.js';

export interface RopeTables {
  /** `(maxPos, headDim/2)` */
  readonly cos: Float32Array;
  readonly sin: Float32Array;
  readonly maxPos: number;
}

/** Inverse frequencies `(headDim/2)` after rope_scaling. */
export function ropeInvFreq(cfg: Pick<LlamaConfig, 'headDim' | 'ropeTheta' | 'ropeScaling'>): Float32Array {
  const { headDim, ropeTheta, ropeScaling } = cfg;
  const half = headDim / 2;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) inv[i] = Math.fround(1 / Math.fround(ropeTheta ** Math.fround((2 * i) / headDim)));
  if (!ropeScaling) return inv;
  if (ropeScaling.type === 'linear') {
    for (let i = 0; i < half; i++) inv[i] = Math.fround(inv[i] / ropeScaling.factor);
    return inv;
  }
  // Llama 3: long wavelengths are slowed by `factor`, short ones kept, the band between interpolated smoothly.
  const { factor, lowFreqFactor, highFreqFactor, originalMaxPositions } = ropeScaling;
  const lowWavelen = originalMaxPositions / lowFreqFactor;
  const highWavelen = originalMaxPositions / highFreqFactor;
  for (let i = 0; i < half; i++) {
    const wavelen = (2 * Math.PI) / inv[i];
    if (wavelen < highWavelen) continue;
    if (wavelen > lowWavelen) {
      inv[i] = Math.fround(inv[i] / factor);
      continue;
    }
    const smooth = (originalMaxPositions / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
    inv[i] = Math.fround((1 - smooth) * (inv[i] / factor) + smooth * inv[i]);
  }
  return inv;
}

/** cos/sin tables for positions `0 .. maxPos-1`. */
export function ropeTables(cfg: Pick<LlamaConfig, 'headDim' | 'ropeTheta' | 'ropeScaling'>, maxPos: number): RopeTables {
  const inv = ropeInvFreq(cfg);
  const half = inv.length;
  const cos = new Float32Array(maxPos * half);
  const sin = new Float32Array(maxPos * half);
  for (let p = 0; p < maxPos; p++) {
    for (let i = 0; i < half; i++) {
      const a = Math.fround(p * inv[i]);
      cos[p * half + i] = Math.cos(a);
      sin[p * half + i] = Math.sin(a);
    }
  }
  return { cos, sin, maxPos };
}
