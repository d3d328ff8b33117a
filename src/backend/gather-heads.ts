/** The head-map gather of echo layers (head-aligned sharing), written once for every interpreter of the decoder. */

/**
 * Per-head gather of probabilities `(B, H, rows)` (`rows = T·S` per head): output head `h` is input head `heads[h]`.
 * With `add`, ACCUMULATES the reverse (scatter) instead: `into[b, heads[h]] += from[b, h]` — the gather's gradient.
 */
export function gatherHeads(from: Float32Array, heads: Int32Array, batch: number, rows: number, into?: Float32Array, add = false): Float32Array {
  const H = heads.length;
  const out = into ?? new Float32Array(batch * H * rows);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < H; h++) {
      const src = from.subarray((b * H + (add ? h : heads[h])) * rows, (b * H + (add ? h : heads[h]) + 1) * rows);
      const dst = (b * H + (add ? heads[h] : h)) * rows;
      if (!add) out.set(src, dst);
      else for (let i = 0; i < rows; i++) out[dst + i] += src[i];
    }
  }
  return out;
}
