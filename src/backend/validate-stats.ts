/**
 * Validation of the statistics and training kernels (attention-map packing and comparison, the distillation KL,
 * AdamW, the squared norm), spread into {@link checkedBackend} (`validate.ts`) like its other groups.
 */
import type { Backend } from './backend.js';
import { describe, dims, f32, f64, finite, need } from './check.js';
import { DTypeError, ShapeError } from '../errors.js';

export function statsOps(inner: Backend): Pick<Backend, 'packProbs' | 'compareProbs' | 'klDivergence' | 'adamw' | 'sumSquares'> {
  return {
    packProbs(probs, packed, heads, t, stats) {
      const op = 'packProbs';
      dims(op, { heads, t });
      const shape = `${heads} maps of ${t} × ${t}`;
      need(op, 'probs', f32(op, 'probs', probs), heads * t * t, shape);
      need(op, 'packed', f32(op, 'packed', packed), (heads * t * (t + 1)) / 2, shape);
      need(op, 'stats', f64(op, 'stats', stats), 2 * heads, shape);
      if (overlaps(packed, probs)) throw new ShapeError(op, 'packed must not overlap probs');
      inner.packProbs(probs, packed, heads, t, stats);
    },
    compareProbs(maps, b, heads, k, stats, gram) {
      const op = 'compareProbs';
      dims(op, { heads, k });
      if (!Array.isArray(maps)) throw new DTypeError(op, `maps must be an array of Float32Arrays, got ${describe(maps)}`);
      const shape = `${maps.length} × (${heads}, ${k}) maps`;
      maps.forEach((a, i) => need(op, `maps[${i}]`, f32(op, `maps[${i}]`, a), heads * k, shape));
      need(op, 'b', f32(op, 'b', b), heads * k, shape);
      need(op, 'stats', f64(op, 'stats', stats), 2 * heads * maps.length, shape);
      if (gram !== undefined) need(op, 'gram', f64(op, 'gram', gram), heads * heads * maps.length, shape);
      inner.compareProbs(maps, b, heads, k, stats, gram);
    },
    klDivergence(student, teacher, losses, rows, cols, temperature, dstudent, gradScale = 1) {
      const op = 'klDivergence';
      dims(op, { rows, cols });
      finite(op, 'temperature', temperature, true);
      finite(op, 'gradScale', gradScale);
      const shape = `logits (${rows}, ${cols})`;
      need(op, 'student', f32(op, 'student', student), rows * cols, shape);
      need(op, 'teacher', f32(op, 'teacher', teacher), rows * cols, shape);
      need(op, 'losses', f32(op, 'losses', losses), rows, shape);
      if (dstudent !== undefined) need(op, 'dstudent', f32(op, 'dstudent', dstudent), rows * cols, shape);
      inner.klDivergence(student, teacher, losses, rows, cols, temperature, dstudent, gradScale);
    },
    adamw(p) {
      const op = 'adamw';
      dims(op, { n: p.n });
      for (const [nm, a] of [['w', p.w], ['g', p.g], ['m', p.m], ['v', p.v]] as const) need(op, nm, f32(op, nm, a), p.n, `(${p.n})`);
      for (const nm of ['lr', 'eps', 'weightDecay', 'beta1', 'beta2'] as const) finite(op, nm, p[nm]);
      finite(op, 'gradScale', p.gradScale ?? 1);
      if (!(p.beta1 >= 0 && p.beta1 < 1 && p.beta2 >= 0 && p.beta2 < 1)) throw new ShapeError(op, `betas must lie in [0, 1), got ${p.beta1}, ${p.beta2}`);
      if (!(Number.isInteger(p.step) && p.step >= 1)) throw new ShapeError(op, `step must be a positive integer, got ${p.step}`);
      inner.adamw(p);
    },
    sumSquares(x, n) {
      const op = 'sumSquares';
      dims(op, { n });
      need(op, 'x', f32(op, 'x', x), n, `(${n})`);
      return inner.sumSquares(x, n);
    },
  };
}

function overlaps(a: Float32Array, b: Float32Array): boolean {
  return a.buffer === b.buffer && a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength;
}
