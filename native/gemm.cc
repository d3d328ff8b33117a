// SGEMM driver: Goto/BLIS blocking around the active table's micro-kernel (6×16 AVX2 / portable, 14×32 AVX-512).
//
//   for jc (NC columns of C)            B block KC×NC packed once, reused by every row block  (L3)
//     for pc (KC of the k dimension)
//       for ic (MC rows)                A block MC×KC packed                                   (L2)
//         for jr (NR columns)           B micro-panel KC×NR stays in L1 across the ir loop
//           for ir (MR rows)            micro-kernel
//
// Threads get disjoint rectangles of C (or whole batch entries), each packing its own panels, so there is no
// synchronisation inside a product and no shared mutable state. Packing costs O(mk + kn) against O(mnk) flops.
// Packing is baseline code (SSE2 at most) shared by every ISA: it is a small, memory-bound fraction of the time.
// A half-precision B (matmulHalf) is packed by the active table's pack_b_half instead, which widens as it packs.
// Packed panels live in per-thread buffers that are kept between calls (at most KC·NC + MC·KC floats, a few MB).
// The panel formats depend on the table's register tile, so everything below is instantiated per (MR, NR): the
// packing loops keep compile-time trip counts, and gemm() picks the instantiation matching the active table.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cstddef>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "kernels.h"
#include "threadpool.h"

