// Attention-map statistics for `echoatt analyze` (src/analysis/similarity.ts), compiled once per ISA like
// kernels_body.h: causal maps packed to their lower triangles, then per head Σ a·b (cosine numerators and squared
// norms), Σ −m ln m with m = (a + b)/2 (the Jensen–Shannon mixture entropy) and, optionally, the head × head Gram
// matrix Σ_k a[x, k] · b[y, k] (head-pair cosines).
//
// Work is split into chunks of kMapChunk entries of every head, so a chunk of a and b (2 · H · 4 KB) stays in L2
// while the Gram tiles re-read it. Each chunk's sums are f32 (about 1e-7 relative per chunk) and land in their own
// f64 slot of their group of chunks; the slots are added in order, so results do not depend on the thread count,
// and identical maps give bit-identical sums (the pack kernel computes its own entropy with this very code, with b = a).
#pragma once

#include <vector>

#include "kernels_body.h"

namespace echoatt {
namespace ECHOATT_ISA {

// The vector the statistics loops run on: 8 lanes (vec.h's F8) everywhere, 16-lane zmm in the AVX-512 table.
struct Lanes8 {
  using V = F8;
  static constexpr int64_t W = 8;
  static constexpr int kTileR = 4, kTileC = 2;  // Gram tile: 8 accumulators + 4 rows of a + 1 of b in 16 ymm
  static V zero() { return zero8(); }
  static V set(float x) { return set8(x); }
  static V load(const float* p) { return load8(p); }
  static V load_part(const float* p, int64_t n) { return load8_part(p, n); }
  static V fma(V a, V b, V c) { return fma8(a, b, c); }
  static V add(V a, V b) { return a + b; }
  static V mul(V a, V b) { return a * b; }
  static V xlogx(V x) { return xlogx8(x); }
  static float hsum(V a) { return hsum8(a); }
};

#if defined(ECHOATT_ISA_AVX512)
// The same operations on zmm registers, with log8's algorithm and constants lane for lane.
// (The maskz forms with every lane set only sidestep GCC 12's -Wmaybe-uninitialized on _mm512_undefined.)
struct Lanes16 {
  using V = __m512;
  static constexpr int64_t W = 16;
  static constexpr int kTileR = 4, kTileC = 4;  // 16 accumulators + 4 + 1 of the 32 zmm
  static V zero() { return _mm512_setzero_ps(); }
  static V set(float x) { return _mm512_set1_ps(x); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static V load_part(const float* p, int64_t n) { return _mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1u), p); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  // getmant / getexp split x = f · 2^E, f in [1, 2), in two instructions; Cephes' reduction to [√½, √2) then is
  // t = f − 1, exponent E (f < √2), else t = f/2 − 1, exponent E + 1: the same t and exponent as log8's, exactly.
  static V log(V x) {
    const V f = _mm512_maskz_getmant_ps(0xffff, x, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_zero);
    V e = _mm512_maskz_getexp_ps(0xffff, x);
    const V one = set(1.f);
    const __mmask16 big = _mm512_cmp_ps_mask(f, set(1.41421356237309505f), _CMP_GE_OQ);
    e = _mm512_mask_add_ps(e, big, e, one);
    const V m = _mm512_fmsub_ps(f, _mm512_mask_blend_ps(big, one, set(0.5f)), one);
    return log_reduced<Lanes16>(m, e);
  }
  static V xlogx(V x) {
    const __mmask16 pos = _mm512_cmp_ps_mask(x, zero(), _CMP_GT_OQ);
    return _mm512_maskz_mul_ps(pos, x, log(x));  // lanes x ≤ 0 (log −Inf or NaN there) are zeroed, not multiplied
  }
  static float hsum(V a) {
    const __m512d d = _mm512_castps_pd(a);
    const __m256 s = _mm256_add_ps(_mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xff, d, 0)),
                                   _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xff, d, 1)));
    return hsum8(F8{s});
  }
};
using MapLanes = Lanes16;
#else
using MapLanes = Lanes8;
#endif

constexpr int64_t kMapChunk = 1024;

// Over n entries of a and b: *dot = Σ a·b, *em = Σ −m ln m with m = (a + b)/2 (0 where m ≤ 0).
template <class L>
static inline void chunk_stats(const float* a, const float* b, int64_t n, double* dot, double* em) {
  using V = typename L::V;
  constexpr int64_t W = L::W;
  V d0 = L::zero(), d1 = L::zero(), e0 = L::zero(), e1 = L::zero();
  const V half = L::set(0.5f);
  int64_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    const V x0 = L::load(a + i), y0 = L::load(b + i), x1 = L::load(a + i + W), y1 = L::load(b + i + W);
    d0 = L::fma(x0, y0, d0);
    d1 = L::fma(x1, y1, d1);
    e0 = L::add(e0, L::xlogx(L::mul(L::add(x0, y0), half)));
    e1 = L::add(e1, L::xlogx(L::mul(L::add(x1, y1), half)));
  }
  for (; i < n; i += W) {
    const V x = i + W <= n ? L::load(a + i) : L::load_part(a + i, n - i);
    const V y = i + W <= n ? L::load(b + i) : L::load_part(b + i, n - i);  // padding lanes are 0: they add nothing
    d0 = L::fma(x, y, d0);
    e0 = L::add(e0, L::xlogx(L::mul(L::add(x, y), half)));
  }
  *dot = (double)L::hsum(L::add(d0, d1));
  *em = -(double)L::hsum(L::add(e0, e1));
}

