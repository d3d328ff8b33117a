// N-API glue: unpacks JS arguments and calls the kernels. Argument order and defaults are owned by
// src/backend/native.ts, which always passes every argument (null for an absent optional array).
//
// Sizes are NOT validated here (the TypeScript checkedBackend does that before any call); argument types are,
// because a wrong type would otherwise become a wild pointer. Data-dependent indices that the kernels would use
// to address memory (token ids, targets) are range-checked here and reported as JS errors with code E_SHAPE.
#include <math.h>
#include <node_api.h>
#include <stdio.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <string>
#include <vector>

#include "addon.h"
#include "gather.h"
#include "kernels.h"
#include "program.h"
#include "threadpool.h"

namespace echoatt {
namespace {

napi_value Gemm(napi_env env, napi_callback_info info) {
  ECHOATT_ARGS(20);
  GemmArgs g;
  float* a = A.f32(0);
  float* b = A.f32(1);
  float* c = A.f32(2);
  g.m = A.i64(3), g.n = A.i64(4), g.k = A.i64(5);
  g.trans_a = A.flag(6), g.trans_b = A.flag(7);
  g.a = a + A.i64(8), g.b = b + A.i64(9), g.c = c + A.i64(10);
  g.lda = A.i64(11), g.ldb = A.i64(12), g.ldc = A.i64(13);
  g.alpha = A.f(14), g.beta = A.f(15);
  g.batch = A.i64(16), g.stride_a = A.i64(17), g.stride_b = A.i64(18), g.stride_c = A.i64(19);
  if (!A.ok()) return nullptr;
  gemm(g);
  return undefined(env);
}

napi_value Matvec(napi_env env, napi_callback_info info) {
  ECHOATT_ARGS(7);
  const float* w = A.f32(0);
  const float* x = A.f32(1);
  float* y = A.f32(2);
  const int64_t n = A.i64(3), k = A.i64(4), off = A.i64(5);
  const bool acc = A.flag(6);
  if (!A.ok()) return nullptr;
  kernels().matvec(w + off, x, y, n, k, acc);
  return undefined(env);
}

napi_value Softmax(napi_env env, napi_callback_info info) {
  ECHOATT_ARGS(5);
  const float* x = A.f32(0);
  float* out = A.f32(1);
  const int64_t rows = A.i64(2), cols = A.i64(3);
  const bool causal = !A.is_nullish(4);
  const int64_t off = causal ? A.i64(4) : 0;
  if (!A.ok()) return nullptr;
  kernels().softmax(x, out, rows, cols, causal, off);
  return undefined(env);
}

napi_value CompareProbs(napi_env env, napi_callback_info info) {
  ECHOATT_ARGS(6);
  MapStatsArgs p;
  const std::vector<const float*> maps = A.f32_list(0);
  p.a = maps.data(), p.n_maps = (int64_t)maps.size();
  p.b = A.f32(1), p.heads = A.i64(2), p.k = A.i64(3), p.stats = A.f64(4), p.gram = A.f64_or_null(5);
  if (!A.ok()) return nullptr;
  kernels().compare_probs(p);
  return undefined(env);
}

napi_value KlDivergence(napi_env env, napi_callback_info info) {
  ECHOATT_ARGS(8);
  KlDivArgs p;
  p.student = A.f32(0), p.teacher = A.f32(1), p.losses = A.f32(2), p.rows = A.i64(3), p.cols = A.i64(4);
  p.inv_temp = (float)(1.0 / A.num(5)), p.dstudent = A.f32_or_null(6), p.grad_scale = A.f(7);
  if (!A.ok()) return nullptr;
  kernels().kl_div(p);
  return undefined(env);
}

napi_value SumSquares(napi_env env, napi_callback_info info) {
  ECHOATT_ARGS(2);
  const float* x = A.f32(0);
  const int64_t n = A.i64(1);
  if (!A.ok()) return nullptr;
  napi_value out;
  napi_create_double(env, kernels().sum_squares(x, n), &out);
  return out;
}

// crossEntropy and the embedding entries start alike: (floats, int32 ids, floats, rows, cols) with ids that address
// memory, so each id must lie in [0, bound) (or equal `ignore`); the first that does not throws E_SHAPE.
struct IdCall {
  int64_t n_ids = 0;  // first: the member initializers run in this order, and ids' sets it
  const float* src = nullptr;
  const int32_t* ids = nullptr;
  float* dst = nullptr;
  int64_t rows = 0, cols = 0;