namespace echoatt {
namespace {

// Block sizes follow the cache sizes the OS reports (sysconf; the defaults are Zen 3/4's 32 KB L1d / 512 KB L2):
//  - KC: the KC×NR micro-panel of B is reused by every micro-kernel call of an MC block, so it should fill ~60% of
//    L1d (the rest holds the streaming A panel and C). 48 KB L1d → 448 for NR = 16, 32 KB → 256. A larger KC also
//    means fewer read-modify-write passes over C, which dominates the leftover cost at these sizes.
//  - MC: the MC×KC block of A stays in L2 across the whole jr loop; a quarter of L2 leaves room for B panels
//    passing through. Capped at 24 tiles (144 rows for MR = 6): larger blocks measured no faster and hurt the
//    m-split across threads.
//  - The AVX-512 14×32 tile does over twice the FMAs per byte of packed A and B, so both panels can stream from L2
//    and KC is sized for fewer passes over C instead: the B micro-panel takes 1/16 of L2, the A block half.
//    Measured on Emerald Rapids (48 KB L1d, 2 MB L2), 512×2048×2048 on 1 thread: KC 192 (the L1 rule, 12×32
//    tile) 113, 512 ~140, 768 ~148, 1024 ~150 GFLOP/s; 2 threads: 512 ~280, 1024 ~300; MC 140–336 within noise.
//  - NC: the packed B block lives in L3; 4096 columns keeps it a few MB.
struct Blocking {
  int64_t mc, kc, nc;
};

int64_t cache_bytes(int name, int64_t fallback) {
  const long v = name >= 0 ? sysconf(name) : -1;
  return v > 0 ? (int64_t)v : fallback;
}

template <int MR, int NR>
Blocking blocking() {
  static const Blocking b = [] {
#if defined(_SC_LEVEL1_DCACHE_SIZE) && defined(_SC_LEVEL2_CACHE_SIZE)
    const int64_t l1 = cache_bytes(_SC_LEVEL1_DCACHE_SIZE, 32 << 10), l2 = cache_bytes(_SC_LEVEL2_CACHE_SIZE, 512 << 10);
#else
    const int64_t l1 = 32 << 10, l2 = 512 << 10;
#endif
    auto clamp = [](int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; };
    Blocking r;
    if (NR >= 32) {
      r.kc = clamp(l2 / 16 / (NR * 4) / 64 * 64, 256, 1024);
      r.mc = clamp(l2 / 2 / (r.kc * 4) / MR * MR, 8 * MR, 24 * MR);
    } else {
      r.kc = clamp(l1 * 6 / 10 / (NR * 4) / 64 * 64, 128, 512);
      r.mc = clamp(l2 / 4 / (r.kc * 4) / MR * MR, 8 * MR, 24 * MR);
    }
    r.nc = 4096;
    // Tuning hook (not part of the public interface): ECHOATT_GEMM_BLOCKING=mc,kc,nc
    if (const char* env = getenv("ECHOATT_GEMM_BLOCKING")) {
      long mc = 0, kc = 0, nc = 0;
      if (sscanf(env, "%ld,%ld,%ld", &mc, &kc, &nc) == 3 && mc >= MR && kc >= 1 && nc >= NR) {
        r.mc = mc / MR * MR;
        r.kc = kc;
        r.nc = nc / NR * NR;
      }
    }
    return r;
  }();
  return b;
}

// Per-thread packing buffers, kept for the life of the thread: a fresh multi-megabyte malloc per call would
// page-fault its way through the first touch every time.
struct PackBuffers {
  float* a = nullptr;
  float* b = nullptr;
  size_t a_cap = 0, b_cap = 0;
  ~PackBuffers() {
    free(a);
    free(b);
  }
  static float* grow(float*& p, size_t& cap, size_t n) {
    if (n > cap) {
      free(p);
      p = static_cast<float*>(aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64));
      if (!p) abort();
      cap = n;
    }
    return p;
  }
};
thread_local PackBuffers t_pack;

// Packs rows [i0, i0+mc) × cols [p0, p0+kc) of op(A) as MR-row panels: panel r holds, for each p, MR floats.
template <int MR>
void pack_a(const GemmArgs& g, const float* a, int64_t i0, int64_t mc, int64_t p0, int64_t kc, float* dst) {
  for (int64_t ir = 0; ir < mc; ir += MR, dst += MR * kc) {
    const int rows = (int)(mc - ir < MR ? mc - ir : MR);
    if (g.trans_a) {
      for (int64_t p = 0; p < kc; ++p) {
        const float* src = a + (p0 + p) * g.lda + i0 + ir;
        float* d = dst + p * MR;
        int r = 0;
        for (; r < rows; ++r) d[r] = src[r];
        for (; r < MR; ++r) d[r] = 0.f;
      }
    } else {
      const float* src[MR];
      for (int r = 0; r < MR; ++r) src[r] = a + (i0 + ir + (r < rows ? r : 0)) * g.lda + p0;
      for (int64_t p = 0; p < kc; ++p) {
        float* d = dst + p * MR;
        int r = 0;
        for (; r < rows; ++r) d[r] = src[r][p];
        for (; r < MR; ++r) d[r] = 0.f;
      }
    }
  }
}

// Packs rows [p0, p0+kc) × cols [j0, j0+nc) of op(B) as NR-column panels: panel j holds, for each p, NR floats.
template <int NR>
void pack_b(const GemmArgs& g, const float* b, int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* dst) {
  for (int64_t jr = 0; jr < nc; jr += NR, dst += NR * kc) {
    const int cols = (int)(nc - jr < NR ? nc - jr : NR);
    if (!g.trans_b) {
      for (int64_t p = 0; p < kc; ++p) {
        const float* src = b + (p0 + p) * g.ldb + j0 + jr;
        float* d = dst + p * NR;
        if (cols == NR) {
          memcpy(d, src, NR * sizeof(float));
        } else {
          int c = 0;
          for (; c < cols; ++c) d[c] = src[c];
          for (; c < NR; ++c) d[c] = 0.f;
        }
      }
    } else {
      // Bᵀ stored: column c of the panel is a contiguous row of the stored matrix, so packing is a transpose.
      // 4×4 SSE transposes (baseline x86-64) make it several times cheaper than element-wise copying, which
      // matters because y = x·Wᵀ packs the whole weight matrix.
      int64_t p = 0;
#if defined(__SSE2__)
      if (cols == NR) {
        for (; p + 4 <= kc; p += 4) {
          for (int c = 0; c < NR; c += 4) {
            const float* s = b + (j0 + jr + c) * g.ldb + p0 + p;
            __m128 r0 = _mm_loadu_ps(s), r1 = _mm_loadu_ps(s + g.ldb);
            __m128 r2 = _mm_loadu_ps(s + 2 * g.ldb), r3 = _mm_loadu_ps(s + 3 * g.ldb);
            _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
            float* d = dst + p * NR + c;
            _mm_storeu_ps(d, r0);
            _mm_storeu_ps(d + NR, r1);
            _mm_storeu_ps(d + 2 * NR, r2);
            _mm_storeu_ps(d + 3 * NR, r3);
          }
        }
      }
#endif
      for (int c = 0; c < NR; ++c) {
        if (c < cols) {
          const float* src = b + (j0 + jr + c) * g.ldb + p0;
          for (int64_t q = p; q < kc; ++q) dst[q * NR + c] = src[q];
        } else {
          for (int64_t q = p; q < kc; ++q) dst[q * NR + c] = 0.f;
        }
      }
    }
  }
}

// pack_b for a half-precision B (g.b_half, always transposed): the active table's pack_b_half widens each panel.
template <int NR>
void pack_b_half(const GemmArgs& g, const Kernels& kern, int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* dst) {
  for (int64_t jr = 0; jr < nc; jr += NR, dst += NR * kc) {
    const int cols = (int)(nc - jr < NR ? nc - jr : NR);
    kern.pack_b_half(g.b_half + (j0 + jr) * g.ldb + p0, g.ldb, g.b_bf16, kc, cols, dst);
  }
}

// C[m0:m1, n0:n1] of one batch entry.
template <int MR, int NR>
void gemm_tile(const GemmArgs& g, const Kernels& kern, int64_t bi, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const Blocking bl = blocking<MR, NR>();
  const float* a = g.a + bi * g.stride_a;
  const float* b = g.b + bi * g.stride_b;
  float* c = g.c + bi * g.stride_c;
  const int64_t nc_max = n1 - n0 < bl.nc ? n1 - n0 : bl.nc;
  // Equal k blocks (k = 2048 → 5 × 410, not 4 × 448 + 256): a short last block would pay a full pass over C.
  const int64_t k_blocks = (g.k + bl.kc - 1) / bl.kc;
  const int64_t kc_max = (g.k + k_blocks - 1) / k_blocks;
  const int64_t mc_max = m1 - m0 < bl.mc ? m1 - m0 : bl.mc;
  float* bpack = PackBuffers::grow(t_pack.b, t_pack.b_cap, (size_t)(kc_max * ((nc_max + NR - 1) / NR * NR)));
  float* apack = PackBuffers::grow(t_pack.a, t_pack.a_cap, (size_t)(kc_max * ((mc_max + MR - 1) / MR * MR)));

  for (int64_t jc = n0; jc < n1; jc += bl.nc) {
    const int64_t nc = n1 - jc < bl.nc ? n1 - jc : bl.nc;
    for (int64_t pc = 0; pc < g.k; pc += kc_max) {
      const int64_t kc = g.k - pc < kc_max ? g.k - pc : kc_max;
      const float beta = pc == 0 ? g.beta : 1.f;  // later k blocks accumulate onto the first
      const float alpha = g.alpha;
      if (g.b_half) {
        pack_b_half<NR>(g, kern, pc, kc, jc, nc, bpack);
      } else {
        pack_b<NR>(g, b, pc, kc, jc, nc, bpack);
      }
      for (int64_t ic = m0; ic < m1; ic += bl.mc) {
        const int64_t mc = m1 - ic < bl.mc ? m1 - ic : bl.mc;
        pack_a<MR>(g, a, ic, mc, pc, kc, apack);
        for (int64_t jr = 0; jr < nc; jr += NR) {
          const int nr = (int)(nc - jr < NR ? nc - jr : NR);
          const float* bp = bpack + jr * kc;
          for (int64_t ir = 0; ir < mc; ir += MR) {
            const int mr = (int)(mc - ir < MR ? mc - ir : MR);
            kern.gemm_micro(kc, apack + ir * kc, bp, c + (ic + ir) * g.ldc + jc + jr, g.ldc, alpha, beta, mr, nr);
          }
        }
      }
    }
  }
}

// k == 0: C = beta·C (or 0), matching alpha·0 + beta·C.
void scale_c(const GemmArgs& g) {
  for (int64_t bi = 0; bi < g.batch; ++bi) {
    float* c = g.c + bi * g.stride_c;
    for (int64_t i = 0; i < g.m; ++i) {
      float* ci = c + i * g.ldc;
      for (int64_t j = 0; j < g.n; ++j) ci[j] = g.beta == 0.f ? 0.f : g.beta * ci[j];
    }
  }
}

using TileFn = void (*)(const GemmArgs&, const Kernels&, int64_t, int64_t, int64_t, int64_t, int64_t);

// The driver instantiation for a table's tile. A table with a tile not listed here is a build mistake, caught by the
// first GEMM rather than silently packing the wrong panel format.
TileFn tile_fn(const Kernels& kern) {
  static_assert(avx2::kGemmMR == portable::kGemmMR && avx2::kGemmNR == portable::kGemmNR, "shared instantiation");
  if (kern.gemm_mr == avx512::kGemmMR && kern.gemm_nr == avx512::kGemmNR)
    return gemm_tile<avx512::kGemmMR, avx512::kGemmNR>;
  if (kern.gemm_mr == avx2::kGemmMR && kern.gemm_nr == avx2::kGemmNR) return gemm_tile<avx2::kGemmMR, avx2::kGemmNR>;
  fprintf(stderr, "echoatt: no GEMM driver for the %d×%d tile of the %s kernels\n", kern.gemm_mr, kern.gemm_nr,
          kern.name);
  abort();
}

}  // namespace

