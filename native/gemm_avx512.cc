// SGEMM micro-kernel for AVX-512: a 12×32 register tile (24 zmm accumulators, 2 for the B row; the A values are
// broadcast straight from memory into the FMAs). Per k step: 2 loads of B, 12 broadcasts of A, 24 FMAs, so both
// FMA-512 pipes stay the bottleneck: 12 broadcast loads + 2 vector loads per 12 cycles leave the load ports
// slack, and 24 independent chains cover the 4-cycle FMA latency on two pipes three times over.
// Compiled with -mavx512f -mavx512vl -mavx512bw -mavx2 -mfma -mf16c.
#include <immintrin.h>
#include <stdint.h>

#include "kernels.h"

namespace echoatt {
namespace avx512 {

static_assert(kGemmMR == 12 && kGemmNR == 32, "micro-kernel shape");

// Lanes [0, n) of a 16-lane mask, n clamped to [0, 16].
static inline __mmask16 lanes(int n) {
  return n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

// Written out register by register: with an array of accumulators GCC 12 keeps the tile on the stack.
#define ECHOATT_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

void gemm_micro(int64_t kc, const float* __restrict ap, const float* __restrict bp, float* c, int64_t ldc, float alpha,
                float beta, int mr, int nr) {
#define ECHOATT_ZERO(i) __m512 c##i##0 = _mm512_setzero_ps(), c##i##1 = _mm512_setzero_ps();
  ECHOATT_ROWS(ECHOATT_ZERO)
#undef ECHOATT_ZERO

  // Pull the C tile towards L1 while the k loop runs; a 32-float row segment spans three cache lines unless C is
  // 64-byte aligned.
  for (int i = 0; i < mr; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 16), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 31), _MM_HINT_T0);
  }

#define ECHOATT_FMA(i)                                      \
  {                                                         \
    const __m512 a = _mm512_set1_ps(as[i]);                 \
    c##i##0 = _mm512_fmadd_ps(a, b0, c##i##0);              \
    c##i##1 = _mm512_fmadd_ps(a, b1, c##i##1);              \
  }
#define ECHOATT_STEP(p)                                     \
  {                                                         \
    const __m512 b0 = _mm512_load_ps(bp + 32 * (p));        \
    const __m512 b1 = _mm512_load_ps(bp + 32 * (p) + 16);   \
    const float* as = ap + 12 * (p);                        \
    ECHOATT_ROWS(ECHOATT_FMA)                               \
  }

  // The A panel streams from L2 (the B panel is reused from L1 by every tile of the row block): three lines per
  // four k steps, 16 steps ahead.
  int64_t q = 0;
  for (; q + 4 <= kc; q += 4) {
    _mm_prefetch(reinterpret_cast<const char*>(ap + 12 * 16), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(ap + 12 * 16 + 16), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(ap + 12 * 16 + 32), _MM_HINT_T0);
    ECHOATT_STEP(0)
    ECHOATT_STEP(1)
    ECHOATT_STEP(2)
    ECHOATT_STEP(3)
    ap += 48;
    bp += 128;
  }
  for (; q < kc; ++q, ap += 12, bp += 32) ECHOATT_STEP(0)
#undef ECHOATT_STEP
#undef ECHOATT_FMA

  // Partial tiles use masked loads and stores: masked-off lanes are never touched, so C may end at a page boundary.
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  const __mmask16 m0 = lanes(nr), m1 = lanes(nr - 16);
  auto store_row = [&](int i, __m512 r0, __m512 r1) {
    float* ci = c + i * ldc;
    r0 = _mm512_mul_ps(r0, va);
    r1 = _mm512_mul_ps(r1, va);
    // beta == 0 must not read C (it may hold NaN), hence the branch rather than a multiply by zero.
    if (beta != 0.f) {
      r0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, ci), r0);
      r1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, ci + 16), r1);
    }
    _mm512_mask_storeu_ps(ci, m0, r0);
    _mm512_mask_storeu_ps(ci + 16, m1, r1);
  };
#define ECHOATT_STORE(i) \
  if (i < mr) store_row(i, c##i##0, c##i##1);
  ECHOATT_ROWS(ECHOATT_STORE)
#undef ECHOATT_STORE
}
#undef ECHOATT_ROWS

}  // namespace avx512
}  // namespace echoatt
