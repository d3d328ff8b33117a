/** Learning-rate schedules for the training loop. */

/** Learning rate at `step` (1-based): linear warmup over `warmup` steps, then cosine from `lr` down to `minLr` at `total`. */
export function lrAt(step: number, total: number, lr: number, minLr: number, warmup: number): number {
  if (warmup > 0 && step <= warmup) return (lr * step) / warmup;
  const span = Math.max(1, total - warmup);
  const progress = Math.min(1, Math.max(0, (step - warmup) / span));
  return minLr + 0.5 * (lr - minLr) * (1 + Math.cos(Math.PI * progress));
}
