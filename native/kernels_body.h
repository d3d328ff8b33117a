// Row-wise kernels (reductions, RoPE, the softmax family), written once against vec.h and compiled once per ISA
// (see kernels_<isa>.cc; elementwise ones and RMSNorm: pointwise_body.h; products with weights: matmul_body.h).
// Threading granularity: roughly 32K floats of work per task, below which a job runs inline (the pool round-trip
// would cost more than it saves).
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

}  // namespace ECHOATT_ISA
}  // namespace echoatt
