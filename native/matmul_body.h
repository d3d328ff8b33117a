// Products with a weight matrix, written against vec.h and compiled once per ISA like kernels_body.h (included by
// kernels_table.h): half-precision weights, the decode-time streaming products behind matvec, and the small-m GEMM.
#pragma once

#include "half.h"
#include "kernels_body.h"

namespace echoatt {
namespace ECHOATT_ISA {

// ---------------------------------------------------------------------------------------------------------------
// Half-precision weights (f16 / bf16 bits, as stored in checkpoints): out (rows, n) = x (rows, k) · Wᵀ.
//
// Decode (rows ≤ 16): W is streamed once at 2 bytes per weight and widened in registers (F16C for f16, a 16-bit
// shift for bf16), a block of 3–4 rows of W against every row of x (four at a time), threads splitting W's rows.
// Prefill: the blocked SGEMM (gemm.cc) with B = Wᵀ read as half bits; pack_b_half widens while it packs each
// KC×NR panel, so the conversion is amortised over every row of x and the micro-kernel is the f32 one.

template <bool BF>
static inline float half1(uint16_t h) {
  return BF ? bf16_to_f32(h) : f16_to_f32(h);
}

#if defined(ECHOATT_ISA_AVX2)
template <bool BF>
static inline __m256 cvt_half8(__m128i h) {
  return BF ? _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)) : _mm256_cvtph_ps(h);
}
#endif

// Eight half values widened to one F8.
template <bool BF>
static inline F8 load_half8(const uint16_t* p) {
#if defined(ECHOATT_ISA_AVX2)
  return {cvt_half8<BF>(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)))};
#else
  F8 r;
  for (int i = 0; i < 8; ++i) r.v[i] = half1<BF>(p[i]);
  return r;
#endif
}

// ---------------------------------------------------------------------------------------------------------------
// Decode-time products (a few rows of x against a weight matrix W, f32 or half bits): memory bound, so the goal is
// streaming W exactly once at full DRAM bandwidth.
//
// On Intel Xeon (Emerald Rapids) `npm run bench:gemm` measured the f16 decode rows at 14.3 → 30.9 GB/s on 2 threads
// with this kernel. A standalone sweep of variants (1 GB of f16 W, k = 2048, GB/s on 1 / 2 threads): one W row at a
// time with a prefetcht1 8 KB ahead of the stream 15.0 / 30.5; four rows interleaved 13.8 / 27.2; no software
// prefetch 9.8 / 19.5; prefetchnta (the hint used before) 10.7 / 21.1. Intel's L2 streamer stops at every 4 KB
// page, and a row of k = 2048 halves is exactly one page, so each row would start cold without the software
// prefetch; a single linear stream keeps the prefetch distance meaningful across row boundaries. T1 (into L2) rather
// than T0 leaves the L1 fill buffers to the demand loads. Not re-measured on AMD Zen, where the previous kernel
// (four rows, prefetchnta 2 KB ahead) had been tuned.
constexpr int64_t kStreamAheadBytes = 8192;
#define ECHOATT_PREFETCH_L2(p) __builtin_prefetch((p), 0, 2)

template <bool BF>
static inline F8 load_w8(const float* p) { return load8(p); }
template <bool BF>
static inline F8 load_w8(const uint16_t* p) { return load_half8<BF>(p); }
template <bool BF>
static inline float load_w1(const float* p) { return *p; }
template <bool BF>
static inline float load_w1(const uint16_t* p) { return half1<BF>(*p); }

