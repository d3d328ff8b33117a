// Row-wise and elementwise kernels, written once against vec.h and compiled once per ISA (see kernels_avx2.cc /
// kernels_portable.cc). Threading granularity: roughly 32K floats of work per task, below which a job runs inline
// (the pool round-trip would cost more than it saves).
#pragma once

#include <stdlib.h>

#include "kernels.h"
#include "threadpool.h"
#include "vec.h"

namespace echoatt {
namespace ECHOATT_ISA {

constexpr int64_t kGrainElems = 1 << 15;

static inline int64_t rows_grain(int64_t cols) { return max64(1, kGrainElems / max64(cols, 1)); }

// ---------------------------------------------------------------------------------------------------------------
// Elementwise

static void add(const float* a, const float* b, float* out, int64_t n) {
  parallel_for(n, kGrainElems, [&](int64_t i0, int64_t i1) {
    int64_t i = i0;
    for (; i + 8 <= i1; i += 8) store8(out + i, load8(a + i) + load8(b + i));
    if (i < i1) store8_part(out + i, load8_part(a + i, i1 - i) + load8_part(b + i, i1 - i), i1 - i);
  });
}

static void mul(const float* a, const float* b, float* out, int64_t n) {
  parallel_for(n, kGrainElems, [&](int64_t i0, int64_t i1) {
    int64_t i = i0;
    for (; i + 8 <= i1; i += 8) store8(out + i, load8(a + i) * load8(b + i));
    if (i < i1) store8_part(out + i, load8_part(a + i, i1 - i) * load8_part(b + i, i1 - i), i1 - i);
  });
}

static void axpy(float alpha, const float* x, float* y, int64_t n) {
  parallel_for(n, kGrainElems, [&](int64_t i0, int64_t i1) { axpy_row(alpha, x + i0, y + i0, i1 - i0); });
}

static inline F8 sigmoid8(F8 g) { return set8(1.f) / (set8(1.f) + exp8(zero8() - g)); }

static void silu_mul(const float* gate, const float* up, float* out, int64_t n) {
  // silu(g) = g / (1 + e^-g), written as a division (not g·sigmoid) to match the reference at ±Inf.
  auto f = [](F8 g, F8 u) { return g / (set8(1.f) + exp8(zero8() - g)) * u; };
  parallel_for(n, kGrainElems / 4, [&](int64_t i0, int64_t i1) {
    int64_t i = i0;
    for (; i + 8 <= i1; i += 8) store8(out + i, f(load8(gate + i), load8(up + i)));
    if (i < i1) store8_part(out + i, f(load8_part(gate + i, i1 - i), load8_part(up + i, i1 - i)), i1 - i);
  });
}

static void silu_mul_backward(const float* gate, const float* up, const float* dout, float* dgate, float* dup,
                              int64_t n) {
  auto f = [](F8 g, F8 u, F8 dy, F8* dg, F8* du) {
    const F8 one = set8(1.f);
    const F8 sig = sigmoid8(g);
    *du = dy * (g * sig);
    *dg = dy * u * sig * (one + g * (one - sig));
  };
  parallel_for(n, kGrainElems / 4, [&](int64_t i0, int64_t i1) {
    F8 dg, du;
    int64_t i = i0;
    for (; i + 8 <= i1; i += 8) {
      f(load8(gate + i), load8(up + i), load8(dout + i), &dg, &du);
      store8(dgate + i, dg);
      store8(dup + i, du);
    }
    if (i < i1) {
      const int64_t r = i1 - i;
      f(load8_part(gate + i, r), load8_part(up + i, r), load8_part(dout + i, r), &dg, &du);
      store8_part(dgate + i, dg, r);
      store8_part(dup + i, du, r);
    }
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Reductions over a row

static inline float sum_squares(const float* x, int64_t n) {
  F8 s0 = zero8(), s1 = zero8();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const F8 a = load8(x + i), b = load8(x + i + 8);
    s0 = fma8(a, a, s0);
    s1 = fma8(b, b, s1);
  }
  for (; i + 8 <= n; i += 8) {
    const F8 a = load8(x + i);
    s0 = fma8(a, a, s0);
  }
  if (i < n) {
    const F8 a = load8_part(x + i, n - i);
    s1 = fma8(a, a, s1);
  }
  return hsum8(s0 + s1);
}

// Row maximum. NaN handling is left to the exp/sum pass: a NaN element makes the sum NaN and so the whole row.
static inline float row_max(const float* x, int64_t n) {
  F8 m = set8(-INFINITY);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) m = max8(m, load8(x + i));
  if (i < n) m = max8(m, load8_part(x + i, n - i, -INFINITY));
  return hmax8(m);
}

static inline bool has_nan(const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (x[i] != x[i]) return true;
  return false;
}

// out[i] = e^(x[i] - shift) and returns the sum; out may alias x.
static inline float exp_shift_sum(const float* x, float* out, int64_t n, float shift) {
  const F8 vs = set8(shift);
  F8 s = zero8();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const F8 e = exp8(load8(x + i) - vs);
    store8(out + i, e);
    s = s + e;
  }
  if (i < n) {
    // Padding lanes hold -Inf, whose exp is exactly 0, so they add nothing to the sum.
    const F8 e = exp8(load8_part(x + i, n - i, -INFINITY) - vs);
    store8_part(out + i, e, n - i);
    s = s + e;
  }
  return hsum8(s);
}

// log Σ e^x, with the reference's convention that an all −Inf row gives −Inf (and a NaN anywhere gives NaN).
static inline float log_sum_exp(const float* x, int64_t n) {
  const float mx = row_max(x, n);
  if (mx == -INFINITY) return has_nan(x, n) ? NAN : -INFINITY;
  const F8 vm = set8(mx);
  F8 s = zero8();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) s = s + exp8(load8(x + i) - vm);
  if (i < n) s = s + exp8(load8_part(x + i, n - i, -INFINITY) - vm);
  return mx + logf(hsum8(s));
}

// ---------------------------------------------------------------------------------------------------------------
// Normalisation

static void rmsnorm(const float* x, const float* w, float* out, int64_t rows, int64_t dim, float eps) {
  parallel_for(rows, rows_grain(dim), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * dim;
      float* o = out + r * dim;
      const F8 inv = set8(1.f / sqrtf(sum_squares(xr, dim) / (float)dim + eps));
      int64_t j = 0;
      for (; j + 8 <= dim; j += 8) store8(o + j, load8(xr + j) * inv * load8(w + j));
      if (j < dim) store8_part(o + j, load8_part(xr + j, dim - j) * inv * load8_part(w + j, dim - j), dim - j);
    }
  });
}

