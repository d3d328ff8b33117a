/**
 * Validation of the statistics and training kernels the op table does not describe (`compareProbs` takes an array of
 * maps, `adamw` a params object), spread into {@link checkedBackend} (`validate.ts`).
 */
import type { Backend } from './backend.js';
import { describe, dims, f32, f64, finite, need } from './check.js';
import { DTypeError, ShapeError } from '../errors.js';

export function statsOps(inner: Backend): Pick<Backend, 'compareProbs' | 'adamw'> {
  return {
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
  };
}