void gemm(const GemmArgs& g) {
  if (g.m == 0 || g.n == 0 || g.batch == 0) return;
  if (g.k == 0) return scale_c(g);
  const Kernels& kern = kernels();
  if (g.m <= kGemmSmallM && !g.b_half) return kern.gemm_small_m(g);

  // Below ~2 MFLOP per call the pool round-trip is not worth it.
  const double flops = 2.0 * (double)g.m * (double)g.n * (double)g.k * (double)g.batch;
  const int64_t threads = flops < 2e6 ? 1 : pool_threads();
  // Split each product into `parts` rectangles along its longer side (in whole micro-tiles) when the batch alone
  // cannot feed every thread.
  const int64_t parts = g.batch >= threads ? 1 : (threads + g.batch - 1) / g.batch;
  const bool split_n = g.n >= g.m;
  const int64_t unit = split_n ? kern.gemm_nr : kern.gemm_mr;
  const int64_t extent = split_n ? g.n : g.m;
  const int64_t tiles = (extent + unit - 1) / unit;
  const int64_t p = parts < tiles ? parts : tiles;

  struct Ctx {
    const GemmArgs* g;
    const Kernels* kern;
    TileFn tile;
    int64_t p, tiles, unit;
    bool split_n;
  } ctx{&g, &kern, tile_fn(kern), p, tiles, unit, split_n};
  auto run = [](void* vp, int64_t task) {
    const Ctx& x = *static_cast<Ctx*>(vp);
    const int64_t bi = task / x.p, part = task % x.p;
    const int64_t lo = x.tiles * part / x.p * x.unit, hi_t = x.tiles * (part + 1) / x.p * x.unit;
    if (x.split_n) {
      const int64_t hi = hi_t < x.g->n ? hi_t : x.g->n;
      x.tile(*x.g, *x.kern, bi, 0, x.g->m, lo, hi);
    } else {
      const int64_t hi = hi_t < x.g->m ? hi_t : x.g->m;
      x.tile(*x.g, *x.kern, bi, lo, hi, 0, x.g->n);
    }
  };
  if (threads == 1) {
    for (int64_t t = 0; t < g.batch * p; ++t) run(&ctx, t);
  } else {
    pool_run(g.batch * p, run, &ctx);
  }
}

}  // namespace echoatt
