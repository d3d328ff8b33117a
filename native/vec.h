// An 8-lane float vector, the only SIMD vocabulary the kernel bodies use. Compiled with -mavx2 -mfma it is one
// ymm register; otherwise it is a plain float[8] whose loops the compiler turns into SSE2 pairs. Writing the
// kernels once against this type keeps the AVX2 and portable paths numerically identical in structure (same
// accumulation order, same exp polynomial), so the portable path is a faithful fallback, not a second codebase.
//
// Everything here is `static inline` inside the per-ISA namespace: internal linkage, so the linker can never
// merge an AVX2-compiled copy of a helper into the portable path (which would fault on CPUs without AVX2).
#pragma once

#include <math.h>
#include <stdint.h>
#include <string.h>

#ifndef ECHOATT_ISA
#error "define ECHOATT_ISA (avx512, avx2 or portable) before including vec.h"
#endif

#if defined(ECHOATT_ISA_AVX2)
#if !defined(__AVX2__) || !defined(__FMA__)
#error "the avx2 kernels must be compiled with -mavx2 -mfma"
#endif
#if defined(ECHOATT_ISA_AVX512) && (!defined(__AVX512F__) || !defined(__AVX512VL__) || !defined(__AVX512BW__))
#error "the avx512 kernels must be compiled with -mavx512f -mavx512vl -mavx512bw"
#endif
#include <immintrin.h>
#endif

namespace echoatt {
namespace ECHOATT_ISA {

#if defined(ECHOATT_ISA_AVX2)

struct F8 {
  __m256 v;
};
static inline F8 zero8() { return {_mm256_setzero_ps()}; }
static inline F8 set8(float x) { return {_mm256_set1_ps(x)}; }
static inline F8 load8(const float* p) { return {_mm256_loadu_ps(p)}; }
static inline void store8(float* p, F8 a) { _mm256_storeu_ps(p, a.v); }
static inline __m256i tail_mask(int64_t n) {
  // Lanes [0, n) enabled; n in [0, 8].
  static const int32_t bits[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bits + 8 - n));
}
// Loads n < 8 floats without touching memory past p[n-1]; the other lanes hold `fill`.
static inline F8 load8_part(const float* p, int64_t n, float fill = 0.f) {
  const __m256i m = tail_mask(n);
  return {_mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m))};
}
static inline void store8_part(float* p, F8 a, int64_t n) { _mm256_maskstore_ps(p, tail_mask(n), a.v); }
static inline F8 operator+(F8 a, F8 b) { return {_mm256_add_ps(a.v, b.v)}; }
static inline F8 operator-(F8 a, F8 b) { return {_mm256_sub_ps(a.v, b.v)}; }
static inline F8 operator*(F8 a, F8 b) { return {_mm256_mul_ps(a.v, b.v)}; }
static inline F8 operator/(F8 a, F8 b) { return {_mm256_div_ps(a.v, b.v)}; }
static inline F8 fma8(F8 a, F8 b, F8 c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }  // a·b + c
// max/min return the second operand when either is NaN; callers put the running value first so NaN inputs win.
static inline F8 max8(F8 acc, F8 x) { return {_mm256_max_ps(acc.v, x.v)}; }
static inline F8 min8(F8 acc, F8 x) { return {_mm256_min_ps(acc.v, x.v)}; }
static inline float hsum8(F8 a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
// out[0..3] = the horizontal sums of a, b, c, d: one reduction for four dot products.
static inline void hsum4(F8 a, F8 b, F8 c, F8 d, float* out) {
  const __m256 ab = _mm256_hadd_ps(a.v, b.v), cd = _mm256_hadd_ps(c.v, d.v);
  const __m256 abcd = _mm256_hadd_ps(ab, cd);  // per 128-bit half: partial sums of a, b, c, d
  _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1)));
}
// The same four sums, each times `scale` (one vector multiply: the same rounding as scaling each sum).
static inline void hsum4_scaled(F8 a, F8 b, F8 c, F8 d, float scale, float* out) {
  const __m256 ab = _mm256_hadd_ps(a.v, b.v), cd = _mm256_hadd_ps(c.v, d.v);
  const __m256 abcd = _mm256_hadd_ps(ab, cd);
  _mm_storeu_ps(out, _mm_mul_ps(_mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1)), _mm_set1_ps(scale)));
}
static inline float hmax8(F8 a) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
// (x > lim) ? y : a   and   (x < lim) ? y : a, lane-wise; NaN compares false and keeps `a`.
static inline F8 select_gt(F8 x, F8 lim, F8 y, F8 a) {
  return {_mm256_blendv_ps(a.v, y.v, _mm256_cmp_ps(x.v, lim.v, _CMP_GT_OQ))};
}
static inline F8 select_lt(F8 x, F8 lim, F8 y, F8 a) {
  return {_mm256_blendv_ps(a.v, y.v, _mm256_cmp_ps(x.v, lim.v, _CMP_LT_OQ))};
}
// 2^n for integer-valued n in [-126, 127].
static inline F8 pow2i8(F8 n) {
  const __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n.v), _mm256_set1_epi32(127));
  return {_mm256_castsi256_ps(_mm256_slli_epi32(e, 23))};
}
static inline F8 sqrt8(F8 a) { return {_mm256_sqrt_ps(a.v)}; }
// frexp for positive normal x: returns the mantissa in [0.5, 1) and sets *e to the exponent (x = m · 2^e), both
// from the bits (the sign bit is dropped; 0, denormals, Inf and NaN give meaningless values that callers mask).
static inline F8 frexp8(F8 x, F8* e) {
  const __m256i b = _mm256_castps_si256(x.v);
  e->v = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(_mm256_and_si256(b, _mm256_set1_epi32(0x7fffffff)), 23), _mm256_set1_epi32(126)));
  return {_mm256_castsi256_ps(_mm256_or_si256(_mm256_and_si256(b, _mm256_set1_epi32(0x007fffff)), _mm256_set1_epi32(0x3f000000)))};
}