// Rows are split into chunks; each chunk accumulates its own dw partial, and the partials are added in chunk order
// (deterministic, no atomics).
static void rmsnorm_backward(const float* x, const float* w, const float* dy, float* dx, float* dw, int64_t rows,
                             int64_t dim, float eps) {
  if (rows == 0 || dim == 0) return;
  const int64_t grain = rows_grain(dim);
  const int64_t chunks = min64(pool_threads(), max64(1, rows / grain));
  float* partial = chunks > 1 ? new float[(size_t)(chunks * dim)]() : nullptr;
  parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t r0 = rows * c / chunks, r1 = rows * (c + 1) / chunks;
      float* acc = partial ? partial + c * dim : dw;
      for (int64_t r = r0; r < r1; ++r) {
        const float* xr = x + r * dim;
        const float* g = dy + r * dim;
        float* d = dx + r * dim;
        const float inv = 1.f / sqrtf(sum_squares(xr, dim) / (float)dim + eps);
        // dot = Σ dy·w·x
        F8 s = zero8();
        int64_t j = 0;
        for (; j + 8 <= dim; j += 8) s = fma8(load8(g + j) * load8(w + j), load8(xr + j), s);
        if (j < dim) {
          const int64_t t = dim - j;
          s = fma8(load8_part(g + j, t) * load8_part(w + j, t), load8_part(xr + j, t), s);
        }
        const F8 vr = set8(inv), vc = set8(inv * inv * inv * hsum8(s) / (float)dim);
        auto step = [&](F8 xv, F8 gv, F8 wv, F8 av, F8* dxo, F8* acco) {
          *acco = fma8(gv * xv, vr, av);
          *dxo = vr * wv * gv - xv * vc;
        };
        F8 dxo, acco;
        for (j = 0; j + 8 <= dim; j += 8) {
          step(load8(xr + j), load8(g + j), load8(w + j), load8(acc + j), &dxo, &acco);
          store8(d + j, dxo);
          store8(acc + j, acco);
        }
        if (j < dim) {
          const int64_t t = dim - j;
          step(load8_part(xr + j, t), load8_part(g + j, t), load8_part(w + j, t), load8_part(acc + j, t), &dxo, &acco);
          store8_part(d + j, dxo, t);
          store8_part(acc + j, acco, t);
        }
      }
    }
  });
  if (partial) {
    for (int64_t c = 0; c < chunks; ++c) axpy_row(1.f, partial + c * dim, dw, dim);
    delete[] partial;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// RoPE: pairs (i, i + D/2) ('half') or (2i, 2i+1) ('interleaved'), angle pos·freq_i, negated when inverse.

static void rope(float* x, int64_t n_tok, int64_t n_heads, int64_t head_dim, const int32_t* pos, const float* cos,
                 const float* sin, bool half_style, bool inverse) {
  const int64_t half = head_dim / 2;
  const float sign = inverse ? -1.f : 1.f;
  parallel_for(n_tok, rows_grain(n_heads * head_dim), [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const float* c = cos + (int64_t)pos[t] * half;
      const float* s = sin + (int64_t)pos[t] * half;
      for (int64_t h = 0; h < n_heads; ++h) {
        float* o = x + (t * n_heads + h) * head_dim;
        if (half_style) {
          int64_t i = 0;
          const F8 sg = set8(sign);
          for (; i + 8 <= half; i += 8) {
            const F8 a = load8(o + i), b = load8(o + i + half), cv = load8(c + i), sv = sg * load8(s + i);
            store8(o + i, a * cv - b * sv);
            store8(o + i + half, a * sv + b * cv);
          }
          for (; i < half; ++i) {
            const float a = o[i], b = o[i + half], cv = c[i], sv = sign * s[i];
            o[i] = a * cv - b * sv;
            o[i + half] = a * sv + b * cv;
          }
        } else {
          for (int64_t i = 0; i < half; ++i) {
            const float a = o[2 * i], b = o[2 * i + 1], cv = c[i], sv = sign * s[i];
            o[2 * i] = a * cv - b * sv;
            o[2 * i + 1] = a * sv + b * cv;
          }
        }
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Softmax family

static void softmax(const float* x, float* out, int64_t rows, int64_t cols, bool causal, int64_t causal_offset) {
  parallel_for(rows, rows_grain(cols), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * cols;
      float* o = out + r * cols;
      // Kept columns [0, kept); the rest are exactly 0.
      const int64_t kept = causal ? max64(0, min64(cols, r + causal_offset + 1)) : cols;
      if (kept > 0) {
        const float sum = exp_shift_sum(xr, o, kept, row_max(xr, kept));
        scale_row(1.f / sum, o, kept);
      }
      zero_row(o + kept, cols - kept);
    }
  });
}

static void softmax_backward(const float* p, const float* dp, float* dx, int64_t rows, int64_t cols) {
  parallel_for(rows, rows_grain(cols), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* pr = p + r * cols;
      const float* g = dp + r * cols;
      float* d = dx + r * cols;  // may alias dp: each element is read before it is written
      const F8 dot8 = set8(dot(pr, g, cols));
      int64_t j = 0;
      for (; j + 8 <= cols; j += 8) store8(d + j, load8(pr + j) * (load8(g + j) - dot8));
      if (j < cols) {
        const int64_t t = cols - j;
        store8_part(d + j, load8_part(pr + j, t) * (load8_part(g + j, t) - dot8), t);
      }
    }
  });
}

static inline void sub_scalar_row(const float* x, float* out, int64_t n, float c) {
  const F8 vc = set8(c);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) store8(out + j, load8(x + j) - vc);
  if (j < n) store8_part(out + j, load8_part(x + j, n - j) - vc, n - j);
}