// NW rows of W (row stride ldw) against R rows of x (row stride k): out[r·ldo + q] = W[q]·x[r] + beta·out[r·ldo + q]
// (out not read when beta == 0: it may hold NaN).
// NW·R·U accumulator chains (4 to 12) hide the FMA latency; x (R·k floats) stays in L1 across the NW rows.
// The software prefetch walks the memory of the NW rows linearly (assuming ldw = k, the dense case), one block
// length ahead shifted by kStreamAheadBytes; with another stride it only wastes a few prefetches.
template <bool BF, int NW, int R, class WT>
static inline void stream_rows(const WT* w, int64_t ldw, int64_t k, const float* x, float* out, int64_t ldo,
                               float beta) {
  constexpr int U = NW * R >= 8 ? 1 : NW * R >= 4 ? 2 : 4;
  constexpr int kLinesPerStep = NW * 32 * (int)sizeof(WT) / 64;  // cache lines of W per 32-column step
  F8 acc[U][NW][R];
  for (int u = 0; u < U; ++u)
    for (int q = 0; q < NW; ++q)
      for (int r = 0; r < R; ++r) acc[u][q][r] = zero8();
  auto step = [&](int64_t j, int u) {
    F8 xv[R];
    for (int r = 0; r < R; ++r) xv[r] = load8(x + r * k + j);
    for (int q = 0; q < NW; ++q) {
      const F8 wv = load_w8<BF>(w + q * ldw + j);
      for (int r = 0; r < R; ++r) acc[u][q][r] = fma8(wv, xv[r], acc[u][q][r]);
    }
  };
  const char* pf = reinterpret_cast<const char*>(w) + kStreamAheadBytes;
  int64_t j = 0;
  for (; j + 32 <= k; j += 32, pf += kLinesPerStep * 64) {
    for (int l = 0; l < kLinesPerStep; ++l) ECHOATT_PREFETCH_L2(pf + l * 64);
    step(j, 0);
    step(j + 8, 1 % U);
    step(j + 16, 2 % U);
    step(j + 24, 3 % U);
  }
  for (; j + 8 <= k; j += 8) step(j, 0);
  for (int q = 0; q < NW; ++q) {
    for (int r = 0; r < R; ++r) {
      F8 a = acc[0][q][r];
      for (int u = 1; u < U; ++u) a = a + acc[u][q][r];
      float s = hsum8(a);
      for (int64_t t = j; t < k; ++t) s += load_w1<BF>(w + q * ldw + t) * x[r * k + t];
      float* o = out + r * ldo + q;
      *o = beta == 0.f ? s : s + beta * *o;
    }
  }
}

// One block of NW rows of W against all `rows` rows of x, four rows of x at a time: after the first group the block
// is re-read from L1/L2, so W still crosses the memory bus once.
template <bool BF, int NW, class WT>
static inline void stream_block(const WT* w, int64_t ldw, int64_t k, const float* x, int64_t rows, float* out,
                                int64_t ldo, float beta) {
  for (int64_t r0 = 0; r0 < rows; r0 += 4) {
    const float* xr = x + r0 * k;
    float* o = out + r0 * ldo;
    switch (min64(4, rows - r0)) {
      case 1: stream_rows<BF, NW, 1>(w, ldw, k, xr, o, ldo, beta); break;
      case 2: stream_rows<BF, NW, 2>(w, ldw, k, xr, o, ldo, beta); break;
      case 3: stream_rows<BF, NW, 3>(w, ldw, k, xr, o, ldo, beta); break;
      default: stream_rows<BF, NW, 4>(w, ldw, k, xr, o, ldo, beta); break;
    }
  }
}

template <bool BF, int NW, class WT>
static void stream_product_nw(const float* x, const WT* w, int64_t ldw, float* out, int64_t ldo, int64_t rows,
                              int64_t n, int64_t k, float beta) {
  const int64_t blocks = (n + NW - 1) / NW;
  parallel_for(blocks, max64(1, kGrainElems / max64(NW * k, 1)), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t i = NW * b;
      if (i + NW <= n) {
        stream_block<BF, NW>(w + i * ldw, ldw, k, x, rows, out + i, ldo, beta);
      } else {
        for (int64_t q = i; q < n; ++q) stream_block<BF, 1>(w + q * ldw, ldw, k, x, rows, out + q, ldo, beta);
      }
    }
  });
}

// One x row against 4 rows of W with k ≤ kShortK: on small models (stories260K: k = 64) a row is a few FMAs and the
// per-row horizontal sum dominated; here 4 rows × 2 chains run together and one hsum4 reduces all four.
constexpr int64_t kShortK = 256;
template <bool BF, class WT>
static inline void short_rows4(const WT* w, int64_t ldw, int64_t k, const float* x, float* out, float beta) {
  F8 a[2][4];
  for (int u = 0; u < 2; ++u)
    for (int q = 0; q < 4; ++q) a[u][q] = zero8();
  int64_t j = 0;
  for (; j + 16 <= k; j += 16) {
    const F8 x0 = load8(x + j), x1 = load8(x + j + 8);
    for (int q = 0; q < 4; ++q) {
      a[0][q] = fma8(load_w8<BF>(w + q * ldw + j), x0, a[0][q]);
      a[1][q] = fma8(load_w8<BF>(w + q * ldw + j + 8), x1, a[1][q]);
    }
  }
  if (j + 8 <= k) {
    const F8 x0 = load8(x + j);
    for (int q = 0; q < 4; ++q) a[0][q] = fma8(load_w8<BF>(w + q * ldw + j), x0, a[0][q]);
    j += 8;
  }
  float s[4];
  hsum4(a[0][0] + a[1][0], a[0][1] + a[1][1], a[0][2] + a[1][2], a[0][3] + a[1][3], s);
  for (int q = 0; q < 4; ++q) {
    for (int64_t t = j; t < k; ++t) s[q] += load_w1<BF>(w + q * ldw + t) * x[t];
    out[q] = beta == 0.f ? s[q] : s[q] + beta * out[q];
  }
}