#else  // portable

struct F8 {
  float v[8];
};
#define ECHOATT_LANES for (int i = 0; i < 8; ++i)
static inline F8 zero8() { F8 r; ECHOATT_LANES r.v[i] = 0.f; return r; }
static inline F8 set8(float x) { F8 r; ECHOATT_LANES r.v[i] = x; return r; }
static inline F8 load8(const float* p) { F8 r; memcpy(r.v, p, sizeof r.v); return r; }
static inline void store8(float* p, F8 a) { memcpy(p, a.v, sizeof a.v); }
static inline F8 load8_part(const float* p, int64_t n, float fill = 0.f) {
  F8 r = set8(fill);
  for (int64_t i = 0; i < n; ++i) r.v[i] = p[i];
  return r;
}
static inline void store8_part(float* p, F8 a, int64_t n) {
  for (int64_t i = 0; i < n; ++i) p[i] = a.v[i];
}
static inline F8 operator+(F8 a, F8 b) { ECHOATT_LANES a.v[i] += b.v[i]; return a; }
static inline F8 operator-(F8 a, F8 b) { ECHOATT_LANES a.v[i] -= b.v[i]; return a; }
static inline F8 operator*(F8 a, F8 b) { ECHOATT_LANES a.v[i] *= b.v[i]; return a; }
static inline F8 operator/(F8 a, F8 b) { ECHOATT_LANES a.v[i] /= b.v[i]; return a; }
static inline F8 fma8(F8 a, F8 b, F8 c) { ECHOATT_LANES c.v[i] += a.v[i] * b.v[i]; return c; }
// Same NaN convention as maxps/minps: the second operand wins when either is NaN.
static inline F8 max8(F8 acc, F8 x) { ECHOATT_LANES acc.v[i] = acc.v[i] > x.v[i] ? acc.v[i] : x.v[i]; return acc; }
static inline F8 min8(F8 acc, F8 x) { ECHOATT_LANES acc.v[i] = acc.v[i] < x.v[i] ? acc.v[i] : x.v[i]; return acc; }
static inline float hsum8(F8 a) {
  // Same pairing as the AVX2 reduction.
  const float s0 = a.v[0] + a.v[4], s1 = a.v[1] + a.v[5], s2 = a.v[2] + a.v[6], s3 = a.v[3] + a.v[7];
  return (s0 + s2) + (s1 + s3);
}
static inline void hsum4(F8 a, F8 b, F8 c, F8 d, float* out) {
  out[0] = hsum8(a);
  out[1] = hsum8(b);
  out[2] = hsum8(c);
  out[3] = hsum8(d);
}
static inline void hsum4_scaled(F8 a, F8 b, F8 c, F8 d, float scale, float* out) {
  hsum4(a, b, c, d, out);
  for (int i = 0; i < 4; ++i) out[i] *= scale;
}
static inline float hmax8(F8 a) {
  float m = a.v[0];
  for (int i = 1; i < 8; ++i) m = m > a.v[i] ? m : a.v[i];
  return m;
}
static inline F8 select_gt(F8 x, F8 lim, F8 y, F8 a) { ECHOATT_LANES a.v[i] = x.v[i] > lim.v[i] ? y.v[i] : a.v[i]; return a; }
static inline F8 select_lt(F8 x, F8 lim, F8 y, F8 a) { ECHOATT_LANES a.v[i] = x.v[i] < lim.v[i] ? y.v[i] : a.v[i]; return a; }
static inline F8 pow2i8(F8 n) {
  F8 r;
  ECHOATT_LANES {
    const int32_t bits = ((int32_t)n.v[i] + 127) << 23;
    memcpy(&r.v[i], &bits, 4);
  }
  return r;
}
static inline F8 sqrt8(F8 a) { ECHOATT_LANES a.v[i] = sqrtf(a.v[i]); return a; }
static inline F8 frexp8(F8 x, F8* e) {
  F8 m;
  ECHOATT_LANES {
    uint32_t b;
    memcpy(&b, &x.v[i], 4);
    e->v[i] = (float)((int32_t)((b & 0x7fffffffu) >> 23) - 126);
    b = (b & 0x007fffffu) | 0x3f000000u;
    memcpy(&m.v[i], &b, 4);
  }
  return m;
}
#undef ECHOATT_LANES

