/**
 * Every kernel, on every available backend, against the reference oracle; plus hand-computed values for the
 * oracle itself, finite-difference checks of every backward kernel, NaN/Inf propagation and typed shape errors.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { availableBackends, getBackend } from '../src/backend/index.js';
import { loadNativeBackend } from '../src/backend/native.js';
import { ReferenceBackend } from '../src/backend/reference.js';
import type { Backend, RopeStyle } from '../src/backend/backend.js';
import { DTypeError, ShapeError } from '../src/errors.js';
import { assertClose, finiteDifference, randInts, randn } from './helpers.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../src/tensor/dtype.js';

const ref = new ReferenceBackend();
const SIZES = [1, 7, 63, 65, 129];

function ropeTables(maxPos: number, headDim: number, theta = 10000): { cos: Float32Array; sin: Float32Array } {
  const half = headDim / 2;
  const cos = new Float32Array(maxPos * half);
  const sin = new Float32Array(maxPos * half);
  for (let p = 0; p < maxPos; p++) {
    for (let i = 0; i < half; i++) {
      const a = p * theta ** (-(2 * i) / headDim);
      cos[p * half + i] = Math.cos(a);
      sin[p * half + i] = Math.sin(a);
    }
  }
  return { cos, sin };
}

/** `heads` causal softmax maps `(heads, t, t)` (masked entries 0), some entries underflowing to exactly 0. */
function causalMaps(heads: number, t: number, seed: number): Float32Array {
  const x = randn(heads * t * t, seed, -8, 8);
  for (let i = 0; i < x.length; i += 7) x[i] = -200; // e^−200 underflows in float32
  const p = new Float32Array(x.length);
  ref.softmax(x, p, heads * t, t, 0);
  // The causal offset is per row of the flattened (heads·t) rows; re-mask per head so row r keeps columns 0..r.
  for (let h = 0; h < heads; h++) for (let r = 0; r < t; r++) for (let c = r + 1; c < t; c++) p[(h * t + r) * t + c] = 0;
  for (let r = 0; r < heads * t; r++) {
    const o = r * t;
    let sum = 0;
    for (let c = 0; c < t; c++) sum += p[o + c];
    if (sum > 0) for (let c = 0; c < t; c++) p[o + c] /= sum;
  }
  return p;
}

describe('reference oracle: hand-computed values', () => {
  test('gemm 2x3 · 3x2, all layouts', () => {
    const a = Float32Array.of(1, 2, 3, 4, 5, 6); // (2,3)
    const b = Float32Array.of(7, 8, 9, 10, 11, 12); // (3,2)
    const c = new Float32Array(4);
    ref.gemm({ m: 2, n: 2, k: 3, a, b, c });
    assert.deepEqual([...c], [58, 64, 139, 154]);
    const bt = Float32Array.of(7, 9, 11, 8, 10, 12); // Bᵀ stored (2,3)
    ref.gemm({ m: 2, n: 2, k: 3, a, b: bt, c, transB: true });
    assert.deepEqual([...c], [58, 64, 139, 154]);
    const at = Float32Array.of(1, 4, 2, 5, 3, 6); // Aᵀ stored (3,2)
    ref.gemm({ m: 2, n: 2, k: 3, a: at, b, c, transA: true, alpha: 2, beta: 1 });
    assert.deepEqual([...c], [174, 192, 417, 462]);
  });

  test('softmax, causal mask, rmsnorm, siluMul', () => {
    const out = new Float32Array(4);
    ref.softmax(Float32Array.of(0, Math.log(3), 5, 7), out, 2, 2, 0);
    assertClose(out, [1, 0, 1 / (1 + Math.exp(2)), Math.exp(2) / (1 + Math.exp(2))], 'softmax');
    const y = new Float32Array(2);
    ref.rmsnorm(Float32Array.of(3, 4), Float32Array.of(1, 2), y, 1, 2, 0);
    const r = Math.sqrt(12.5);
    assertClose(y, [3 / r, 8 / r], 'rmsnorm');
    const s = new Float32Array(1);
    ref.siluMul(Float32Array.of(1), Float32Array.of(2), s, 1);
    assertClose(s, [2 / (1 + Math.exp(-1))], 'siluMul');
  });

  test('rmsnorm with a weight offset, geluTanhMul, scale', () => {
    const y = new Float32Array(4);
    ref.rmsnorm(Float32Array.of(3, 4, 1, 1), Float32Array.of(0, 1), y, 2, 2, 0, 1); // two rows, scales 1 + w
    const r = Math.sqrt(12.5);
    assertClose(y, [3 / r, 8 / r, 1, 2], 'rmsnorm wOffset');
    const g = new Float32Array(3);
    ref.geluTanhMul(Float32Array.of(1, 0, -3), Float32Array.of(2, 5, 1), g, 3);
    // 0.5·g·(1 + tanh(√(2/π)·(g + 0.044715·g³))) at g = 1 and −3, in float64 (PyTorch's float32: 0.8411920, −0.0036374)
    assertClose(g, [2 * 0.8411919906082768, 0, -0.0036373920817729943], 'geluTanhMul', 1e-6, 1e-9);
    const x = Float32Array.of(1, -2);
    ref.scale(x, 0.1, x, 2);
    assert.deepEqual([...x], [Math.fround(0.1), Math.fround(-0.2)]);
  });

  test('rope rotates pairs by pos·freq in both conventions', () => {
    const { cos, sin } = ropeTables(4, 4);
    // interleaved: pairs (0,1), (2,3); half: pairs (0,2), (1,3)
    const xi = Float32Array.of(1, 0, 1, 0);
    ref.rope(xi, 1, 1, 4, Int32Array.of(1), cos, sin, 'interleaved');
    assertClose(xi, [Math.cos(1), Math.sin(1), Math.cos(0.01), Math.sin(0.01)], 'interleaved');
    const xh = Float32Array.of(1, 1, 0, 0);
    ref.rope(xh, 1, 1, 4, Int32Array.of(1), cos, sin, 'half');
    assertClose(xh, [Math.cos(1), Math.cos(0.01), Math.sin(1), Math.sin(0.01)], 'half');
  });

  test('attention with equal keys averages the visible values', () => {
    const d = 2;
    const q = randn(3 * d, 1);
    const k = new Float32Array(3 * d).fill(1);
    const v = Float32Array.of(1, 10, 2, 20, 3, 30);
    const out = new Float32Array(3 * d);
    const probs = new Float32Array(9);
    ref.attention({ q, k, v, out, probs, batch: 1, tq: 3, s: 3, nHeads: 1, nKvHeads: 1, headDim: d, qPos0: 0, scale: 1 });
    assertClose(out, [1, 10, 1.5, 15, 2, 20], 'out');
    assertClose(probs, [1, 0, 0, 0.5, 0.5, 0, 1 / 3, 1 / 3, 1 / 3], 'probs');
  });

  test('packProbs / compareProbs: triangles, Σ p², entropies, JS = 0 for identical maps, Gram', () => {
    const probs = Float32Array.of(1, 0, 0.25, 0.75); // one head, T = 2
    const packed = new Float32Array(3);
    const st = new Float64Array(2);
    ref.packProbs(probs, packed, 1, 2, st);
    assert.deepEqual([...packed], [1, 0.25, 0.75]);
    assertClose(st, [1 + 0.0625 + 0.5625, -(0.25 * Math.log(0.25) + 0.75 * Math.log(0.75))], 'pack stats', 1e-12, 1e-15);
    const other = Float32Array.of(1, 0.75, 0.25);
    const cmp = new Float64Array(4);
    const gram = new Float64Array(2);
    ref.compareProbs([packed, packed], other, 1, 3, cmp, gram);
    assertClose(cmp.subarray(0, 2), [1 + 2 * 0.1875, -2 * 0.5 * Math.log(0.5)], 'pair stats', 1e-12, 1e-15);
    assert.deepEqual([...gram], [1.375, 1.375]);
    const self = new Float64Array(2);
    ref.compareProbs([packed], packed, 1, 3, self);
    assert.equal(self[1] - st[1], 0, 'a map against itself: the entropy of packProbs');
  });

  test('klDivergence and adamw: hand-computed values', () => {
    const losses = new Float32Array(1);
    const d = new Float32Array(2);
    ref.klDivergence(Float32Array.of(0, 0), Float32Array.of(0, 2 * Math.log(3)), losses, 1, 2, 2, d, 1);
    // teacher at T = 2: p = (1/4, 3/4); student: q = (1/2, 1/2)
    assertClose(losses, [0.25 * Math.log(0.5) + 0.75 * Math.log(1.5)], 'kl', 1e-6, 1e-7);
    assertClose(d, [0.25, -0.25], 'dstudent', 1e-6, 1e-7);
    const w = Float32Array.of(1);
    ref.adamw({ w, g: Float32Array.of(0.2), m: new Float32Array(1), v: new Float32Array(1), n: 1, lr: 0.1, beta1: 0.9, beta2: 0.99, eps: 0, weightDecay: 0.5, step: 1, gradScale: 0.5 });
    assertClose(w, [1 * (1 - 0.05) - 0.1], 'first AdamW step: lr·sign(g) plus decay', 1e-6, 1e-7);
  });

  test('crossEntropy matches −log softmax and ignores ignoreIndex', () => {
    const logits = Float32Array.of(1, 2, 3, 1, 1, 1);
    const losses = new Float32Array(2);
    ref.crossEntropy(logits, Int32Array.of(2, -100), losses, 2, 3);
    const lse = Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3));
    assertClose(losses, [lse - 3, 0], 'losses');
  });
});