// out[r·ldo + q] = x[r]·W[q] (+ beta·out) for r < rows, q < n; x dense (rows, k), W rows at stride ldw.
// Up to 4 rows of x the product is memory bound and one linear stream of W wins (above). With more rows W is
// re-read from L1 for every group of four, the FMAs start to matter, and 3 rows of W per block (12 accumulators,
// 13 ymm live) measured 1.6× faster than fewer.
template <bool BF, class WT>
static void stream_product(const float* x, const WT* w, int64_t ldw, float* out, int64_t ldo, int64_t rows,
                           int64_t n, int64_t k, float beta = 0.f) {
  if (rows == 1 && ldo == 1 && k <= kShortK) {
    parallel_for((n + 3) / 4, max64(1, kGrainElems / max64(4 * k, 1)), [&](int64_t b0, int64_t b1) {
      for (int64_t q = 4 * b0; q < min64(n, 4 * b1); q += 4) {
        if (q + 4 <= n) short_rows4<BF>(w + q * ldw, ldw, k, x, out + q, beta);
        else for (int64_t i = q; i < n; ++i) stream_rows<BF, 1, 1>(w + i * ldw, ldw, k, x, out + i, ldo, beta);
      }
    });
  } else if (rows <= 4) {
    stream_product_nw<BF, 1>(x, w, ldw, out, ldo, rows, n, k, beta);
  } else {
    stream_product_nw<BF, 3>(x, w, ldw, out, ldo, rows, n, k, beta);
  }
}

static void matvec(const float* w, const float* x, float* y, int64_t n, int64_t k, bool accumulate) {
  stream_product<false>(x, w, k, y, 1, 1, n, k, accumulate ? 1.f : 0.f);
}

template <bool BF>
static void matmul_half_decode(const float* x, const uint16_t* w, float* out, int64_t rows, int64_t n, int64_t k) {
  stream_product<BF>(x, w, k, out, n, rows, n, k);
}

// Packs one NR-column panel of B = Wᵀ for this table's SGEMM micro-kernel, widening on the way: dst[p·NR + c] =
// W[c, p] for p < kc, c < cols (W rows at stride ldw), zero for c ≥ cols. Full 16-column groups go through SIMD.
template <bool BF>
static void pack_b_half_t(const uint16_t* w, int64_t ldw, int64_t kc, int cols, float* dst) {
  constexpr int NR = kGemmNR;
  static_assert(NR % 16 == 0, "panel width");
  for (int c0 = 0; c0 < NR; c0 += 16, dst += 16) {
    const int gcols = cols - c0 < 0 ? 0 : cols - c0 > 16 ? 16 : cols - c0;
    const uint16_t* wg = gcols > 0 ? w + c0 * ldw : w;  // no pointer past W's last row
    int64_t p = 0;
#if defined(ECHOATT_ISA_AVX2)
    if (gcols == 16) {
      // 8 k-steps of 16 rows at a time: rows c and c+8 share a ymm (low / high lane), an in-lane 8×8 transpose of
      // 16-bit values leaves k-step i's 16 columns in v[i], and each lane widens to 8 floats (or the whole ymm to
      // one zmm).
      for (; p + 8 <= kc; p += 8) {
        __m256i r[8];
        for (int c = 0; c < 8; ++c) {
          const __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(wg + c * ldw + p));
          const __m128i hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(wg + (c + 8) * ldw + p));
          r[c] = _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
        }
        const __m256i t0 = _mm256_unpacklo_epi16(r[0], r[1]), t1 = _mm256_unpackhi_epi16(r[0], r[1]);
        const __m256i t2 = _mm256_unpacklo_epi16(r[2], r[3]), t3 = _mm256_unpackhi_epi16(r[2], r[3]);
        const __m256i t4 = _mm256_unpacklo_epi16(r[4], r[5]), t5 = _mm256_unpackhi_epi16(r[4], r[5]);
        const __m256i t6 = _mm256_unpacklo_epi16(r[6], r[7]), t7 = _mm256_unpackhi_epi16(r[6], r[7]);
        const __m256i u0 = _mm256_unpacklo_epi32(t0, t2), u1 = _mm256_unpackhi_epi32(t0, t2);
        const __m256i u2 = _mm256_unpacklo_epi32(t1, t3), u3 = _mm256_unpackhi_epi32(t1, t3);
        const __m256i u4 = _mm256_unpacklo_epi32(t4, t6), u5 = _mm256_unpackhi_epi32(t4, t6);
        const __m256i u6 = _mm256_unpacklo_epi32(t5, t7), u7 = _mm256_unpackhi_epi32(t5, t7);
        const __m256i v[8] = {
            _mm256_unpacklo_epi64(u0, u4), _mm256_unpackhi_epi64(u0, u4), _mm256_unpacklo_epi64(u1, u5),
            _mm256_unpackhi_epi64(u1, u5), _mm256_unpacklo_epi64(u2, u6), _mm256_unpackhi_epi64(u2, u6),
            _mm256_unpacklo_epi64(u3, u7), _mm256_unpackhi_epi64(u3, u7),
        };
        for (int i = 0; i < 8; ++i) {
          float* d = dst + (p + i) * NR;
#if defined(ECHOATT_ISA_AVX512)
          // The maskz forms (all lanes set) only sidestep GCC 12's -Wmaybe-uninitialized on _mm512_undefined.
          const __m512i wide = _mm512_maskz_cvtepu16_epi32(0xffff, v[i]);
          _mm512_storeu_ps(d, BF ? _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xffff, wide, 16))
                                 : _mm512_maskz_cvtph_ps(0xffff, v[i]));
#else
          _mm256_storeu_ps(d, cvt_half8<BF>(_mm256_castsi256_si128(v[i])));
          _mm256_storeu_ps(d + 8, cvt_half8<BF>(_mm256_extracti128_si256(v[i], 1)));
#endif
        }
      }
    }