// out[x·H + y] = Σ_{i<n} a[x·ld + i] · b[y·ld + i] for x, y < H, in register tiles of kTileR × kTileC heads.
// Edge tiles point their missing rows at row 0 and drop those sums.
template <class L>
static inline void chunk_gram(const float* a, const float* b, int64_t ld, int64_t H, int64_t n, double* out) {
  using V = typename L::V;
  constexpr int64_t W = L::W;
  constexpr int R = L::kTileR, C = L::kTileC;
  for (int64_t x0 = 0; x0 < H; x0 += R) {
    for (int64_t y0 = 0; y0 < H; y0 += C) {
      const float* ar[R];
      const float* br[C];
      for (int r = 0; r < R; ++r) ar[r] = a + (x0 + r < H ? x0 + r : 0) * ld;
      for (int c = 0; c < C; ++c) br[c] = b + (y0 + c < H ? y0 + c : 0) * ld;
      V acc[R][C];
      for (int r = 0; r < R; ++r)
        for (int c = 0; c < C; ++c) acc[r][c] = L::zero();
      auto step = [&](int64_t i, bool part) {
        V av[R];
        for (int r = 0; r < R; ++r) av[r] = part ? L::load_part(ar[r] + i, n - i) : L::load(ar[r] + i);
        for (int c = 0; c < C; ++c) {
          const V bv = part ? L::load_part(br[c] + i, n - i) : L::load(br[c] + i);
          for (int r = 0; r < R; ++r) acc[r][c] = L::fma(av[r], bv, acc[r][c]);
        }
      };
      int64_t i = 0;
      for (; i + W <= n; i += W) step(i, false);
      if (i < n) step(i, true);
      for (int r = 0; r < R && x0 + r < H; ++r)
        for (int c = 0; c < C && y0 + c < H; ++c) out[(x0 + r) * H + y0 + c] = (double)L::hsum(acc[r][c]);
    }
  }
}

// For each of the n maps a[i] against b (all (H, K), rows at stride K): stats[(2i)·H + h] = Σ_k a_i·b and
// stats[(2i + 1)·H + h] = Σ_k −m ln m of head h; gram[i·H² + x·H + y] = Σ_k a_i[x, k] · b[y, k] when gram is not null.
// One chunk of b serves every a[i] from cache, so b crosses the memory bus once per call. Chunks are summed in groups
// of kChunksPerGroup (a task), groups in order: the result does not depend on the thread count.
constexpr int64_t kChunksPerGroup = 8;
static void map_stats(const float* const* a, int64_t n, const float* b, int64_t H, int64_t K, double* stats,
                      double* gram) {
  const int64_t chunks = (K + kMapChunk - 1) / kMapChunk, groups = (chunks + kChunksPerGroup - 1) / kChunksPerGroup;
  const int64_t per_map = 2 * H + (gram ? H * H : 0), slot = n * per_map;
  thread_local std::vector<double> part_buf;  // kept across calls: the analysis makes one call per layer
  part_buf.assign((size_t)(groups * slot), 0.0);
  double* part = part_buf.data();
  parallel_for(
      groups, 1,
      [&](int64_t g0, int64_t g1) {
        std::vector<double> tmp((size_t)per_map);
        for (int64_t g = g0; g < g1; ++g) {
          for (int64_t c = g * kChunksPerGroup; c < min64(chunks, (g + 1) * kChunksPerGroup); ++c) {
            const int64_t k0 = c * kMapChunk, len = min64(kMapChunk, K - k0);
            for (int64_t i = 0; i < n; ++i) {
              for (int64_t h = 0; h < H; ++h)
                chunk_stats<MapLanes>(a[i] + h * K + k0, b + h * K + k0, len, &tmp[h], &tmp[H + h]);
              if (gram) chunk_gram<MapLanes>(a[i] + k0, b + k0, K, H, len, tmp.data() + 2 * H);
              double* out = part + g * slot + i * per_map;
              for (int64_t x = 0; x < per_map; ++x) out[x] += tmp[x];
            }
          }
        }
      },
      4);
  for (int64_t i = 0; i < n * 2 * H; ++i) stats[i] = 0.0;
  if (gram)
    for (int64_t i = 0; i < n * H * H; ++i) gram[i] = 0.0;
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t i = 0; i < n; ++i) {
      const double* s = part + g * slot + i * per_map;
      for (int64_t x = 0; x < 2 * H; ++x) stats[i * 2 * H + x] += s[x];
      if (gram)
        for (int64_t x = 0; x < H * H; ++x) gram[i * H * H + x] += s[2 * H + x];
    }
  }
}

static void compare_probs(const MapStatsArgs& p) { map_stats(p.a, p.n_maps, p.b, p.heads, p.k, p.stats, p.gram); }

// Rows r of every head's (T, T) map, columns 0..r, one after another into (H, K), then the map's own statistics:
// stats[h] = Σ p², stats[H + h] = Σ −p ln p (compare_probs of the packed map with itself).
static void pack_probs(const PackProbsArgs& p) {
  const int64_t H = p.heads, T = p.t, K = T * (T + 1) / 2;
  parallel_for(H * T, rows_grain(T), [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i) {
      const int64_t h = i / T, r = i % T;
      memcpy(p.packed + h * K + r * (r + 1) / 2, p.probs + (h * T + r) * T, sizeof(float) * (size_t)(r + 1));
    }
  });
  const float* self[1] = {p.packed};
  map_stats(self, 1, p.packed, H, K, p.stats, nullptr);
}

}  // namespace ECHOATT_ISA
}  // namespace echoatt
