// SGEMM micro-kernel for AVX2 + FMA: a 6×16 register tile (12 ymm accumulators, 2 for the B row, 1 broadcast A).
// Per k step: 2 loads of B, 6 broadcasts of A, 12 FMAs, so the two FMA pipes stay the bottleneck while the load
// ports have slack. Compiled with -mavx2 -mfma -mf16c.
#include <immintrin.h>
#include <stdint.h>

#include "kernels.h"

namespace echoatt {
namespace avx2 {

static_assert(kGemmMR == 6 && kGemmNR == 16, "micro-kernel shape");

// C = alpha·acc + beta·C for one 16-float row segment of `nr` columns (masked when nr < 16).
static inline void store_row(float* c, __m256 acc0, __m256 acc1, __m256 va, float beta, int nr) {
  acc0 = _mm256_mul_ps(acc0, va);
  acc1 = _mm256_mul_ps(acc1, va);
  if (nr == 16) {
    if (beta != 0.f) {
      const __m256 vb = _mm256_set1_ps(beta);
      acc0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(c), acc0);
      acc1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(c + 8), acc1);
    }
    _mm256_storeu_ps(c, acc0);
    _mm256_storeu_ps(c + 8, acc1);
    return;
  }
  alignas(32) float tmp[16];
  _mm256_store_ps(tmp, acc0);
  _mm256_store_ps(tmp + 8, acc1);
  // beta == 0 must not read C (it may hold NaN), hence the branch rather than a multiply by zero.
  if (beta != 0.f) {
    for (int j = 0; j < nr; ++j) c[j] = tmp[j] + beta * c[j];
  } else {
    for (int j = 0; j < nr; ++j) c[j] = tmp[j];
  }
}

void gemm_micro(int64_t kc, const float* __restrict ap, const float* __restrict bp, float* c, int64_t ldc, float alpha,
                float beta, int mr, int nr) {
#define ECHOATT_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define ECHOATT_ZERO(i) __m256 c##i##0 = _mm256_setzero_ps(), c##i##1 = _mm256_setzero_ps();
  ECHOATT_ROWS(ECHOATT_ZERO)
#undef ECHOATT_ZERO

  // Pull the C tile towards L1 while the k loop runs; it is only touched at the end.
  // A 16-float row segment spans two cache lines unless C happens to be 64-byte aligned.
  for (int i = 0; i < mr; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 15), _MM_HINT_T0);
  }

#define ECHOATT_FMA(i)                               \
  {                                                  \
    const __m256 a = _mm256_broadcast_ss(as + (i));  \
    c##i##0 = _mm256_fmadd_ps(a, b0, c##i##0);       \
    c##i##1 = _mm256_fmadd_ps(a, b1, c##i##1);       \
  }
#define ECHOATT_STEP(p)                                  \
  {                                                      \
    const __m256 b0 = _mm256_load_ps(bp + 16 * (p));     \
    const __m256 b1 = _mm256_load_ps(bp + 16 * (p) + 8); \
    const float* as = ap + 6 * (p);                      \
    ECHOATT_ROWS(ECHOATT_FMA)                            \
  }

  int64_t p = 0;
  for (; p + 4 <= kc; p += 4) {
    _mm_prefetch(reinterpret_cast<const char*>(bp + 16 * 8), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(ap + 6 * 8), _MM_HINT_T0);
    ECHOATT_STEP(0)
    ECHOATT_STEP(1)
    ECHOATT_STEP(2)
    ECHOATT_STEP(3)
    ap += 24;
    bp += 64;
  }
  for (; p < kc; ++p) {
    ECHOATT_STEP(0)
    ap += 6;
    bp += 16;
  }
#undef ECHOATT_STEP
#undef ECHOATT_FMA
#undef ECHOATT_ROWS

  const __m256 va = _mm256_set1_ps(alpha);
  const __m256 acc[6][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  for (int i = 0; i < mr; ++i) store_row(c + i * ldc, acc[i][0], acc[i][1], va, beta, nr);
}

}  // namespace avx2
}  // namespace echoatt