#endif
    for (int c = 0; c < 16; ++c) {
      if (c < gcols) {
        const uint16_t* src = wg + c * ldw;
        for (int64_t q = p; q < kc; ++q) dst[q * NR + c] = half1<BF>(src[q]);
      } else {
        for (int64_t q = p; q < kc; ++q) dst[q * NR + c] = 0.f;
      }
    }
  }
}

static void pack_b_half(const uint16_t* w, int64_t ldw, bool bf16, int64_t kc, int cols, float* dst) {
  if (bf16) {
    pack_b_half_t<true>(w, ldw, kc, cols, dst);
  } else {
    pack_b_half_t<false>(w, ldw, kc, cols, dst);
  }
}

// Up to 16 rows of x (while they fit in L2 next to W's blocks) the streaming kernel beats widening-while-packing:
// measured at 1×, 5×, 8×, 16×, 32× 2048×5632 f16: 2.1×, 3.3×, 3.3×, 2.0×, 1.0× the f32 GEMM / matvec time, against
// 1.2–1.35× for the packed-GEMM path at 5–16 rows (whose packing pass over W dominates at so few rows).
constexpr int64_t kHalfStreamRows = 16;
constexpr int64_t kHalfStreamXFloats = 1 << 17;  // 512 KB of x
static void matmul_half(const float* x, const uint16_t* w, bool bf16, float* out, int64_t rows, int64_t n,
                        int64_t k) {
  if (rows <= 0 || n <= 0) return;
  if (k == 0) {
    for (int64_t i = 0; i < rows * n; ++i) out[i] = 0.f;
    return;
  }
  if (rows <= kGemmSmallM || (rows <= kHalfStreamRows && rows * k <= kHalfStreamXFloats)) {
    if (bf16) {
      matmul_half_decode<true>(x, w, out, rows, n, k);
    } else {
      matmul_half_decode<false>(x, w, out, rows, n, k);
    }
    return;
  }
  GemmArgs g{};
  g.m = rows, g.n = n, g.k = k;
  g.trans_a = false, g.trans_b = true;
  g.a = x, g.b = nullptr, g.c = out;
  g.b_half = w, g.b_bf16 = bf16;
  g.lda = k, g.ldb = k, g.ldc = n;
  g.alpha = 1.f, g.beta = 0.f;
  g.batch = 1, g.stride_a = 0, g.stride_b = 0, g.stride_c = 0;
  echoatt::gemm(g);
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
      // Rows of B are rows of W: the decode streaming product, B read once.
      stream_product<false>(abuf, b, g.ldb, c, g.ldc, m, n, k, g.beta);
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