#endif

// e^x, lane-wise, about 1 ulp on the normal range (Cephes expf: Cody–Waite reduction + degree-5 polynomial).
// exp(+Inf) = +Inf, exp(-Inf) = 0, NaN stays NaN, results below ~1e-45 flush to 0, above FLT_MAX become +Inf.
static inline F8 exp8(F8 x) {
  const F8 hi = set8(88.72283935546875f), lo = set8(-103.972077083991796f);
  // Clamp with x as the second operand so a NaN passes through untouched.
  F8 xc = min8(hi, max8(lo, x));
  // n = round(x / ln 2) by the 1.5·2^23 trick: exact for |n| < 2^22, no rounding-mode dependence, no SSE4.1.
  const F8 magic = set8(12582912.f);
  const F8 n = (fma8(xc, set8(1.44269504088896341f), magic)) - magic;
  F8 r = fma8(n, set8(-0.693359375f), xc);
  r = fma8(n, set8(2.12194440e-4f), r);
  F8 y = set8(1.9875691500e-4f);
  y = fma8(y, r, set8(1.3981999507e-3f));
  y = fma8(y, r, set8(8.3334519073e-3f));
  y = fma8(y, r, set8(4.1665795894e-2f));
  y = fma8(y, r, set8(1.6666665459e-1f));
  y = fma8(y, r, set8(5.0000001201e-1f));
  y = fma8(y, r * r, r + set8(1.f));
  // Scale by 2^n in two halves so n down to -150 (denormal results) and up to 128 stay representable.
  const F8 n1 = (n * set8(0.5f));
  const F8 n1i = fma8(n1, set8(1.f), magic) - magic;  // round(n/2)
  y = y * pow2i8(n1i) * pow2i8(n - n1i);
  y = select_gt(x, hi, set8(INFINITY), y);
  return select_lt(x, lo, zero8(), y);
}

