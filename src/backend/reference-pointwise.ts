/** The reference backend's GELU (tanh approximation) kernels, in float64 like the rest of `reference.ts`. */

/** √(2/π) and the cubic coefficient of PyTorch's `gelu(approximate='tanh')`. */
const GELU_K = Math.sqrt(2 / Math.PI);
const GELU_C = 0.044715;

export function geluTanhMulRef(gate: Float32Array, up: Float32Array, out: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const g = gate[i];
    out[i] = 0.5 * g * (1 + Math.tanh(GELU_K * (g + GELU_C * g * g * g))) * up[i];
  }
}

export function geluTanhMulBackwardRef(
  gate: Float32Array, up: Float32Array, dout: Float32Array, dgate: Float32Array, dup: Float32Array, n: number,
): void {
  // gelu'(g) = 0.5·(1 + th) + 0.5·g·(1 − th²)·K·(1 + 3C·g²), th = tanh(K·(g + C·g³))
  for (let i = 0; i < n; i++) {
    const g = gate[i];
    const th = Math.tanh(GELU_K * (g + GELU_C * g * g * g));
    const dy = dout[i];
    const u = up[i];
    dup[i] = dy * 0.5 * g * (1 + th);
    dgate[i] = dy * u * (0.5 * (1 + th) + 0.5 * g * (1 - th * th) * GELU_K * (1 + 3 * GELU_C * g * g));
  }
}
