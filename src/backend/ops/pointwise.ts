/** Op-table entries of the elementwise kernels: gated activations (SwiGLU, GELU), scaling, sums and products. */
import { op } from './spec.js';
import { f32In, f32Out, ints, N, scalar, VEC_SHAPE } from './operands.js';

type F32 = Float32Array;

/** √(2/π) and the cubic coefficient of PyTorch's `gelu(approximate='tanh')`. */
const GELU_K = Math.sqrt(2 / Math.PI);
const GELU_C = 0.044715;

/** Operands of a gated activation `out = act(gate) · up` and of its backward. */
const GATED = [...f32In(N, 'gate', 'up'), ...f32Out(N, 'out'), ...ints('n')];
const GATED_BACKWARD = [...f32In(N, 'gate', 'up', 'dout'), ...f32Out(N, 'dgate', 'dup'), ...ints('n')];
/** Operands of `out = a ∘ b`. */
/** The reference of a gated activation: `out[i] = act(gate[i]) · up[i]`. */
function gated(act: (g: number) => number): (gate: F32, up: F32, out: F32, n: number) => void {
  return (gate, up, out, n) => {
    for (let i = 0; i < n; i++) out[i] = act(gate[i]) * up[i];
  };
}

const BINARY = [...f32In(N, 'a', 'b'), ...f32Out(N, 'out'), ...ints('n')];

export const POINTWISE_OPS = {
  /** `out[i] = silu(gate[i]) · up[i]`, `silu(g) = g / (1 + e^−g)`. `out` may alias `gate` or `up`. */
  siluMul: op({
    operands: GATED,
    shape: VEC_SHAPE,
    reference: gated((g) => g / (1 + Math.exp(-g))),
    step: { name: 'siluMul', opcode: 10, operands: ['r:gate', 'r:up', 'r:out', 'n'] },
  }),
  /** Backward of `siluMul`: overwrites `dgate` and `dup` (each `(n)`). */
  siluMulBackward: op({
    operands: GATED_BACKWARD,
    shape: VEC_SHAPE,
    reference: siluMulBackwardRef,
  }),
  /**
   * `out[i] = gelu_tanh(gate[i]) · up[i]` with `gelu_tanh(g) = 0.5·g·(1 + tanh(√(2/π)·(g + 0.044715·g³)))` (PyTorch's
   * `gelu(approximate='tanh')`, Gemma's FFN). `out` may alias `gate` or `up`.
   */
  geluTanhMul: op({
    operands: GATED,
    shape: VEC_SHAPE,
    reference: gated((g) => 0.5 * g * (1 + Math.tanh(GELU_K * (g + GELU_C * g * g * g)))),
    step: { name: 'geluMul', opcode: 12, operands: ['r:gate', 'r:up', 'r:out', 'n'] },
  }),
  /** Backward of `geluTanhMul`: overwrites `dgate` and `dup` (each `(n)`). */
  geluTanhMulBackward: op({
    operands: GATED_BACKWARD,
    shape: VEC_SHAPE,
    reference: geluTanhMulBackwardRef,
  }),
  /**
   * `out[i] = alpha · x[i]`; `out` may alias `x`. `alpha` is rounded to float32 first (every backend multiplies in
   * float32, as Hugging Face's Gemma scales its embeddings by a float32 `√hidden`).
   */
  scale: op({
    operands: [...f32In(N, 'x'), scalar('alpha', 'num'), ...f32Out(N, 'out'), ...ints('n')],
    shape: VEC_SHAPE,
    reference(x: F32, alpha: number, out: F32, n: number): void {
      const a = Math.fround(alpha);
      for (let i = 0; i < n; i++) out[i] = a * x[i];
    },
    step: { name: 'scale', opcode: 13, operands: ['r:x', 'r:out', 'n', 'c:alpha'] },
  }),
  /** `out[i] = a[i] + b[i]`; `out` may alias `a` or `b`. */
  add: op({
    operands: BINARY,
    shape: VEC_SHAPE,
    reference(a: F32, b: F32, out: F32, n: number): void {
      for (let i = 0; i < n; i++) out[i] = a[i] + b[i];
    },
    step: { name: 'add', opcode: 5, operands: ['r:a', 'r:b', 'r:out', 'n'] },
  }),
  /** `out[i] = a[i] · b[i]`; `out` may alias `a` or `b`. */
  mul: op({
    operands: BINARY,
    shape: VEC_SHAPE,
    reference(a: F32, b: F32, out: F32, n: number): void {
      for (let i = 0; i < n; i++) out[i] = a[i] * b[i];
    },
  }),
  /** `y[i] += alpha · x[i]`. */
  axpy: op({
    operands: [scalar('alpha', 'num'), ...f32In(N, 'x'), ...f32Out(N, 'y'), ...ints('n')],
    shape: VEC_SHAPE,
    reference(alpha: number, x: F32, y: F32, n: number): void {
      for (let i = 0; i < n; i++) y[i] += alpha * x[i];
    },
  }),
};

function siluMulBackwardRef(gate: F32, up: F32, dout: F32, dgate: F32, dup: F32, n: number): void {
  for (let i = 0; i < n; i++) {
    const g = gate[i];
    const sig = 1 / (1 + Math.exp(-g));
    const silu = g * sig;
    const dy = dout[i];
    const u = up[i];
    dup[i] = dy * silu;
    dgate[i] = dy * u * sig * (1 + g * (1 - sig));
  }
}

function geluTanhMulBackwardRef(gate: F32, up: F32, dout: F32, dgate: F32, dup: F32, n: number): void {
  // gelu'(g) = 0.5·(1 + th) + 0.5·g·(1 − th²)·K·(1 + 3C·g²), th = tanh(K·(g + C·g³))
  for (let i = 0; i < n; i++) {
    const g = gate[i];
    const th = Math.tanh(GELU_K * (g + GELU_C * g * g * g));
    dup[i] = dout[i] * 0.5 * g * (1 + th);
    dgate[i] = dout[i] * up[i] * (0.5 * (1 + th) + 0.5 * g * (1 - th * th) * GELU_K * (1 + 3 * GELU_C * g * g));
  }
}
