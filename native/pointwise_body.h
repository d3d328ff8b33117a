// Elementwise kernels (activations, add / mul / axpy / scale) and RMSNorm, written once against vec.h and compiled
// once per ISA like kernels_body.h, whose row reductions and threading grain they use.
#pragma once

#include "kernels_body.h"

namespace echoatt {
namespace ECHOATT_ISA {

// ---------------------------------------------------------------------------------------------------------------
// Elementwise

// out[i] = f(a[i], b[i]), eight lanes at a time, threads splitting the range in `grain`-element tasks.
template <class Fn>
static inline void map2(const float* a, const float* b, float* out, int64_t n, int64_t grain, Fn f) {
  parallel_for(n, grain, [&](int64_t i0, int64_t i1) {
    int64_t i = i0;
    for (; i + 8 <= i1; i += 8) store8(out + i, f(load8(a + i), load8(b + i)));
    if (i < i1) store8_part(out + i, f(load8_part(a + i, i1 - i), load8_part(b + i, i1 - i)), i1 - i);
  });
}

// The backward of a gated activation: f(g, u, dy, &dg, &du) lane-wise into dgate and dup.
template <class Fn>
static inline void map3to2(const float* gate, const float* up, const float* dout, float* dgate, float* dup,
                           int64_t n, Fn f) {
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

static void add(const float* a, const float* b, float* out, int64_t n) {
  map2(a, b, out, n, kGrainElems, [](F8 x, F8 y) { return x + y; });
}

static void mul(const float* a, const float* b, float* out, int64_t n) {
  map2(a, b, out, n, kGrainElems, [](F8 x, F8 y) { return x * y; });
}

static void axpy(float alpha, const float* x, float* y, int64_t n) {
  parallel_for(n, kGrainElems, [&](int64_t i0, int64_t i1) { axpy_row(alpha, x + i0, y + i0, i1 - i0); });
}

static inline F8 sigmoid8(F8 g) { return set8(1.f) / (set8(1.f) + exp8(zero8() - g)); }

static void silu_mul(const float* gate, const float* up, float* out, int64_t n) {
  // silu(g) = g / (1 + e^-g), written as a division (not g·sigmoid) to match the reference at ±Inf.
  auto f = [](F8 g, F8 u) { return g / (set8(1.f) + exp8(zero8() - g)) * u; };
  map2(gate, up, out, n, kGrainElems / 4, f);
}

static void silu_mul_backward(const float* gate, const float* up, const float* dout, float* dgate, float* dup,
                              int64_t n) {
  auto f = [](F8 g, F8 u, F8 dy, F8* dg, F8* du) {
    const F8 one = set8(1.f);
    const F8 sig = sigmoid8(g);
    *du = dy * (g * sig);
    *dg = dy * u * sig * (one + g * (one - sig));
  };
  map3to2(gate, up, dout, dgate, dup, n, f);
}

// GELU, tanh approximation: 0.5·g·(1 + tanh(u)) with u = √(2/π)·(g + 0.044715·g³) equals g·σ(2u) = g / (1 + e^(−2u)),
// one exp8 and a division like silu_mul (and, like the reference, NaN at g = −Inf and +Inf at g = +Inf).
constexpr float kGeluM2K = -1.5957691216057308f;  // −2·√(2/π)
constexpr float kGeluC = 0.044715f;
static inline F8 gelu_neg2u(F8 g) { return g * fma8(set8(kGeluM2K * kGeluC), g * g, set8(kGeluM2K)); }

static void gelu_tanh_mul(const float* gate, const float* up, float* out, int64_t n) {
  auto f = [](F8 g, F8 u) { return g / (set8(1.f) + exp8(gelu_neg2u(g))) * u; };
  map2(gate, up, out, n, kGrainElems / 4, f);
}

// With s = σ(2u): gelu = g·s and gelu' = s·(1 + g·(1 − s)·2√(2/π)·(1 + 3·0.044715·g²)).
static void gelu_tanh_mul_backward(const float* gate, const float* up, const float* dout, float* dgate, float* dup,
                                   int64_t n) {
  auto f = [](F8 g, F8 u, F8 dy, F8* dg, F8* du) {
    const F8 one = set8(1.f);
    const F8 s = one / (one + exp8(gelu_neg2u(g)));
    const F8 du2 = fma8(set8(-3.f * kGeluM2K * kGeluC), g * g, set8(-kGeluM2K));  // 2u' = 2√(2/π)·(1 + 3C·g²)
    *du = dy * (g * s);
    *dg = dy * u * s * (one + g * (one - s) * du2);
  };
  map3to2(gate, up, dout, dgate, dup, n, f);
}

// out = alpha · x; out may alias x.
static void scale(const float* x, float alpha, float* out, int64_t n) {
  const F8 va = set8(alpha);
  parallel_for(n, kGrainElems, [&](int64_t i0, int64_t i1) {
    int64_t i = i0;
    for (; i + 8 <= i1; i += 8) store8(out + i, va * load8(x + i));
    if (i < i1) store8_part(out + i, va * load8_part(x + i, i1 - i), i1 - i);
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Normalisation

// RMSNorm scales: w + w_offset (Gemma stores the scale as 1 + w), or with no offset w itself, bit for bit (adding
// 0 would already turn a −0 weight into +0). Padding lanes of a partial load hold the offset; callers never store them.
template <bool OFF>
struct NormWeight {
  const float* w;
  F8 off;
  F8 load(int64_t j) const { return OFF ? load8(w + j) + off : load8(w + j); }
  F8 load_part(int64_t j, int64_t t) const { return OFF ? load8_part(w + j, t) + off : load8_part(w + j, t); }
};

template <bool OFF>
static void rmsnorm_t(const float* x, NormWeight<OFF> w, float* out, int64_t rows, int64_t dim, float eps) {
  parallel_for(rows, rows_grain(dim), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * dim;
      float* o = out + r * dim;
      const F8 inv = set8(1.f / sqrtf(sum_squares(xr, dim) / (float)dim + eps));
      int64_t j = 0;
      for (; j + 8 <= dim; j += 8) store8(o + j, load8(xr + j) * inv * w.load(j));
      if (j < dim) store8_part(o + j, load8_part(xr + j, dim - j) * inv * w.load_part(j, dim - j), dim - j);
    }
  });
}

static void rmsnorm(const float* x, const float* w, float* out, int64_t rows, int64_t dim, float eps, float w_offset) {
  if (w_offset == 0.f) rmsnorm_t<false>(x, {w, zero8()}, out, rows, dim, eps);
  else rmsnorm_t<true>(x, {w, set8(w_offset)}, out, rows, dim, eps);
}

// One row of the backward: d (dim) = ∂L/∂x, acc (dim) += ∂L/∂w.
template <bool OFF>
static inline void rmsnorm_backward_row(const float* xr, NormWeight<OFF> w, const float* g, float* d, float* acc,
                                        int64_t dim, float eps) {
  const float inv = 1.f / sqrtf(sum_squares(xr, dim) / (float)dim + eps);
  // dot = Σ dy·w·x
  F8 s = zero8();
  int64_t j = 0;
  for (; j + 8 <= dim; j += 8) s = fma8(load8(g + j) * w.load(j), load8(xr + j), s);
  if (j < dim) {
    const int64_t t = dim - j;
    s = fma8(load8_part(g + j, t) * w.load_part(j, t), load8_part(xr + j, t), s);
  }
  const F8 vr = set8(inv), vc = set8(inv * inv * inv * hsum8(s) / (float)dim);
  auto step = [&](F8 xv, F8 gv, F8 wv, F8 av, F8* dxo, F8* acco) {
    *acco = fma8(gv * xv, vr, av);
    *dxo = vr * wv * gv - xv * vc;
  };
  F8 dxo, acco;
  for (j = 0; j + 8 <= dim; j += 8) {
    step(load8(xr + j), load8(g + j), w.load(j), load8(acc + j), &dxo, &acco);
    store8(d + j, dxo);
    store8(acc + j, acco);
  }
  if (j < dim) {
    const int64_t t = dim - j;
    step(load8_part(xr + j, t), load8_part(g + j, t), w.load_part(j, t), load8_part(acc + j, t), &dxo, &acco);
    store8_part(d + j, dxo, t);
    store8_part(acc + j, acco, t);
  }
}

// Rows are split into chunks; each chunk accumulates its own dw partial, and the partials are added in chunk order
// (deterministic, no atomics).
template <bool OFF>
static void rmsnorm_backward_t(const float* x, NormWeight<OFF> w, const float* dy, float* dx, float* dw, int64_t rows,
                               int64_t dim, float eps) {
  if (rows == 0 || dim == 0) return;
  const int64_t grain = rows_grain(dim);
  const int64_t chunks = min64(pool_threads(), max64(1, rows / grain));
  float* partial = chunks > 1 ? new float[(size_t)(chunks * dim)]() : nullptr;
  parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t r0 = rows * c / chunks, r1 = rows * (c + 1) / chunks;
      float* acc = partial ? partial + c * dim : dw;
      for (int64_t r = r0; r < r1; ++r) rmsnorm_backward_row(x + r * dim, w, dy + r * dim, dx + r * dim, acc, dim, eps);
    }
  });
  if (partial) {
    for (int64_t c = 0; c < chunks; ++c) axpy_row(1.f, partial + c * dim, dw, dim);
    delete[] partial;
  }
}

static void rmsnorm_backward(const float* x, const float* w, const float* dy, float* dx, float* dw, int64_t rows,
                             int64_t dim, float eps, float w_offset) {
  if (w_offset == 0.f) rmsnorm_backward_t<false>(x, {w, zero8()}, dy, dx, dw, rows, dim, eps);
  else rmsnorm_backward_t<true>(x, {w, set8(w_offset)}, dy, dx, dw, rows, dim, eps);
}

}  // namespace ECHOATT_ISA
}  // namespace echoatt