describe('native kernel set selection', () => {
  const native = loadNativeBackend();
  // Linux lists in /proc/cpuinfo only the extensions the kernel enabled (zmm state saved), as dispatch.cc checks.
  const cpuinfo = fs.existsSync('/proc/cpuinfo') ? fs.readFileSync('/proc/cpuinfo', 'utf8') : '';
  const flags = new Set(/^flags\s*:(.*)$/m.exec(cpuinfo)?.[1]?.trim().split(/\s+/) ?? []);
  test('reports the widest set the CPU and the build have, capped by ECHOATT_NATIVE_SIMD', { skip: !native || flags.size === 0 }, () => {
    const built = native!.builtSimd;
    assert.ok(built.includes('portable'));
    const want = process.env.ECHOATT_NATIVE_SIMD;
    const avx2 = built.includes('avx2') && ['avx2', 'fma', 'f16c'].every((f) => flags.has(f));
    const avx512 = avx2 && built.includes('avx512') && ['avx512f', 'avx512vl', 'avx512bw'].every((f) => flags.has(f));
    const expected = want === 'portable' || !avx2 ? 'portable' : want === 'avx2' || !avx512 ? 'avx2' : 'avx512';
    assert.equal(native!.simd, expected);
  });
});

for (const name of availableBackends()) {
  const be: Backend = getBackend(name);
  describe(`backend ${name} vs reference`, () => {
    test('gemm: all layouts, odd shapes, alpha/beta, batch, strides and offsets', () => {
      let seed = 10;
      for (const m of SIZES) {
        for (const n of [1, 17, 65]) {
          for (const k of [1, 63, 129]) {
            for (const [transA, transB] of [[false, false], [false, true], [true, false], [true, true]] as const) {
              const a = randn(m * k + 3, seed++);
              const b = randn(k * n + 5, seed++);
              const c0 = randn(m * n + 2, seed++);
              const args = { m, n, k, transA, transB, aOff: 3, bOff: 5, cOff: 2, alpha: 0.5, beta: 2 };
              const expect = c0.slice();
              ref.gemm({ ...args, a, b, c: expect });
              const got = c0.slice();
              be.gemm({ ...args, a, b, c: got });
              assertClose(got, expect, `gemm m=${m} n=${n} k=${k} tA=${transA} tB=${transB}`, 1e-4, 1e-4);
            }
          }
        }
      }
      // Batched with padded leading dims and a broadcast B (stride 0), beta=0 ignores NaN in C.
      const [m, n, k, batch] = [5, 33, 20, 3];
      const lda = k + 3;
      const ldc = n + 1;
      const a = randn(batch * m * lda, 1);
      const b = randn(k * n, 2);
      const args = { m, n, k, lda, ldc, batch, strideA: m * lda, strideB: 0, strideC: m * ldc };
      const expect = new Float32Array(batch * m * ldc);
      ref.gemm({ ...args, a, b, c: expect });
      const got = new Float32Array(batch * m * ldc).fill(NaN);
      be.gemm({ ...args, a, b, c: got });
      for (let i = 0; i < got.length; i++) if (i % ldc === n) got[i] = 0; // padding column is not written
      assertClose(got, expect, 'batched gemm', 1e-4, 1e-4);
    });

    test('gemm: partial register tiles of every table (6×16, 14×32), batched, strided, every layout', () => {
      // m and n around multiples of 6/14 and 16/32 (a partial second 16-lane half of a 32-wide tile, a tile with
      // only its first half, exact multiples), odd k; C rows padded with NaN that must survive (no write past n)
      // and, with beta = 0, must not leak into the result.
      let seed = 500;
      for (const [m, n, k] of [[14, 32, 9], [13, 31, 17], [29, 44, 33], [15, 50, 1], [42, 95, 65], [11, 16, 7], [28, 64, 3]] as const) {
        for (const [transA, transB] of [[false, false], [false, true], [true, false], [true, true]] as const) {
          for (const beta of [0, 0.75]) {
            const batch = 2;
            const lda = (transA ? m : k) + 2;
            const ldb = (transB ? k : n) + 1;
            const ldc = n + 3;
            const rowsA = transA ? k : m;
            const rowsB = transB ? n : k;
            const a = randn(batch * rowsA * lda, seed++);
            const b = randn(batch * rowsB * ldb, seed++);
            const c0 = randn(batch * m * ldc, seed++);
            for (let i = 0; i < c0.length; i++) if (i % ldc >= n || beta === 0) c0[i] = NaN;
            const args = {
              m, n, k, transA, transB, lda, ldb, ldc, batch, alpha: -1.5, beta,
              strideA: rowsA * lda, strideB: rowsB * ldb, strideC: m * ldc,
            };
            const expect = c0.slice();
            ref.gemm({ ...args, a, b, c: expect });
            const got = c0.slice();
            be.gemm({ ...args, a, b, c: got });
            const what = `gemm ${m}x${n}x${k} tA=${transA} tB=${transB} beta=${beta}`;
            for (let i = 0; i < got.length; i++) {
              if (i % ldc >= n) {
                assert.ok(Number.isNaN(got[i]), `${what}: padding at ${i} written`);
                got[i] = expect[i] = 0;
              }
            }
            assertClose(got, expect, what, 1e-4, 1e-4);
          }
        }
      }
    });

    test('batched gemm writing side by side (per-head column blocks of one activation)', () => {
      // 3 heads of 8 columns in rows of 30: C_i = columns [8i, 8i + 8); a shared B (stride 0), A_i one head apart.
      const [m, n, k, batch, ldc] = [5, 8, 12, 3, 30];
      const a = randn(m * 40, 1);
      const b = randn(k * n, 2);
      const args = { m, n, k, lda: 40, strideA: 12, strideB: 0, ldc, strideC: 8, batch, cOff: 2 };
      const e = new Float32Array(2 + m * ldc).fill(7);
      const g = e.slice();
      ref.gemm({ ...args, a, b, c: e });
      be.gemm({ ...args, a, b, c: g });
      assertClose(g, e, 'side-by-side batched gemm', 1e-4, 1e-4);
      assert.equal(g[2 + 24], 7, 'columns right of the last block are untouched');
      assert.throws(() => be.gemm({ ...args, a, b, c: g, strideC: 4 }), (err: unknown) => err instanceof ShapeError && /overlap/.test(String(err)));
    });

    test('gemm at transformer sizes (blocking edges)', () => {
      // k past every table's KC (several k blocks accumulating onto C), m past its MC (several row blocks).
      for (const [m, n, k] of [[128, 256, 300], [97, 513, 257], [1, 1000, 512], [3, 700, 64], [61, 97, 2100], [301, 70, 1100]] as const) {
        for (const transB of [false, true]) {
          const a = randn(m * k, m + k);
          const b = randn(k * n, n);
          const e = new Float32Array(m * n);
          const g = new Float32Array(m * n);
          ref.gemm({ m, n, k, a, b, c: e, transB });
          be.gemm({ m, n, k, a, b, c: g, transB });
          assertClose(g, e, `gemm ${m}x${n}x${k} transB=${transB}`, 1e-4, 1e-4);
        }
      }
    });

    test('gemm with few rows (the decode streaming path): padded B rows, alpha/beta', () => {
      for (const m of [2, 3, 4]) {
        for (const [n, k] of [[37, 70], [9, 2048]] as const) {
          const ldb = k + 3;
          const a = randn(m * k, m);
          const b = randn(n * ldb, n + k);
          const c0 = randn(m * n, 5);
          const args = { m, n, k, transB: true, ldb, alpha: 0.5, beta: 2 };
          const e = c0.slice();
          const g = c0.slice();
          ref.gemm({ ...args, a, b, c: e });
          be.gemm({ ...args, a, b, c: g });
          assertClose(g, e, `gemm small m=${m} n=${n} k=${k}`, 1e-4, 1e-4);
        }
      }
    });

    test('matvec, plain and accumulating, with a weight offset', () => {
      for (const n of SIZES) {
        for (const k of SIZES) {
          const w = randn(n * k + 4, n * 31 + k);
          const x = randn(k, 7);
          const y0 = randn(n, 8);
          for (const acc of [false, true]) {
            const e = y0.slice();
            const g = y0.slice();
            ref.matvec(w, x, e, n, k, 4, acc);
            be.matvec(w, x, g, n, k, 4, acc);
            assertClose(g, e, `matvec ${n}x${k} acc=${acc}`, 1e-4, 1e-4);
          }
        }
      }
    });

    test('matmulHalf: f16 and bf16 weights, decode (1 row) and prefill shapes, equals gemm on widened weights', () => {
      for (const dtype of ['f16', 'bf16'] as const) {
        for (const [rows, n, k] of [[1, 1, 1], [1, 7, 63], [1, 65, 129], [1, 300, 257], [2, 33, 64], [3, 40, 100], [4, 50, 2048], [5, 129, 65], [9, 31, 96], [16, 70, 200], [37, 100, 300], [128, 96, 256], [29, 61, 1030], [50, 200, 77], [20, 48, 40], [17, 33, 9]] as const) {
          const wf = randn(n * k, rows + n + k, -2, 2);
          const bits = dtype === 'f16' ? f32ToF16(wf) : f32ToBf16(wf);
          const widened = dtype === 'f16' ? f16ToF32(bits) : bf16ToF32(bits);
          const x = randn(rows * k, 3);
          const e = new Float32Array(rows * n);
          ref.gemm({ m: rows, n, k, a: x, b: widened, c: e, transB: true });
          const g = new Float32Array(rows * n).fill(NaN);
          be.matmulHalf(x, bits, dtype, g, rows, n, k);
          assertClose(g, e, `matmulHalf ${dtype} ${rows}x${n}x${k}`, 1e-4, 1e-4);
        }
      }
      assert.throws(() => be.matmulHalf(new Float32Array(4), new Uint16Array(1), 'f16', new Float32Array(2), 2, 1, 2), ShapeError);
      assert.throws(() => be.matmulHalf(new Float32Array(4), new Uint16Array(4), 'f8' as 'f16', new Float32Array(2), 2, 1, 2), DTypeError);
    });

    test('rmsnorm forward (in place too) and backward', () => {
      for (const dim of SIZES) {
        const rows = 3;
        const x = randn(rows * dim, dim);
        const w = randn(dim, dim + 1);
        const e = new Float32Array(rows * dim);
        ref.rmsnorm(x, w, e, rows, dim, 1e-5);
        const g = x.slice();
        be.rmsnorm(g, w, g, rows, dim, 1e-5);
        assertClose(g, e, `rmsnorm dim=${dim}`);
        const dy = randn(rows * dim, 3);
        const [dxE, dwE] = [new Float32Array(rows * dim), randn(dim, 4)];
        const [dxG, dwG] = [new Float32Array(rows * dim), dwE.slice()];
        ref.rmsnormBackward(x, w, dy, dxE, dwE, rows, dim, 1e-5);
        be.rmsnormBackward(x, w, dy, dxG, dwG, rows, dim, 1e-5);
        assertClose(dxG, dxE, `rmsnormBackward dx dim=${dim}`, 1e-4, 1e-5);
        assertClose(dwG, dwE, `rmsnormBackward dw dim=${dim}`, 1e-4, 1e-5);
        // Gemma's 1 + w scales, and per-head norms (many rows of a head's width)
        const heads = 16;
        const xh = randn(heads * dim, dim + 2);
        const eh = new Float32Array(xh.length);
        ref.rmsnorm(xh, w, eh, heads, dim, 1e-6, 1);
        const gh = xh.slice();
        be.rmsnorm(gh, w, gh, heads, dim, 1e-6, 1);
        assertClose(gh, eh, `rmsnorm wOffset=1 dim=${dim}`);
        const dyh = randn(xh.length, 5);
        const [dxhE, dwhE] = [new Float32Array(xh.length), randn(dim, 6)];
        const [dxhG, dwhG] = [new Float32Array(xh.length), dwhE.slice()];
        ref.rmsnormBackward(xh, w, dyh, dxhE, dwhE, heads, dim, 1e-6, 1);
        be.rmsnormBackward(xh, w, dyh, dxhG, dwhG, heads, dim, 1e-6, 1);
        assertClose(dxhG, dxhE, `rmsnormBackward wOffset=1 dx dim=${dim}`, 1e-4, 1e-5);
        assertClose(dwhG, dwhE, `rmsnormBackward wOffset=1 dw dim=${dim}`, 1e-4, 1e-5);
      }
    });

    test('rmsnorm: wOffset 0 gives the bits of a call without it', () => {
      const [rows, dim] = [5, 67];
      const x = randn(rows * dim, 1);
      const w = randn(dim, 2);
      w[3] = -0;
      const [a, b] = [new Float32Array(x.length), new Float32Array(x.length)];
      be.rmsnorm(x, w, a, rows, dim, 1e-5);
      be.rmsnorm(x, w, b, rows, dim, 1e-5, 0);
      assert.deepEqual(new Uint32Array(b.buffer), new Uint32Array(a.buffer));
      const dy = randn(x.length, 3);
      const [dxa, dwa, dxb, dwb] = [x.length, dim, x.length, dim].map((n) => new Float32Array(n));
      be.rmsnormBackward(x, w, dy, dxa, dwa, rows, dim, 1e-5);
      be.rmsnormBackward(x, w, dy, dxb, dwb, rows, dim, 1e-5, 0);
      assert.deepEqual(new Uint32Array(dxb.buffer), new Uint32Array(dxa.buffer));
      assert.deepEqual(new Uint32Array(dwb.buffer), new Uint32Array(dwa.buffer));
    });

    test('rope: both conventions, forward and inverse', () => {
      const { cos, sin } = ropeTables(300, 128);
      for (const style of ['interleaved', 'half'] as RopeStyle[]) {
        for (const headDim of [2, 8, 64, 128]) {
          const { cos: c2, sin: s2 } = headDim === 128 ? { cos, sin } : ropeTables(300, headDim, 500);
          const nTok = 7;
          const nHeads = 3;
          const x = randn(nTok * nHeads * headDim, headDim);
          const pos = Int32Array.of(0, 1, 2, 5, 63, 64, 299);
          const e = x.slice();
          const g = x.slice();
          ref.rope(e, nTok, nHeads, headDim, pos, c2, s2, style);
          be.rope(g, nTok, nHeads, headDim, pos, c2, s2, style);
          assertClose(g, e, `rope ${style} D=${headDim}`);
          be.rope(g, nTok, nHeads, headDim, pos, c2, s2, style, true);
          assertClose(g, x, `rope inverse ${style} D=${headDim}`, 1e-5, 1e-5);
        }
      }
    });

    test('attention: prefill, decode with a cache stride, GQA, probs on and off', () => {
      const cases = [
        { batch: 1, tq: 1, s: 1, nHeads: 1, nKvHeads: 1, headDim: 8, qPos0: 0, cap: 1 },
        { batch: 2, tq: 7, s: 7, nHeads: 4, nKvHeads: 2, headDim: 16, qPos0: 0, cap: 7 },
        { batch: 1, tq: 65, s: 65, nHeads: 8, nKvHeads: 4, headDim: 8, qPos0: 0, cap: 65 },
        { batch: 2, tq: 1, s: 63, nHeads: 6, nKvHeads: 2, headDim: 64, qPos0: 62, cap: 100 },
        { batch: 1, tq: 5, s: 129, nHeads: 4, nKvHeads: 1, headDim: 32, qPos0: 124, cap: 129 },
        { batch: 1, tq: 129, s: 129, nHeads: 2, nKvHeads: 2, headDim: 64, qPos0: 0, cap: 140 },
        // Query-head groups larger than one work unit (6 per KV head), keys over several key blocks, D not a multiple of 32.
        { batch: 2, tq: 3, s: 70, nHeads: 12, nKvHeads: 2, headDim: 40, qPos0: 67, cap: 75 },
        { batch: 1, tq: 1, s: 300, nHeads: 16, nKvHeads: 2, headDim: 128, qPos0: 299, cap: 300 },
      ];
      let seed = 100;
      // With more threads than KV heads × batch the kernels split a query-head group over several work units.
      const threadCounts = [be.threads, 7];
      const saved = be.threads;
      for (const c of cases.flatMap((c) => threadCounts.map((threads) => ({ ...c, threads })))) {
        const { batch, tq, s, nHeads, nKvHeads, headDim, cap, threads } = c;
        be.setThreads(threads);
        const q = randn(batch * tq * nHeads * headDim, seed++, -2, 2);
        const k = randn(batch * cap * nKvHeads * headDim, seed++, -2, 2);
        const v = randn(batch * cap * nKvHeads * headDim, seed++);
        const p = { ...c, q, k, v, scale: 1 / Math.sqrt(headDim), kvBatchStride: cap * nKvHeads * headDim };
        const oE = new Float32Array(q.length);
        const pE = new Float32Array(batch * nHeads * tq * s);
        ref.attention({ ...p, out: oE, probs: pE });
        const oG = new Float32Array(q.length);
        be.attention({ ...p, out: oG });
        assertClose(oG, oE, `attention out ${JSON.stringify(c)}`, 1e-4, 1e-5);
        const oG2 = new Float32Array(q.length);
        const pG = new Float32Array(pE.length).fill(NaN);
        be.attention({ ...p, out: oG2, probs: pG });
        assertClose(oG2, oE, `attention out (probs on) ${JSON.stringify(c)}`, 1e-4, 1e-5);
        assertClose(pG, pE, `attention probs ${JSON.stringify(c)}`, 1e-4, 1e-6);
        const oP = new Float32Array(q.length);
        be.probsTimesV({ ...p, probs: pE, out: oP });
        assertClose(oP, oE, `probsTimesV ${JSON.stringify(c)}`, 1e-4, 1e-5);
      }
      be.setThreads(saved);
    });

    test('attention and probsTimesV backward', () => {
      for (const c of [
        { batch: 1, tq: 5, s: 5, nHeads: 2, nKvHeads: 1, headDim: 4 },
        { batch: 2, tq: 33, s: 33, nHeads: 4, nKvHeads: 2, headDim: 16 },
      ]) {
        const { batch, tq, s, nHeads, nKvHeads, headDim } = c;
        const q = randn(batch * tq * nHeads * headDim, 1);
        const k = randn(batch * s * nKvHeads * headDim, 2);
        const v = randn(batch * s * nKvHeads * headDim, 3);
        const probs = new Float32Array(batch * nHeads * tq * s);
        const scale = 1 / Math.sqrt(headDim);
        ref.attention({ ...c, q, k, v, out: new Float32Array(q.length), probs, qPos0: 0, scale });
        const dout = randn(q.length, 4);
        const dProbsExtra = randn(probs.length, 5);
        const mk = () => ({ dq: new Float32Array(q.length), dk: new Float32Array(k.length), dv: new Float32Array(v.length) });
        const e = mk();
        const g = mk();
        ref.attentionBackward({ ...c, q, k, v, probs, dout, scale, dProbsExtra, ...e });
        be.attentionBackward({ ...c, q, k, v, probs, dout, scale, dProbsExtra, ...g });
        assertClose(g.dq, e.dq, 'dq', 1e-4, 1e-5);
        assertClose(g.dk, e.dk, 'dk', 1e-4, 1e-5);
        assertClose(g.dv, e.dv, 'dv', 1e-4, 1e-5);
        const pe = { dProbs: new Float32Array(probs.length), dv: new Float32Array(v.length) };
        const pg = { dProbs: new Float32Array(probs.length), dv: new Float32Array(v.length) };
        ref.probsTimesVBackward({ ...c, probs, v, dout, ...pe });
        be.probsTimesVBackward({ ...c, probs, v, dout, ...pg });
        assertClose(pg.dProbs, pe.dProbs, 'dProbs', 1e-4, 1e-5);
        assertClose(pg.dv, pe.dv, 'dv (probsTimesV)', 1e-4, 1e-5);
      }
    });

    test('softmax (causal offsets), softmaxBackward, logSoftmax, crossEntropy', () => {
      for (const cols of SIZES) {
        const rows = 4;
        const x = randn(rows * cols, cols, -8, 8);
        for (const off of [undefined, 0, -1, 3]) {
          const e = new Float32Array(x.length);
          const g = x.slice();
          ref.softmax(x, e, rows, cols, off);
          be.softmax(g, g, rows, cols, off);
          assertClose(g, e, `softmax cols=${cols} off=${off}`, 1e-5, 1e-7);
        }
        const p = new Float32Array(x.length);
        ref.softmax(x, p, rows, cols);
        const dp = randn(x.length, 9);
        const dxE = new Float32Array(x.length);
        const dxG = new Float32Array(x.length);
        ref.softmaxBackward(p, dp, dxE, rows, cols);
        be.softmaxBackward(p, dp, dxG, rows, cols);
        assertClose(dxG, dxE, `softmaxBackward cols=${cols}`, 1e-4, 1e-6);
        const lE = new Float32Array(x.length);
        const lG = new Float32Array(x.length);
        ref.logSoftmax(x, lE, rows, cols);
        be.logSoftmax(x, lG, rows, cols);
        assertClose(lG, lE, `logSoftmax cols=${cols}`, 1e-5, 1e-5);
        const targets = randInts(rows, cols, cols);
        targets[1] = -100;
        const [lossE, lossG] = [new Float32Array(rows), new Float32Array(rows)];
        const dE = new Float32Array(x.length);
        const dG = x.slice();
        ref.crossEntropy(x, targets, lossE, rows, cols, dE, 0.25);
        be.crossEntropy(dG, targets, lossG, rows, cols, dG, 0.25); // dlogits aliasing logits
        assertClose(lossG, lossE, `crossEntropy loss cols=${cols}`, 1e-5, 1e-5);
        assertClose(dG, dE, `crossEntropy grad cols=${cols}`, 1e-5, 1e-6);
      }
    });

    test('elementwise: geluTanhMul (+backward, in place), scale (in place)', () => {
      for (const n of [...SIZES, 1000]) {
        const a = randn(n, n, -8, 8);
        const b = randn(n, n + 1);
        const e = new Float32Array(n);
        ref.geluTanhMul(a, b, e, n);
        const g = a.slice();
        be.geluTanhMul(g, b, g, n);
        assertClose(g, e, `geluTanhMul n=${n}`, 1e-5, 1e-6);
        const g2 = b.slice();
        be.geluTanhMul(a, g2, g2, n);
        assertClose(g2, e, `geluTanhMul out = up n=${n}`, 1e-5, 1e-6);
        const dout = randn(n, 3);
        const [dgE, duE, dgG, duG] = [0, 0, 0, 0].map(() => new Float32Array(n));
        ref.geluTanhMulBackward(a, b, dout, dgE, duE, n);
        be.geluTanhMulBackward(a, b, dout, dgG, duG, n);
        assertClose(dgG, dgE, `geluTanhMulBackward dgate n=${n}`, 1e-5, 1e-6);
        assertClose(duG, duE, `geluTanhMulBackward dup n=${n}`, 1e-5, 1e-6);
        ref.scale(a, Math.sqrt(2048), e, n);
        const s = a.slice();
        be.scale(s, Math.sqrt(2048), s, n);
        assert.deepEqual([...s], [...e], `scale n=${n}: float32 products, the same bits`);
      }
    });

    test('elementwise: siluMul (+backward), add, mul, axpy', () => {
      for (const n of [...SIZES, 1000]) {
        const a = randn(n, n, -6, 6);
        const b = randn(n, n + 1);
        const e = new Float32Array(n);
        const g = new Float32Array(n);
        ref.siluMul(a, b, e, n);
        be.siluMul(a, b, g, n);
        assertClose(g, e, `siluMul n=${n}`);
        const dout = randn(n, 3);
        const [dgE, duE, dgG, duG] = [0, 0, 0, 0].map(() => new Float32Array(n));
        ref.siluMulBackward(a, b, dout, dgE, duE, n);
        be.siluMulBackward(a, b, dout, dgG, duG, n);
        assertClose(dgG, dgE, `siluMulBackward dgate n=${n}`);
        assertClose(duG, duE, `siluMulBackward dup n=${n}`);
        ref.add(a, b, e, n);
        be.add(a, b, g, n);
        assertClose(g, e, 'add');
        ref.mul(a, b, e, n);
        be.mul(a, b, g, n);
        assertClose(g, e, 'mul');
        const yE = b.slice();
        const yG = b.slice();
        ref.axpy(-0.5, a, yE, n);
        be.axpy(-0.5, a, yG, n);
        assertClose(yG, yE, 'axpy');
      }
    });

    test('attention-map statistics: packProbs, compareProbs (stats, Gram, several maps) within 2e-6 of float64', () => {
      // Causal softmax maps with exact zeros (underflowed entries); T = 130 gives K = 8515, more than one chunk group.
      for (const [H, T] of [[1, 1], [3, 7], [5, 33], [2, 130]] as const) {
        const K = (T * (T + 1)) / 2;
        const maps = [1, 2, 3].map((seed) => causalMaps(H, T, seed));
        const packed = maps.map(() => [new Float32Array(H * K), new Float32Array(H * K)]);
        const st = maps.map(() => [new Float64Array(2 * H), new Float64Array(2 * H)]);
        maps.forEach((m, i) => {
          ref.packProbs(m, packed[i][0], H, T, st[i][0]);
          be.packProbs(m, packed[i][1], H, T, st[i][1]);
          assert.deepEqual(packed[i][1], packed[i][0], `packed H=${H} T=${T}`);
          assertClose(st[i][1], st[i][0], `pack stats H=${H} T=${T}`, 2e-6, 1e-12);
        });
        const [e, g] = [new Float64Array(6 * H), new Float64Array(6 * H)];
        const [ge, gg] = [new Float64Array(3 * H * H), new Float64Array(3 * H * H)];
        const a = [packed[0][0], packed[1][0], packed[2][0]];
        ref.compareProbs(a, packed[2][0], H, K, e, ge);
        be.compareProbs(a, packed[2][0], H, K, g, gg);
        assertClose(g, e, `compare stats H=${H} T=${T}`, 2e-6, 1e-12);
        assertClose(gg, ge, `gram H=${H} T=${T}`, 2e-6, 1e-12);
        // A map against itself repeats packProbs' sums bit for bit, so identical maps have a JS divergence of exactly 0.
        for (let h = 0; h < 2 * H; h++) assert.equal(g[4 * H + h], st[2][1][h], `self-comparison = pack stats (${h})`);
        const noGram = new Float64Array(2 * H);
        be.compareProbs([packed[0][0]], packed[2][0], H, K, noGram);
        assert.deepEqual(noGram, g.subarray(0, 2 * H), 'without the Gram matrix: the same stats');
      }
    });

    test('compareProbs does not depend on the thread count', () => {
      const [H, T] = [4, 200];
      const K = (T * (T + 1)) / 2;
      const [a, b] = [1, 2].map((seed) => {
        const p = new Float32Array(H * K);
        be.packProbs(causalMaps(H, T, seed), p, H, T, new Float64Array(2 * H));
        return p;
      });
      const run = (threads: number) => {
        const old = be.threads;
        be.setThreads(threads);
        const out = [new Float64Array(2 * H), new Float64Array(H * H)];
        be.compareProbs([a], b, H, K, out[0], out[1]);
        be.setThreads(old);
        return out;
      };
      assert.deepEqual(run(1), run(3));
    });

    test('klDivergence: per-row KL at a temperature and its gradient (dstudent aliasing student)', () => {
      for (const cols of [...SIZES, 1000, 2100]) {
        const rows = 3;
        const s = randn(rows * cols, cols, -6, 6);
        const t = randn(rows * cols, cols + 1, -6, 6);
        t[0] = -Infinity; // a class the teacher rules out: p = 0 adds nothing
        for (const T of [1, 2.5]) {
          const [lE, lG] = [new Float32Array(rows), new Float32Array(rows)];
          const dE = new Float32Array(s.length);
          const dG = s.slice();
          ref.klDivergence(s, t, lE, rows, cols, T, dE, 0.3);
          be.klDivergence(dG, t, lG, rows, cols, T, dG, 0.3);
          assertClose(lG, lE, `kl loss cols=${cols} T=${T}`, 1e-4, 2e-6);
          assertClose(dG, dE, `kl grad cols=${cols} T=${T}`, 1e-4, 1e-7);
          const lNo = new Float32Array(rows);
          be.klDivergence(s, t, lNo, rows, cols, T);
          assert.deepEqual(lNo, lG, 'losses do not depend on the gradient being asked for');
        }
      }
    });

    test('adamw update and sumSquares', () => {
      for (const n of [...SIZES, 1000, 40000]) {
        const w = randn(n, n, -2, 2);
        const g = randn(n, n + 1, -1, 1);
        const m = randn(n, n + 2, -0.1, 0.1);
        const v = randn(n, n + 3, 0, 0.01);
        const p = { n, lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step: 3, gradScale: 0.5 };
        const e = { w: w.slice(), g, m: m.slice(), v: v.slice() };
        const got = { w: w.slice(), g, m: m.slice(), v: v.slice() };
        ref.adamw({ ...p, ...e });
        be.adamw({ ...p, ...got });
        // m and v are sums of two terms that may cancel: absolute tolerances at float32 rounding of the terms.
        assertClose(got.m, e.m, `adamw m n=${n}`, 1e-6, 2e-8);
        assertClose(got.v, e.v, `adamw v n=${n}`, 1e-6, 1e-10);
        assertClose(got.w, e.w, `adamw w n=${n}`, 1e-6, 1e-7);
        const sq = be.sumSquares(g, n);
        assert.ok(Math.abs(sq - ref.sumSquares(g, n)) <= 1e-6 * sq, `sumSquares n=${n}`);
      }
      assert.equal(be.sumSquares(new Float32Array(4), 0), 0);
    });


    test('embedding gather and scatter-add backward', () => {
      const [vocab, dim] = [50, 65];
      const table = randn(vocab * dim, 1);
      const ids = Int32Array.of(3, 0, 49, 3, 7);
      const e = new Float32Array(ids.length * dim);
      const g = new Float32Array(ids.length * dim);
      ref.embedding(table, ids, e, vocab, dim);
      be.embedding(table, ids, g, vocab, dim);
      assert.deepEqual(g, e);
      const dOut = randn(ids.length * dim, 2);
      const dE = randn(vocab * dim, 3);
      const dG = dE.slice();
      ref.embeddingBackward(dOut, ids, dE, vocab, dim);
      be.embeddingBackward(dOut, ids, dG, vocab, dim);
      assertClose(dG, dE, 'embeddingBackward');
    });

    test('NaN and Inf propagate', () => {
      const a = Float32Array.of(1, NaN, 2, 3);
      const b = Float32Array.of(1, 1, 1, 1);
      const c = new Float32Array(4);
      be.gemm({ m: 2, n: 2, k: 2, a, b, c });
      assert.ok(Number.isNaN(c[0]) && Number.isNaN(c[1]), 'gemm row with NaN is NaN');
      assert.equal(c[2], 5);
      const sm = new Float32Array(4);
      be.softmax(Float32Array.of(1, NaN, 0, -Infinity), sm, 2, 2);
      assert.ok(Number.isNaN(sm[0]) && Number.isNaN(sm[1]), 'softmax row with NaN is NaN');
      assert.deepEqual([...sm.subarray(2)], [1, 0]);
      const y = new Float32Array(2);
      be.rmsnorm(Float32Array.of(Infinity, 1), Float32Array.of(1, 1), y, 1, 2, 1e-5);
      assert.ok(Number.isNaN(y[0]) || !Number.isFinite(y[0]));
      const s = new Float32Array(2);
      be.siluMul(Float32Array.of(NaN, 1), Float32Array.of(1, Infinity), s, 2);
      assert.ok(Number.isNaN(s[0]));
      assert.equal(s[1], Infinity);
      const gl = new Float32Array(4);
      be.geluTanhMul(Float32Array.of(NaN, Infinity, -Infinity, -1e4), Float32Array.of(1, 1, 1, 1), gl, 4);
      assert.ok(Number.isNaN(gl[0]) && Number.isNaN(gl[2]), 'gelu(NaN) and gelu(−Inf) · 1 are NaN, as 0.5·g·(1 + tanh) is');
      assert.equal(gl[1], Infinity);
      assert.ok(gl[3] === 0, 'gelu(−1e4) underflows to (−)0');
      const q = Float32Array.of(NaN, 0);
      const kv = Float32Array.of(1, 1, 2, 2);
      const out = new Float32Array(2);
      be.attention({ q, k: kv, v: kv, out, batch: 1, tq: 1, s: 2, nHeads: 1, nKvHeads: 1, headDim: 2, qPos0: 1, scale: 1 });
      assert.ok(Number.isNaN(out[0]), 'attention with NaN query is NaN');
    });

    test('bad shapes and dtypes give typed errors naming the op', () => {
      const f = new Float32Array(4);
      assert.throws(() => be.gemm({ m: 3, n: 2, k: 2, a: f, b: f, c: f }), (e: unknown) => e instanceof ShapeError && /gemm/.test(e.message) && /m=3/.test(e.message));
      assert.throws(() => be.matvec(f, f, f, 2, 3), (e: unknown) => e instanceof ShapeError && /matvec/.test(e.message));
      assert.throws(() => be.rmsnorm(f, f, new Float32Array(2), 2, 2, 1e-5), ShapeError);
      assert.throws(() => be.add(f, new Int32Array(4) as unknown as Float32Array, f, 4), DTypeError);
      assert.throws(() => be.embedding(f, Int32Array.of(2), f, 2, 2), (e: unknown) => e instanceof ShapeError && /token id 2/.test(e.message));
      assert.throws(() => be.crossEntropy(f, Int32Array.of(5), new Float32Array(1), 1, 4), (e: unknown) => e instanceof ShapeError && /target 5/.test(e.message));
      assert.throws(() => be.attention({ q: f, k: f, v: f, out: f, batch: 1, tq: 1, s: 1, nHeads: 3, nKvHeads: 2, headDim: 4, qPos0: 0, scale: 1 }), /multiple of nKvHeads/);
      assert.throws(() => be.rope(f, 1, 1, 4, Int32Array.of(9), f, f, 'half'), (e: unknown) => e instanceof ShapeError && /position 9/.test(e.message));
      assert.throws(() => be.gemm({ m: -1, n: 2, k: 2, a: f, b: f, c: f }), ShapeError);
      assert.throws(() => be.rmsnorm(f, f, f, 2, 2, 1e-5, NaN), (e: unknown) => e instanceof ShapeError && /wOffset/.test(e.message));
      assert.throws(() => be.geluTanhMul(f, f, new Float32Array(3), 4), (e: unknown) => e instanceof ShapeError && /geluTanhMul/.test(e.message));
      assert.throws(() => be.geluTanhMulBackward(f, f, f, f, new Float32Array(3), 4), (e: unknown) => e instanceof ShapeError && /dup/.test(e.message));
      assert.throws(() => be.scale(f, 2, new Float32Array(3), 4), (e: unknown) => e instanceof ShapeError && /scale/.test(e.message));
      for (const window of [-1, 1.5]) {
        assert.throws(() => be.attention({ q: f, k: f, v: f, out: f, batch: 1, tq: 1, s: 1, nHeads: 1, nKvHeads: 1, headDim: 4, qPos0: 0, scale: 1, window }), /window must be a non-negative integer/);
      }
    });
  });
}