static void log_softmax(const float* x, float* out, int64_t rows, int64_t cols) {
  parallel_for(rows, rows_grain(cols), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) sub_scalar_row(x + r * cols, out + r * cols, cols, log_sum_exp(x + r * cols, cols));
  });
}

static void cross_entropy(const float* logits, const int32_t* targets, float* losses, int64_t rows, int64_t cols,
                          float* dlogits, float grad_scale, int32_t ignore_index) {
  parallel_for(rows, rows_grain(cols), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* x = logits + r * cols;
      float* d = dlogits ? dlogits + r * cols : nullptr;  // may alias x
      const int32_t t = targets[r];
      if (t == ignore_index) {
        losses[r] = 0.f;
        if (d) zero_row(d, cols);
        continue;
      }
      const float lse = log_sum_exp(x, cols);
      const float xt = x[t];
      losses[r] = lse - xt;
      if (!d) continue;
      // d = scale · (e^(x − lse) − onehot): one pass, reading x[j] before overwriting it in place.
      const F8 vl = set8(lse), vs = set8(grad_scale);
      int64_t j = 0;
      for (; j + 8 <= cols; j += 8) store8(d + j, vs * exp8(load8(x + j) - vl));
      if (j < cols) store8_part(d + j, vs * exp8(load8_part(x + j, cols - j) - vl), cols - j);
      d[t] = grad_scale * (exp1(xt - lse) - 1.f);
    }
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Decode-time products: memory bound, so the goal is streaming W exactly once at full bandwidth. Four rows at a
// time share each load of x and keep 8 independent accumulator chains in flight.

// Software prefetch 2 KB ahead in each of the four row streams: the hardware prefetcher alone leaves ~20% of the
// DRAM bandwidth unused on Zen (measured 25 → 30+ GB/s single-threaded). Non-temporal hint: weights are read once
// per token, so keep them from evicting the activations. Prefetching past the end of W is harmless (no fault).
constexpr int64_t kPrefetchAhead = 512;
#define ECHOATT_PREFETCH(p) __builtin_prefetch((p), 0, 0)
// Four rows of W (row stride ldw) dotted with x (length k).
static inline void matvec_rows4(const float* w, int64_t ldw, const float* x, int64_t k, float out[4]) {
  const float* w0 = w;
  const float* w1 = w + ldw;
  const float* w2 = w + 2 * ldw;
  const float* w3 = w + 3 * ldw;
  F8 a0 = zero8(), a1 = zero8(), a2 = zero8(), a3 = zero8();
  F8 b0 = zero8(), b1 = zero8(), b2 = zero8(), b3 = zero8();
  int64_t j = 0;
  for (; j + 16 <= k; j += 16) {
    ECHOATT_PREFETCH(w0 + j + kPrefetchAhead);
    ECHOATT_PREFETCH(w1 + j + kPrefetchAhead);
    ECHOATT_PREFETCH(w2 + j + kPrefetchAhead);
    ECHOATT_PREFETCH(w3 + j + kPrefetchAhead);
    const F8 x0 = load8(x + j), x1 = load8(x + j + 8);
    a0 = fma8(load8(w0 + j), x0, a0);
    a1 = fma8(load8(w1 + j), x0, a1);
    a2 = fma8(load8(w2 + j), x0, a2);
    a3 = fma8(load8(w3 + j), x0, a3);
    b0 = fma8(load8(w0 + j + 8), x1, b0);
    b1 = fma8(load8(w1 + j + 8), x1, b1);
    b2 = fma8(load8(w2 + j + 8), x1, b2);
    b3 = fma8(load8(w3 + j + 8), x1, b3);
  }
  for (; j < k; j += 8) {
    const int64_t t = min64(8, k - j);
    const F8 xv = load8_part(x + j, t);
    a0 = fma8(load8_part(w0 + j, t), xv, a0);
    a1 = fma8(load8_part(w1 + j, t), xv, a1);
    a2 = fma8(load8_part(w2 + j, t), xv, a2);
    a3 = fma8(load8_part(w3 + j, t), xv, a3);
  }
  out[0] = hsum8(a0 + b0);
  out[1] = hsum8(a1 + b1);
  out[2] = hsum8(a2 + b2);
  out[3] = hsum8(a3 + b3);
}

static void matvec(const float* w, const float* x, float* y, int64_t n, int64_t k, bool accumulate) {
  // Row blocks of 4 so every task but the last runs the 4-row kernel.
  const int64_t blocks = (n + 3) / 4;
  parallel_for(blocks, max64(1, kGrainElems / max64(4 * k, 1)), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t i = 4 * b;
      if (i + 4 <= n) {
        float r[4];
        matvec_rows4(w + i * k, k, x, k, r);
        for (int q = 0; q < 4; ++q) y[i + q] = accumulate ? y[i + q] + r[q] : r[q];
      } else {
        for (int64_t q = i; q < n; ++q) {
          const float r = dot(w + q * k, x, k);
          y[q] = accumulate ? y[q] + r : r;
        }
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Half-precision weights (f16 / bf16 bits, as stored in checkpoints)

// Widen n half values to f32. AVX2 builds use F16C for f16 and a 16-bit shift for bf16.
static inline void half_to_f32(const uint16_t* src, float* dst, int64_t n, bool bf16) {
  int64_t i = 0;
#if defined(ECHOATT_ISA_AVX2)
  if (bf16) {
    for (; i + 8 <= n; i += 8) {
      const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
      _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)));
    }
  } else {
    for (; i + 8 <= n; i += 8) {
      const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
      _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
    }
  }
#endif
  for (; i < n; ++i) {
    const uint32_t h = src[i];
    uint32_t bits;
    if (bf16) {
      bits = h << 16;
    } else {
      const uint32_t sign = (h & 0x8000u) << 16;
      uint32_t exp = (h >> 10) & 0x1f;
      uint32_t mant = h & 0x3ff;
      if (exp == 0) {
        if (mant == 0) {
          bits = sign;
        } else {  // subnormal: normalise
          exp = 127 - 15 + 1;
          while (!(mant & 0x400)) {
            mant <<= 1;
            --exp;
          }
          bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
        }
      } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
      } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
      }
    }
    memcpy(dst + i, &bits, 4);
  }
}

