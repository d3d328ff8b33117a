// Training kernels beside the model's own: the distillation KL at a temperature, AdamW's update and the squared
// norm of a gradient (for clipping). Compiled once per ISA like kernels_body.h; semantics are those of the Backend
// methods klDivergence, adamw and sumSquares (src/backend/backend.ts).
#pragma once

#include <vector>

#include "kernels_body.h"

namespace echoatt {
namespace ECHOATT_ISA {

// log Σ e^(scale·x) for scale > 0 (the max of scale·x is scale · max x); an all −Inf row gives −Inf, NaN gives NaN.
static inline float log_sum_exp_scaled(const float* x, int64_t n, float scale) {
  const float mx = row_max(x, n);
  if (mx == -INFINITY) return has_nan(x, n) ? NAN : -INFINITY;
  const float shift = mx * scale;
  const F8 vs = set8(scale), vm = set8(-shift);
  F8 s = zero8();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) s = s + exp8(fma8(load8(x + i), vs, vm));
  if (i < n) s = s + exp8(fma8(load8_part(x + i, n - i, -INFINITY), vs, vm));
  return shift + logf(hsum8(s));
}

// Per row: p = softmax(teacher / T), q = softmax(student / T), loss = Σ p (log p − log q) (terms with p = 0 skipped);
// dstudent (when given; may alias student) = grad_scale · (q − p). Sums of 1024 entries are f32, their total f64.
static void kl_div(const KlDivArgs& a) {
  const int64_t cols = a.cols;
  parallel_for(a.rows, rows_grain(cols), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* s = a.student + r * cols;
      const float* t = a.teacher + r * cols;
      float* d = a.dstudent ? a.dstudent + r * cols : nullptr;
      const F8 vt = set8(a.inv_temp), vs = set8(-log_sum_exp_scaled(s, cols, a.inv_temp));
      const F8 vq = set8(-log_sum_exp_scaled(t, cols, a.inv_temp)), gs = set8(a.grad_scale);
      double total = 0.0;
      F8 acc = zero8();
      auto step = [&](int64_t j, int64_t m) {
        const bool full = m == 8;
        const F8 ls = fma8(full ? load8(s + j) : load8_part(s + j, m), vt, vs);
        const F8 lt = fma8(full ? load8(t + j) : load8_part(t + j, m, -INFINITY), vt, vq);
        const F8 p = exp8(lt);
        acc = acc + select_gt(p, zero8(), p * (lt - ls), zero8());
        if (!d) return;
        const F8 g = gs * (exp8(ls) - p);
        if (full) store8(d + j, g);
        else store8_part(d + j, g, m);
      };
      int64_t j = 0;
      while (j + 8 <= cols) {
        const int64_t end = min64(cols, j + 1024);
        for (; j + 8 <= end; j += 8) step(j, 8);
        total += (double)hsum8(acc);
        acc = zero8();
      }
      if (j < cols) step(j, cols - j);
      a.losses[r] = (float)(total + (double)hsum8(acc));
    }
  });
}

// m ← β1 m + (1 − β1) g', v ← β2 v + (1 − β2) g'², w ← w · decay − lr · (m / c1) / (√(v / c2) + ε), g' = scale · g.
static void adamw(const AdamWArgs& a) {
  parallel_for(a.n, kGrainElems, [&](int64_t i0, int64_t i1) {
    const F8 b1 = set8(a.beta1), b2 = set8(a.beta2), nb1 = set8(1.f - a.beta1), nb2 = set8(1.f - a.beta2);
    const F8 c1 = set8(a.c1), c2 = set8(a.c2), lr = set8(a.lr), eps = set8(a.eps), decay = set8(a.decay);
    const F8 gs = set8(a.grad_scale);
    auto update = [&](int64_t i, int64_t n) {
      const bool full = n == 8;
      const F8 g = gs * (full ? load8(a.g + i) : load8_part(a.g + i, n));
      const F8 m = fma8(b1, full ? load8(a.m + i) : load8_part(a.m + i, n), nb1 * g);
      const F8 v = fma8(b2, full ? load8(a.v + i) : load8_part(a.v + i, n), nb2 * (g * g));
      const F8 w = full ? load8(a.w + i) : load8_part(a.w + i, n);
      const F8 w2 = w * decay - lr * (m / c1) / (sqrt8(v / c2) + eps);
      if (full) {
        store8(a.m + i, m);
        store8(a.v + i, v);
        store8(a.w + i, w2);
      } else {
        store8_part(a.m + i, m, n);
        store8_part(a.v + i, v, n);
        store8_part(a.w + i, w2, n);
      }
    };
    int64_t i = i0;
    for (; i + 8 <= i1; i += 8) update(i, 8);
    if (i < i1) update(i, i1 - i);
  });
}

// Σ x² over n floats: f32 sums of 16384 entries, added in order in f64 (the same result for any thread count).
static double sum_squares_total(const float* x, int64_t n) {
  constexpr int64_t kChunk = 1 << 14;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> part((size_t)chunks);
  parallel_for(chunks, max64(1, kGrainElems / kChunk), [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) part[c] = (double)sum_squares(x + c * kChunk, min64(kChunk, n - c * kChunk));
  });
  double s = 0.0;
  for (int64_t c = 0; c < chunks; ++c) s += part[c];
  return s;
}

}  // namespace ECHOATT_ISA
}  // namespace echoatt