  explicit IdCall(Args& A) : src(A.f32(0)), ids(A.i32(1, &n_ids)), dst(A.f32(2)), rows(A.i64(3)), cols(A.i64(4)) {}

  bool check(Args& A, int64_t n, int64_t bound, const char* what, const char* where, double ignore = NAN) const {
    for (int64_t t = 0; A.ok() && t < n && t < n_ids; ++t) {
      if ((double)ids[t] != ignore && !(ids[t] >= 0 && ids[t] < bound)) {
        A.fail(std::string(what) + " " + std::to_string(ids[t]) + " at " + where + " " + std::to_string(t) +
                   " is outside [0, " + std::to_string(bound) + ")",
               "E_SHAPE");
      }
    }
    return A.ok();
  }
};

napi_value CrossEntropy(napi_env env, napi_callback_info info) {
  ECHOATT_ARGS(8);
  const IdCall c(A);
  float* dlogits = A.f32_or_null(5);
  const float scale = A.f(6);
  const double ignore = A.num(7);
  if (!A.ok() || !c.check(A, c.rows, c.cols, "target", "row", ignore)) return nullptr;
  // An ignoreIndex that no int32 can equal ignores nothing.
  const int32_t ignore_i = (ignore == (double)(int32_t)ignore) ? (int32_t)ignore : -1;
  kernels().cross_entropy(c.src, c.ids, c.dst, c.rows, c.cols, dlogits, scale, ignore_i);
  return undefined(env);
}

// embedding and its backward: (table or dout, ids, out or dtable, vocab, dim).
template <void (*Fn)(const float*, const int32_t*, int64_t, float*, int64_t)>
napi_value Gather(napi_env env, napi_callback_info info) {
  ECHOATT_ARGS(5);
  const IdCall c(A);
  if (!A.ok() || !c.check(A, c.n_ids, c.rows, "token id", "position")) return nullptr;
  Fn(c.src, c.ids, c.n_ids, c.dst, c.cols);
  return undefined(env);
}

napi_value SetThreads(napi_env env, napi_callback_info info) {
  ECHOATT_ARGS(1);
  const int64_t n = A.i64(0);
  if (!A.ok()) return nullptr;
  pool_set_threads((int)(n < 1 ? 1 : n > 1024 ? 1024 : n));
  return undefined(env);
}

// info() → { simd: 'avx512' | 'avx2' | 'portable', built: the kernel sets in this build, threads }
napi_value Info(napi_env env, napi_callback_info) {
  napi_value obj, simd, built, threads;
  napi_create_object(env, &obj);
  napi_create_string_utf8(env, kernels().name, NAPI_AUTO_LENGTH, &simd);
  napi_create_array(env, &built);
  for (uint32_t i = 0; kBuiltKernels[i]; ++i) {
    napi_value name;
    napi_create_string_utf8(env, kBuiltKernels[i], NAPI_AUTO_LENGTH, &name);
    napi_set_element(env, built, i, name);
  }
  napi_create_int32(env, pool_threads(), &threads);
  napi_set_named_property(env, obj, "simd", simd);
  napi_set_named_property(env, obj, "built", built);
  napi_set_named_property(env, obj, "threads", threads);
  napi_value words;
  napi_create_array(env, &words);
  for (int op = 0; op < program_ops(); ++op) {
    napi_value w;
    napi_create_int32(env, program_words(op), &w);
    napi_set_element(env, words, (uint32_t)op, w);
  }
  napi_set_named_property(env, obj, "programWords", words);
  return obj;
}

using AA = AttentionArgs;
using PV = ProbsTimesVArgs;
using AB = AttentionBackwardArgs;

// The JS-visible entries, by name.
const struct {
  const char* name;
  napi_callback fn;
} kEntries[] = {
    {"info", Info},
    {"setThreads", SetThreads},
    {"gemm", Gemm},
    {"matvec", Matvec},
    {"attention", Fill<&Kernels::attention, F<&AA::q>, F<&AA::k>, F<&AA::v>, F<&AA::out>, Opt<&AA::probs>,
                       F<&AA::batch>, F<&AA::tq>, F<&AA::s>, F<&AA::n_heads>, F<&AA::n_kv_heads>, F<&AA::head_dim>,
                       F<&AA::q_pos0>, F<&AA::scale>, F<&AA::kv_batch_stride>, F<&AA::window>>},
    {"probsTimesV", Fill<&Kernels::probs_times_v, F<&PV::probs>, F<&PV::v>, F<&PV::out>, F<&PV::batch>, F<&PV::tq>,
                         F<&PV::s>, F<&PV::n_heads>, F<&PV::n_kv_heads>, F<&PV::head_dim>, F<&PV::kv_batch_stride>>},
    {"attentionBackward",
     Fill<&Kernels::attention_backward, F<&AB::q>, F<&AB::k>, F<&AB::v>, F<&AB::probs>, F<&AB::dout>, F<&AB::dq>,
          F<&AB::dk>, F<&AB::dv>, Opt<&AB::dprobs_extra>, F<&AB::batch>, F<&AB::tq>, F<&AB::s>, F<&AB::n_heads>,
          F<&AB::n_kv_heads>, F<&AB::head_dim>, F<&AB::scale>>},
    {"probsTimesVBackward",
     Fill<&Kernels::probs_times_v_backward, F<&AB::probs>, F<&AB::v>, F<&AB::dout>, F<&AB::dprobs>, F<&AB::dv>,
          F<&AB::batch>, F<&AB::tq>, F<&AB::s>, F<&AB::n_heads>, F<&AB::n_kv_heads>, F<&AB::head_dim>>},
    {"softmax", Softmax},
    {"crossEntropy", CrossEntropy},
    {"packProbs", Fill<&Kernels::pack_probs, F<&PackProbsArgs::probs>, F<&PackProbsArgs::packed>,
                       F<&PackProbsArgs::heads>, F<&PackProbsArgs::t>, F<&PackProbsArgs::stats>>},
    {"compareProbs", CompareProbs},
    {"klDivergence", KlDivergence},
    {"adamw", Fill<&Kernels::adamw, F<&AdamWArgs::w>, F<&AdamWArgs::g>, F<&AdamWArgs::m>, F<&AdamWArgs::v>,
                   F<&AdamWArgs::n>, F<&AdamWArgs::lr>, F<&AdamWArgs::beta1>, F<&AdamWArgs::beta2>,
                   F<&AdamWArgs::eps>, F<&AdamWArgs::decay>, F<&AdamWArgs::c1>, F<&AdamWArgs::c2>,
                   F<&AdamWArgs::grad_scale>>},
    {"sumSquares", SumSquares},
    {"embedding", Gather<embedding>},
    {"embeddingBackward", Gather<embedding_backward>},
    {"compileProgram", CompileProgram},
    {"runProgram", RunProgram},
    {"programProfile", ProgramProfile},
#define ECHOATT_KERNEL_ENTRY(js, name, params) {#js, Direct<&Kernels::name>},
    ECHOATT_DIRECT_KERNELS(ECHOATT_KERNEL_ENTRY)
#undef ECHOATT_KERNEL_ENTRY
};
constexpr size_t kNumEntries = sizeof(kEntries) / sizeof(kEntries[0]);

}  // namespace
}  // namespace echoatt

// Models allocate and free the same large activation buffers step after step. glibc serves big requests with fresh
// mmap'd pages and trims freed ones back to the OS, so every step page-faults its buffers in again (measured: ~77k
// faults and ~40% of a distillation step on gutenberg16). Keep them in the heap instead: a high mmap threshold and a
// trim threshold that never returns the working set.
static void keep_large_buffers() {
#if defined(__GLIBC__)
  mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);  // the largest glibc accepts on 64-bit
  mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024);
#endif
}

NAPI_MODULE_INIT() {
  using namespace echoatt;
  keep_large_buffers();
  napi_property_descriptor props[kNumEntries];
  for (size_t i = 0; i < kNumEntries; ++i)
    props[i] = {kEntries[i].name, nullptr, kEntries[i].fn, nullptr, nullptr, nullptr, napi_enumerable, nullptr};
  if (napi_define_properties(env, exports, kNumEntries, props) != napi_ok) return nullptr;
  return exports;
}
