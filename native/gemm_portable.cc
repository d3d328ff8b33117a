// Portable SGEMM micro-kernel (same 6×16 packed format as the AVX2 one, so the driver and packing are shared).
//
// Baseline x86-64 has 16 four-wide xmm registers: a whole 6×16 tile (24 vectors) would spill, so the tile is
// computed as two 6×8 halves, each 12 accumulators + 2 B vectors + 1 broadcast. GCC vector extensions keep this
// portable: on targets without SIMD they lower to scalar code.
#include <stdint.h>
#include <string.h>

#include "kernels.h"

namespace echoatt {
namespace portable {

typedef float v4 __attribute__((vector_size(16)));

static inline v4 load4(const float* p) {
  v4 v;
  memcpy(&v, p, sizeof v);
  return v;
}

// acc[i][0..1] = Σ_p a[p·6 + i] · b[p·16 + 0..7] for the 8 columns starting at b.
static inline void half_tile(int64_t kc, const float* __restrict ap, const float* __restrict bp, v4 acc[6][2]) {
  for (int i = 0; i < 6; ++i) acc[i][0] = acc[i][1] = v4{0, 0, 0, 0};
  for (int64_t p = 0; p < kc; ++p, ap += kGemmMR, bp += kGemmNR) {
    const v4 b0 = load4(bp), b1 = load4(bp + 4);
    for (int i = 0; i < 6; ++i) {
      const float a = ap[i];
      acc[i][0] += a * b0;
      acc[i][1] += a * b1;
    }
  }
}

void gemm_micro(int64_t kc, const float* __restrict ap, const float* __restrict bp, float* c, int64_t ldc, float alpha,
                float beta, int mr, int nr) {
  static_assert(kGemmMR == 6 && kGemmNR == 16, "micro-kernel shape");
  for (int h = 0; h < 2; ++h) {
    const int cols = nr - 8 * h < 8 ? nr - 8 * h : 8;
    if (cols <= 0) break;
    v4 acc[6][2];
    half_tile(kc, ap, bp + 8 * h, acc);
    for (int i = 0; i < mr; ++i) {
      float tmp[8];
      memcpy(tmp, &acc[i][0], sizeof(v4));
      memcpy(tmp + 4, &acc[i][1], sizeof(v4));
      float* ci = c + i * ldc + 8 * h;
      // beta == 0 must not read C (it may hold NaN).
      if (beta != 0.f) {
        for (int j = 0; j < cols; ++j) ci[j] = alpha * tmp[j] + beta * ci[j];
      } else {
        for (int j = 0; j < cols; ++j) ci[j] = alpha * tmp[j];
      }
    }
  }
}

}  // namespace portable
}  // namespace echoatt