// Rows of W per task: the widened block (kHalfRows × k floats) stays in L1/L2 while every row of x uses it.
constexpr int64_t kHalfRows = 4;

#if defined(ECHOATT_ISA_AVX2)
// Eight half values widened in registers (F16C for f16, a 16-bit shift for bf16).
static inline __m256 load_half8(const uint16_t* p, bool bf16) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return bf16 ? _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)) : _mm256_cvtph_ps(h);
}

// Four half rows of W dotted with x, converting in registers: W is read once at 2 bytes per weight.
static inline void matvec_half_rows4(const uint16_t* w, int64_t k, const float* x, bool bf16, float out[4]) {
  const uint16_t* w0 = w;
  const uint16_t* w1 = w + k;
  const uint16_t* w2 = w + 2 * k;
  const uint16_t* w3 = w + 3 * k;
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
  int64_t j = 0;
  for (; j + 16 <= k; j += 16) {
    ECHOATT_PREFETCH(w0 + j + 2 * kPrefetchAhead);
    ECHOATT_PREFETCH(w1 + j + 2 * kPrefetchAhead);
    ECHOATT_PREFETCH(w2 + j + 2 * kPrefetchAhead);
    ECHOATT_PREFETCH(w3 + j + 2 * kPrefetchAhead);
    const __m256 x0 = _mm256_loadu_ps(x + j), x1 = _mm256_loadu_ps(x + j + 8);
    a0 = _mm256_fmadd_ps(load_half8(w0 + j, bf16), x0, a0);
    a1 = _mm256_fmadd_ps(load_half8(w1 + j, bf16), x0, a1);
    a2 = _mm256_fmadd_ps(load_half8(w2 + j, bf16), x0, a2);
    a3 = _mm256_fmadd_ps(load_half8(w3 + j, bf16), x0, a3);
    b0 = _mm256_fmadd_ps(load_half8(w0 + j + 8, bf16), x1, b0);
    b1 = _mm256_fmadd_ps(load_half8(w1 + j + 8, bf16), x1, b1);
    b2 = _mm256_fmadd_ps(load_half8(w2 + j + 8, bf16), x1, b2);
    b3 = _mm256_fmadd_ps(load_half8(w3 + j + 8, bf16), x1, b3);
  }
  out[0] = hsum8({_mm256_add_ps(a0, b0)});
  out[1] = hsum8({_mm256_add_ps(a1, b1)});
  out[2] = hsum8({_mm256_add_ps(a2, b2)});
  out[3] = hsum8({_mm256_add_ps(a3, b3)});
  if (j < k) {  // tail of fewer than 16 columns: widen it and finish in scalar
    float tail[16];
    const uint16_t* rows[4] = {w0, w1, w2, w3};
    for (int q = 0; q < 4; ++q) {
      half_to_f32(rows[q] + j, tail, k - j, bf16);
      for (int64_t t = 0; t < k - j; ++t) out[q] += tail[t] * x[j + t];
    }
  }
}
#endif