// ln of m·2^e from the reduced m − 1 (m in [√½, √2)) and e: Cephes logf's degree-8 polynomial and ln 2 split in two.
// Ops supplies set / fma / mul / add on V; log8 runs it on F8 and the AVX-512 statistics lanes on zmm (stats_body.h),
// so both compute it with the same operations in the same order.
template <class Ops, class V>
static inline V log_reduced(V m, V e) {
  const V z = Ops::mul(m, m);
  V y = Ops::set(7.0376836292e-2f);
  y = Ops::fma(y, m, Ops::set(-1.1514610310e-1f));
  y = Ops::fma(y, m, Ops::set(1.1676998740e-1f));
  y = Ops::fma(y, m, Ops::set(-1.2420140846e-1f));
  y = Ops::fma(y, m, Ops::set(1.4249322787e-1f));
  y = Ops::fma(y, m, Ops::set(-1.6668057665e-1f));
  y = Ops::fma(y, m, Ops::set(2.0000714765e-1f));
  y = Ops::fma(y, m, Ops::set(-2.4999993993e-1f));
  y = Ops::fma(y, m, Ops::set(3.3333331174e-1f));
  y = Ops::mul(Ops::mul(y, m), z);
  y = Ops::fma(e, Ops::set(-2.12194440e-4f), y);
  y = Ops::fma(z, Ops::set(-0.5f), y);
  return Ops::fma(e, Ops::set(0.693359375f), Ops::add(m, y));
}
struct F8Ops {
  static F8 set(float x) { return set8(x); }
  static F8 fma(F8 a, F8 b, F8 c) { return fma8(a, b, c); }
  static F8 mul(F8 a, F8 b) { return a * b; }
  static F8 add(F8 a, F8 b) { return a + b; }
};

// ln x, lane-wise, for positive normal x, about 1 ulp (Cephes logf: x = m·2^e with m in [√½, √2), a degree-8
// polynomial in m − 1, and ln 2 split in two for the exponent). 0, negatives, denormals, Inf and NaN give meaningless
// finite values: callers mask them (see xlogx8).
static inline F8 log8(F8 x) {
  F8 e;
  F8 m = frexp8(x, &e);
  const F8 sqrt_half = set8(0.707106781186547524f), one = set8(1.f);
  e = select_lt(m, sqrt_half, e - one, e);
  m = select_lt(m, sqrt_half, m + m - one, m - one);
  return log_reduced<F8Ops>(m, e);
}

// x · ln x lane-wise with 0 · ln 0 = 0: lanes with x ≤ 0 (and NaN compares) give 0, as the reference's `if (x > 0)`.
static inline F8 xlogx8(F8 x) { return select_gt(x, zero8(), x * log8(max8(set8(1.17549435e-38f), x)), zero8()); }

static inline float exp1(float x) {
  float buf[8] = {x, 0, 0, 0, 0, 0, 0, 0};
  store8(buf, exp8(load8(buf)));
  return buf[0];
}

// Dot product of n floats with two independent accumulators (latency of FMA chains, not throughput, limits a
// single dot product).
static inline float dot(const float* a, const float* b, int64_t n) {
  F8 s0 = zero8(), s1 = zero8();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = fma8(load8(a + i), load8(b + i), s0);
    s1 = fma8(load8(a + i + 8), load8(b + i + 8), s1);
  }
  if (i + 8 <= n) {
    s0 = fma8(load8(a + i), load8(b + i), s0);
    i += 8;
  }
  if (i < n) s1 = fma8(load8_part(a + i, n - i), load8_part(b + i, n - i), s1);
  return hsum8(s0 + s1);
}

// y[i] += alpha · x[i]
static inline void axpy_row(float alpha, const float* x, float* y, int64_t n) {
  const F8 va = set8(alpha);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) store8(y + i, fma8(va, load8(x + i), load8(y + i)));
  if (i < n) store8_part(y + i, fma8(va, load8_part(x + i, n - i), load8_part(y + i, n - i)), n - i);
}

static inline void scale_row(float alpha, float* y, int64_t n) {
  const F8 va = set8(alpha);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) store8(y + i, va * load8(y + i));
  if (i < n) store8_part(y + i, va * load8_part(y + i, n - i), n - i);
}

static inline void zero_row(float* y, int64_t n) { memset(y, 0, sizeof(float) * (size_t)n); }

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

}  // namespace ECHOATT_ISA
}  // namespace echoatt
