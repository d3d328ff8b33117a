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
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();

  // Pull the C tile towards L1 while the k loop runs; it is only touched at the end.
  // A 16-float row segment spans two cache lines unless C happens to be 64-byte aligned.
  for (int i = 0; i < mr; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 15), _MM_HINT_T0);
  }

#define ECHOATT_STEP(p)                                              \
  {                                                                  \
    const __m256 b0 = _mm256_load_ps(bp + 16 * (p));                 \
    const __m256 b1 = _mm256_load_ps(bp + 16 * (p) + 8);             \
    __m256 a = _mm256_broadcast_ss(ap + 6 * (p) + 0);                \
    c00 = _mm256_fmadd_ps(a, b0, c00);                               \
    c01 = _mm256_fmadd_ps(a, b1, c01);                               \
    a = _mm256_broadcast_ss(ap + 6 * (p) + 1);                       \
    c10 = _mm256_fmadd_ps(a, b0, c10);                               \
    c11 = _mm256_fmadd_ps(a, b1, c11);                               \
    a = _mm256_broadcast_ss(ap + 6 * (p) + 2);                       \
    c20 = _mm256_fmadd_ps(a, b0, c20);                               \
    c21 = _mm256_fmadd_ps(a, b1, c21);                               \
    a = _mm256_broadcast_ss(ap + 6 * (p) + 3);                       \
    c30 = _mm256_fmadd_ps(a, b0, c30);                               \
    c31 = _mm256_fmadd_ps(a, b1, c31);                               \
    a = _mm256_broadcast_ss(ap + 6 * (p) + 4);                       \
    c40 = _mm256_fmadd_ps(a, b0, c40);                               \
    c41 = _mm256_fmadd_ps(a, b1, c41);                               \
    a = _mm256_broadcast_ss(ap + 6 * (p) + 5);                       \
    c50 = _mm256_fmadd_ps(a, b0, c50);                               \
    c51 = _mm256_fmadd_ps(a, b1, c51);                               \
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

  const __m256 va = _mm256_set1_ps(alpha);
  const __m256 acc[6][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  for (int i = 0; i < mr; ++i) store_row(c + i * ldc, acc[i][0], acc[i][1], va, beta, nr);
}

}  // namespace avx2
}  // namespace echoatt
