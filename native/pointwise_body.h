// Elementwise kernels (activations, add / mul / axpy) and RMSNorm, written once against vec.h and compiled
// once per ISA like kernels_body.h, whose row reductions and threading grain they use.
#pragma once

#include "kernels_body.h"

namespace echoatt {
namespace ECHOATT_ISA {

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

}  // namespace ECHOATT_ISA
}  // namespace echoatt