describe('reference backward kernels match finite differences', () => {
  // Central differences in float64 over a loss L = Σ r ⊙ f(x), with f evaluated by the reference kernel.
  const fd = finiteDifference;

  test('rmsnorm', () => {
    const [rows, dim] = [2, 5];
    const x = randn(rows * dim, 1);
    const w = randn(dim, 2);
    const r = randn(rows * dim, 3);
    const dx = new Float32Array(x.length);
    const dw = new Float32Array(dim);
    ref.rmsnormBackward(x, w, r, dx, dw, rows, dim, 1e-5);
    const fwd = (xx: Float32Array, ww: Float32Array) => {
      const y = new Float32Array(rows * dim);
      ref.rmsnorm(xx, ww, y, rows, dim, 1e-5);
      return y;
    };
    assertClose(dx, fd((xx) => fwd(xx, w), x, r), 'dx', 1e-2, 2e-3);
    assertClose(dw, fd((ww) => fwd(x, ww), w, r), 'dw', 1e-2, 2e-3);
  });

  test('siluMul', () => {
    const n = 6;
    const g = randn(n, 1, -3, 3);
    const u = randn(n, 2);
    const r = randn(n, 3);
    const dg = new Float32Array(n);
    const du = new Float32Array(n);
    ref.siluMulBackward(g, u, r, dg, du, n);
    const fwd = (gg: Float32Array, uu: Float32Array) => {
      const y = new Float32Array(n);
      ref.siluMul(gg, uu, y, n);
      return y;
    };
    assertClose(dg, fd((gg) => fwd(gg, u), g, r), 'dgate', 1e-2, 2e-3);
    assertClose(du, fd((uu) => fwd(g, uu), u, r), 'dup', 1e-2, 2e-3);
  });

  test('rmsnorm with a weight offset', () => {
    const [rows, dim] = [3, 4];
    const x = randn(rows * dim, 1);
    const w = randn(dim, 2, -0.5, 0.5);
    const r = randn(rows * dim, 3);
    const dx = new Float32Array(x.length);
    const dw = new Float32Array(dim);
    ref.rmsnormBackward(x, w, r, dx, dw, rows, dim, 1e-6, 1);
    const fwd = (xx: Float32Array, ww: Float32Array) => {
      const y = new Float32Array(rows * dim);
      ref.rmsnorm(xx, ww, y, rows, dim, 1e-6, 1);
      return y;
    };
    assertClose(dx, fd((xx) => fwd(xx, w), x, r), 'dx', 1e-2, 2e-3);
    assertClose(dw, fd((ww) => fwd(x, ww), w, r), 'dw', 1e-2, 2e-3);
  });

  test('geluTanhMul', () => {
    const n = 8;
    const g = randn(n, 1, -4, 4);
    const u = randn(n, 2);
    const r = randn(n, 3);
    const dg = new Float32Array(n);
    const du = new Float32Array(n);
    ref.geluTanhMulBackward(g, u, r, dg, du, n);
    const fwd = (gg: Float32Array, uu: Float32Array) => {
      const y = new Float32Array(n);
      ref.geluTanhMul(gg, uu, y, n);
      return y;
    };
    assertClose(dg, fd((gg) => fwd(gg, u), g, r), 'dgate', 1e-2, 2e-3);
    assertClose(du, fd((uu) => fwd(g, uu), u, r), 'dup', 1e-2, 2e-3);
  });

  test('attention (q, k, v) and probsTimesV (probs)', () => {
    const c = { batch: 1, tq: 4, s: 4, nHeads: 2, nKvHeads: 1, headDim: 3, qPos0: 0, scale: 0.7 };
    const q = randn(c.tq * c.nHeads * c.headDim, 1);
    const k = randn(c.s * c.headDim, 2);
    const v = randn(c.s * c.headDim, 3);
    const r = randn(q.length, 4);
    const fwd = (qq: Float32Array, kk: Float32Array, vv: Float32Array) => {
      const out = new Float32Array(q.length);
      ref.attention({ ...c, q: qq, k: kk, v: vv, out });
      return out;
    };
    const probs = new Float32Array(c.nHeads * c.tq * c.s);
    ref.attention({ ...c, q, k, v, out: new Float32Array(q.length), probs });
    const grads = { dq: new Float32Array(q.length), dk: new Float32Array(k.length), dv: new Float32Array(v.length) };
    ref.attentionBackward({ ...c, q, k, v, probs, dout: r, ...grads });
    assertClose(grads.dq, fd((x) => fwd(x, k, v), q, r), 'dq', 1e-2, 2e-3);
    assertClose(grads.dk, fd((x) => fwd(q, x, v), k, r), 'dk', 1e-2, 2e-3);
    assertClose(grads.dv, fd((x) => fwd(q, k, x), v, r), 'dv', 1e-2, 2e-3);
    const dProbs = new Float32Array(probs.length);
    ref.probsTimesVBackward({ ...c, probs, v, dout: r, dProbs, dv: new Float32Array(v.length) });
    const pv = (pp: Float32Array) => {
      const out = new Float32Array(q.length);
      ref.probsTimesV({ ...c, probs: pp, v, out });
      return out;
    };
    assertClose(dProbs, fd(pv, probs, r), 'dProbs', 1e-2, 2e-3);
  });

  test('klDivergence gradient (gradScale = 1/T gives ∂loss/∂student)', () => {
    const [rows, cols, T] = [2, 5, 1.7];
    const s = randn(rows * cols, 1, -2, 2);
    const t = randn(rows * cols, 2, -2, 2);
    const d = new Float32Array(s.length);
    ref.klDivergence(s, t, new Float32Array(rows), rows, cols, T, d, 1 / T);
    const loss = (x: Float32Array) => {
      const l = new Float32Array(rows);
      ref.klDivergence(x, t, l, rows, cols, T);
      return l;
    };
    assertClose(d, fd(loss, s, new Float32Array(rows).fill(1)), 'dstudent', 1e-2, 2e-3);
  });

  test('crossEntropy gradient', () => {
    const [rows, cols] = [3, 5];
    const x = randn(rows * cols, 1, -2, 2);
    const t = Int32Array.of(0, 4, 2);
    const d = new Float32Array(x.length);
    ref.crossEntropy(x, t, new Float32Array(rows), rows, cols, d, 1);
    const ones = new Float32Array(rows).fill(1);
    const loss = (xx: Float32Array) => {
      const l = new Float32Array(rows);
      ref.crossEntropy(xx, t, l, rows, cols);
      return l;
    };
    assertClose(d, fd(loss, x, ones), 'dlogits', 1e-2, 2e-3);
  });
});