static void matmul_half(const float* x, const uint16_t* w, bool bf16, float* out, int64_t rows, int64_t n,
                        int64_t k) {
  if (rows <= kGemmSmallM) {
    // Decode: W is streamed once (2 bytes per weight) and widened four rows at a time into a small buffer.
    const int64_t blocks = (n + kHalfRows - 1) / kHalfRows;
    parallel_for(blocks, max64(1, kGrainElems / max64(kHalfRows * k, 1)), [&](int64_t b0, int64_t b1) {
      float* buf = static_cast<float*>(aligned_alloc(64, ((kHalfRows * k * sizeof(float)) + 63) / 64 * 64));
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t i = kHalfRows * b;
        const int64_t nr = min64(kHalfRows, n - i);
#if defined(ECHOATT_ISA_AVX2)
        if (rows == 1 && nr == kHalfRows) {
          float acc[4];
          matvec_half_rows4(w + i * k, k, x, bf16, acc);
          for (int q = 0; q < 4; ++q) out[i + q] = acc[q];
          continue;
        }
#endif
        half_to_f32(w + i * k, buf, nr * k, bf16);
        for (int64_t r = 0; r < rows; ++r) {
          if (nr == kHalfRows) {
            float acc[4];
            matvec_rows4(buf, k, x + r * k, k, acc);
            for (int q = 0; q < 4; ++q) out[r * n + i + q] = acc[q];
          } else {
            for (int64_t q = 0; q < nr; ++q) out[r * n + i + q] = dot(buf + q * k, x + r * k, k);
          }
        }
      }
      free(buf);
    });
    return;
  }
  // Prefill: widen a panel of W rows, then one f32 GEMM for it; the conversion is amortised over all rows of x.
  const int64_t panel = max64(16, min64(n, (int64_t)(1 << 20) / max64(k, 1)));
  float* buf = static_cast<float*>(aligned_alloc(64, ((panel * k * sizeof(float)) + 63) / 64 * 64));
  for (int64_t j0 = 0; j0 < n; j0 += panel) {
    const int64_t nj = min64(panel, n - j0);
    parallel_for(nj, rows_grain(k), [&](int64_t r0, int64_t r1) {
      half_to_f32(w + (j0 + r0) * k, buf + r0 * k, (r1 - r0) * k, bf16);
    });
    GemmArgs g{};
    g.m = rows, g.n = nj, g.k = k;
    g.trans_a = false, g.trans_b = true;
    g.a = x, g.b = buf, g.c = out + j0;
    g.lda = k, g.ldb = k, g.ldc = n;
    g.alpha = 1.f, g.beta = 0.f;
    g.batch = 1, g.stride_a = 0, g.stride_b = 0, g.stride_c = 0;
    echoatt::gemm(g);
  }
  free(buf);
}

