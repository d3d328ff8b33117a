// The kernel table. Every compute kernel exists once per instruction set (kernels_avx512.cc, kernels_avx2.cc,
// kernels_portable.cc, all generated from kernels_body.h / matmul_body.h / pointwise_body.h / attention_body.h /
// stats_body.h / optim_body.h); select_kernels() picks one at load time.
// Semantics of every entry are those of the matching method of the TypeScript `Backend` interface
// (src/backend/backend.ts, or its op-table entry in src/backend/ops/); arguments are already validated and defaults
// already filled in. The kernels the addon exports directly are listed once, in kernel_list.h.
#pragma once

#include <stdint.h>

#include "kernel_list.h"

namespace echoatt {

struct GemmArgs {
  int64_t m, n, k;
  bool trans_a, trans_b;
  const float* a;
  const float* b;
  float* c;
  int64_t lda, ldb, ldc;
  float alpha, beta;
  int64_t batch, stride_a, stride_b, stride_c;
  // Half-precision B (matmulHalf prefill): when set, B is these f16 / bf16 bits instead of `b`, with trans_b
  // (B = Wᵀ, W (n, k) row-major at stride ldb); panels are widened to f32 while packed (the small-m path is not
  // used for it: matmul_half streams small m itself).
  const uint16_t* b_half = nullptr;
  bool b_bf16 = false;
};

struct AttentionArgs {
  const float* q;
  const float* k;
  const float* v;
  float* out;
  float* probs;  // may be null
  int64_t batch, tq, s, n_heads, n_kv_heads, head_dim, q_pos0, kv_batch_stride;
  float scale;
  int64_t window = 0;  // sliding window (0: none): query position p sees keys max(0, p − window + 1) ..= p
};

struct ProbsTimesVArgs {
  const float* probs;
  const float* v;
  float* out;
  int64_t batch, tq, s, n_heads, n_kv_heads, head_dim, kv_batch_stride;
};

struct AttentionBackwardArgs {
  const float* q;
  const float* k;
  const float* v;
  const float* probs;
  const float* dout;
  const float* dprobs_extra;  // may be null
  float* dq;
  float* dk;
  float* dv;
  float* dprobs;  // probsTimesVBackward only: where ∂L/∂P goes
  int64_t batch, tq, s, n_heads, n_kv_heads, head_dim;
  float scale;
};

// Attention-map statistics (stats_body.h): maps packed to their causal triangles, (H, K) with K = T(T+1)/2.
struct PackProbsArgs {
  const float* probs;  // (H, T, T)
  float* packed;       // (H, K)
  int64_t heads, t;
  double* stats;  // (2H): Σ p², Σ −p ln p per head
};

struct MapStatsArgs {
  const float* const* a;  // n_maps maps (H, K)
  int64_t n_maps;
  const float* b;  // (H, K)
  int64_t heads, k;
  double* stats;  // (n_maps, 2, H): Σ a_i·b, Σ −m ln m (m = (a_i + b)/2) per head
  double* gram;   // (n_maps, H, H) Σ_k a_i[x, k] · b[y, k], or null
};

struct KlDivArgs {
  const float* student;  // (rows, cols) logits
  const float* teacher;  // (rows, cols) logits
  float* losses;         // (rows)
  int64_t rows, cols;
  float inv_temp;
  float* dstudent;  // (rows, cols) or null; may alias student
  float grad_scale;
};

struct AdamWArgs {
  float* w;
  const float* g;
  float* m;
  float* v;
  int64_t n;
  float lr, beta1, beta2, eps, decay, c1, c2, grad_scale;
};

// Computes C[0:mr, 0:nr] = alpha · Ap·Bp + beta · C (C not read when beta == 0) for one register tile.
// Ap holds kc columns of MR packed rows, Bp kc rows of NR packed columns; both zero-padded to full MR / NR.
using GemmMicroKernel = void (*)(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, float alpha,
                                 float beta, int mr, int nr);

// Register tile of each table's micro-kernel: the packed panel formats depend on it, so the GEMM driver is
// instantiated per tile (gemm.cc) and each table's pack_b_half packs NR-column panels of its own width.
// AVX-512 has 32 zmm registers: 14×32 is 28 accumulators + 2 B vectors + a broadcast, 14 FMAs per loaded B
// vector against the AVX2 tile's 6.
namespace avx512 {
constexpr int kGemmMR = 14, kGemmNR = 32;
}
namespace avx2 {
constexpr int kGemmMR = 6, kGemmNR = 16;
}
namespace portable {
constexpr int kGemmMR = 6, kGemmNR = 16;
}

struct Kernels {
  const char* name;  // "avx512", "avx2" or "portable"

  GemmMicroKernel gemm_micro;
  int gemm_mr, gemm_nr;  // its register tile
  // One GEMM with m ≤ kGemmSmallM: streams B once (decode-time projections). Threads split n.
  void (*gemm_small_m)(const GemmArgs& g);

  void (*matvec)(const float* w, const float* x, float* y, int64_t n, int64_t k, bool accumulate);
  // Packs one NR-column SGEMM panel of B = Wᵀ from half bits, widening: dst[p·NR + c] = W[c, p] (W rows at stride
  // ldw) for p < kc, c < cols; columns c ≥ cols are zero.
  void (*pack_b_half)(const uint16_t* w, int64_t ldw, bool bf16, int64_t kc, int cols, float* dst);
  void (*softmax)(const float* x, float* out, int64_t rows, int64_t cols, bool causal, int64_t causal_offset);
  // Targets are validated by the caller.
  void (*cross_entropy)(const float* logits, const int32_t* targets, float* losses, int64_t rows, int64_t cols,
                        float* dlogits, float grad_scale, int32_t ignore_index);
  void (*pack_probs)(const PackProbsArgs& p);
  void (*compare_probs)(const MapStatsArgs& p);
  void (*kl_div)(const KlDivArgs& p);
  void (*adamw)(const AdamWArgs& p);
  double (*sum_squares)(const float* x, int64_t n);

  void (*attention)(const AttentionArgs& p);
  void (*probs_times_v)(const ProbsTimesVArgs& p);
  void (*attention_backward)(const AttentionBackwardArgs& p);
  void (*probs_times_v_backward)(const AttentionBackwardArgs& p);

  // The directly exported kernels (kernel_list.h), last.
#define ECHOATT_KERNEL_MEMBER(js, name, params) void(*name) params;
  ECHOATT_DIRECT_KERNELS(ECHOATT_KERNEL_MEMBER)
#undef ECHOATT_KERNEL_MEMBER
};

constexpr int64_t kGemmSmallM = 4;

extern const Kernels kernels_avx512;
extern const Kernels kernels_avx2;
extern const Kernels kernels_portable;

// Names of the tables this build contains, widest first, null-terminated (the build script leaves out the x86 ones
// off x86, and the AVX-512 one when the toolchain cannot compile it).
extern const char* const kBuiltKernels[];

// The table in use: the widest the CPU (and OS) support, AVX-512 (F+VL+BW) > AVX2+FMA+F16C > portable, unless
// ECHOATT_NATIVE_SIMD=avx2 / portable caps it.
const Kernels& kernels();

// Full GEMM driver (gemm.cc): blocking, packing, threading; dispatches to the active table.
void gemm(const GemmArgs& g);

}  // namespace echoatt