// GEMM with m ≤ kGemmSmallM rows: every element of B is used m times, so it is a matvec in disguise and the
// packing of the blocked path would only add traffic. op(A) is first copied to a dense (m, k) scratch with alpha
// folded in; then either each row of a transposed B is dotted with the m rows (B as a weight matrix, y = x·Wᵀ),
// or rows of B are streamed and axpy'd into column blocks of C (y = x·W).
static void gemm_small_m(const GemmArgs& g) {
  const int64_t m = g.m, n = g.n, k = g.k;
  float* abuf = new float[(size_t)(m * k)];
  for (int64_t bi = 0; bi < g.batch; ++bi) {
    const float* a = g.a + bi * g.stride_a;
    const float* b = g.b + bi * g.stride_b;
    float* c = g.c + bi * g.stride_c;
    for (int64_t i = 0; i < m; ++i)
      for (int64_t p = 0; p < k; ++p) abuf[i * k + p] = g.alpha * (g.trans_a ? a[p * g.lda + i] : a[i * g.lda + p]);
    auto finish = [&](float* cij, float v) { *cij = g.beta == 0.f ? v : v + g.beta * *cij; };
    if (g.trans_b) {
      // Rows of B are rows of W: the 4-row matvec kernel per row of A, B rows re-read from L1/L2 for i > 0.
      const int64_t blocks = (n + 3) / 4;
      parallel_for(blocks, max64(1, kGrainElems / max64(4 * k, 1)), [&](int64_t b0, int64_t b1) {
        for (int64_t blk = b0; blk < b1; ++blk) {
          const int64_t j = 4 * blk;
          for (int64_t i = 0; i < m; ++i) {
            if (j + 4 <= n) {
              float r[4];
              matvec_rows4(b + j * g.ldb, g.ldb, abuf + i * k, k, r);
              for (int q = 0; q < 4; ++q) finish(c + i * g.ldc + j + q, r[q]);
            } else {
              for (int64_t q = j; q < n; ++q) finish(c + i * g.ldc + q, dot(abuf + i * k, b + q * g.ldb, k));
            }
          }
        }
      });
    } else {
      constexpr int64_t kCols = 512;  // C block of m × 512 floats stays in L1 while B rows stream past
      const int64_t col_blocks = (n + kCols - 1) / kCols;
      parallel_for(col_blocks, max64(1, kGrainElems / max64(k * kCols, 1)), [&](int64_t cb0, int64_t cb1) {
        float acc[kGemmSmallM * kCols];
        for (int64_t cb = cb0; cb < cb1; ++cb) {
          const int64_t j0 = cb * kCols, nc = min64(kCols, n - j0);
          for (int64_t i = 0; i < m; ++i) zero_row(acc + i * kCols, nc);
          for (int64_t p = 0; p < k; ++p) {
            const float* bp = b + p * g.ldb + j0;
            for (int64_t i = 0; i < m; ++i) axpy_row(abuf[i * k + p], bp, acc + i * kCols, nc);
          }
          for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < nc; ++j) finish(c + i * g.ldc + j0 + j, acc[i * kCols + j]);
        }
      });
    }
  }
  delete[] abuf;
}

}  // namespace ECHOATT_ISA
}  // namespace echoatt
