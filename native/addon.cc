// N-API glue: unpacks JS arguments and calls the kernels. Argument order and defaults are owned by
// src/backend/native.ts, which always passes every argument (null for an absent optional array).
//
// Sizes are NOT validated here (the TypeScript checkedBackend does that before any call); argument types are,
// because a wrong type would otherwise become a wild pointer. Data-dependent indices that the kernels would use
// to address memory (token ids, targets) are range-checked here and reported as JS errors with code E_SHAPE.
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

napi_value MatmulHalf(napi_env env, napi_callback_info info) {
  ECHOATT_ARGS(7);
  const float* x = A.f32(0);
  const uint16_t* w = A.u16(1);
  const bool bf16 = A.flag(2);
  float* out = A.f32(3);
  const int64_t rows = A.i64(4), n = A.i64(5), k = A.i64(6);
  if (!A.ok()) return nullptr;
  kernels().matmul_half(x, w, bf16, out, rows, n, k);
  return undefined(env);
}

napi_value Rmsnorm(napi_env env, napi_callback_info info) {
  ECHOATT_ARGS(7);
  const float* x = A.f32(0);
  const float* w = A.f32(1);
  float* out = A.f32(2);
  const int64_t rows = A.i64(3), dim = A.i64(4);
  const float eps = A.f(5), w_offset = A.f(6);
  if (!A.ok()) return nullptr;
  kernels().rmsnorm(x, w, out, rows, dim, eps, w_offset);
  return undefined(env);
}

napi_value RmsnormBackward(napi_env env, napi_callback_info info) {
  ECHOATT_ARGS(9);
  const float* x = A.f32(0);
  const float* w = A.f32(1);
  const float* dy = A.f32(2);
  float* dx = A.f32(3);
  float* dw = A.f32(4);
  const int64_t rows = A.i64(5), dim = A.i64(6);
  const float eps = A.f(7), w_offset = A.f(8);
  if (!A.ok()) return nullptr;
  kernels().rmsnorm_backward(x, w, dy, dx, dw, rows, dim, eps, w_offset);
  return undefined(env);
}

napi_value Rope(napi_env env, napi_callback_info info) {
  ECHOATT_ARGS(9);
  float* x = A.f32(0);
  const int64_t n_tok = A.i64(1), n_heads = A.i64(2), head_dim = A.i64(3);
  int64_t npos = 0;
  const int32_t* pos = A.i32(4, &npos);
  const float* cos = A.f32(5);
  const float* sin = A.f32(6);
  const bool half = A.flag(7), inverse = A.flag(8);
  if (!A.ok()) return nullptr;
  kernels().rope(x, n_tok, n_heads, head_dim, pos, cos, sin, half, inverse);
  return undefined(env);
}

napi_value Attention(napi_env env, napi_callback_info info) {
  ECHOATT_ARGS(15);
  AttentionArgs p;
  p.q = A.f32(0), p.k = A.f32(1), p.v = A.f32(2), p.out = A.f32(3), p.probs = A.f32_or_null(4);
  p.batch = A.i64(5), p.tq = A.i64(6), p.s = A.i64(7), p.n_heads = A.i64(8), p.n_kv_heads = A.i64(9);
  p.head_dim = A.i64(10), p.q_pos0 = A.i64(11), p.scale = A.f(12), p.kv_batch_stride = A.i64(13);
  p.window = A.i64(14);
  if (!A.ok()) return nullptr;
  kernels().attention(p);
  return undefined(env);
}

napi_value ProbsTimesV(napi_env env, napi_callback_info info) {
  ECHOATT_ARGS(10);
  ProbsTimesVArgs p;
  p.probs = A.f32(0), p.v = A.f32(1), p.out = A.f32(2);
  p.batch = A.i64(3), p.tq = A.i64(4), p.s = A.i64(5), p.n_heads = A.i64(6), p.n_kv_heads = A.i64(7);
  p.head_dim = A.i64(8), p.kv_batch_stride = A.i64(9);
  if (!A.ok()) return nullptr;
  kernels().probs_times_v(p);
  return undefined(env);
}

napi_value AttentionBackward(napi_env env, napi_callback_info info) {
  ECHOATT_ARGS(16);
  AttentionBackwardArgs p{};
  p.q = A.f32(0), p.k = A.f32(1), p.v = A.f32(2), p.probs = A.f32(3), p.dout = A.f32(4);
  p.dq = A.f32(5), p.dk = A.f32(6), p.dv = A.f32(7), p.dprobs_extra = A.f32_or_null(8);
  p.batch = A.i64(9), p.tq = A.i64(10), p.s = A.i64(11), p.n_heads = A.i64(12), p.n_kv_heads = A.i64(13);
  p.head_dim = A.i64(14), p.scale = A.f(15);
  if (!A.ok()) return nullptr;
  kernels().attention_backward(p);
  return undefined(env);
}

napi_value ProbsTimesVBackward(napi_env env, napi_callback_info info) {
  ECHOATT_ARGS(11);
  AttentionBackwardArgs p{};
  p.probs = A.f32(0), p.v = A.f32(1), p.dout = A.f32(2), p.dprobs = A.f32(3), p.dv = A.f32(4);
  p.batch = A.i64(5), p.tq = A.i64(6), p.s = A.i64(7), p.n_heads = A.i64(8), p.n_kv_heads = A.i64(9);
  p.head_dim = A.i64(10);
  if (!A.ok()) return nullptr;
  kernels().probs_times_v_backward(p);
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

napi_value SoftmaxBackward(napi_env env, napi_callback_info info) {
  ECHOATT_ARGS(5);
  const float* p = A.f32(0);
  const float* dp = A.f32(1);
  float* dx = A.f32(2);
  const int64_t rows = A.i64(3), cols = A.i64(4);
  if (!A.ok()) return nullptr;
  kernels().softmax_backward(p, dp, dx, rows, cols);
  return undefined(env);
}

napi_value LogSoftmax(napi_env env, napi_callback_info info) {
  ECHOATT_ARGS(4);
  const float* x = A.f32(0);
  float* out = A.f32(1);
  const int64_t rows = A.i64(2), cols = A.i64(3);
  if (!A.ok()) return nullptr;
  kernels().log_softmax(x, out, rows, cols);
  return undefined(env);
}

napi_value CrossEntropy(napi_env env, napi_callback_info info) {
  ECHOATT_ARGS(8);
  const float* logits = A.f32(0);
  int64_t n_targets = 0;
  const int32_t* targets = A.i32(1, &n_targets);
  float* losses = A.f32(2);
  const int64_t rows = A.i64(3), cols = A.i64(4);
  float* dlogits = A.f32_or_null(5);
  const float scale = A.f(6);
  const double ignore = A.num(7);
  if (!A.ok()) return nullptr;
  for (int64_t r = 0; r < rows && r < n_targets; ++r) {
    const int32_t t = targets[r];
    if ((double)t != ignore && !(t >= 0 && t < cols)) {
      A.fail("target " + std::to_string(t) + " at row " + std::to_string(r) + " is outside [0, " +
                 std::to_string(cols) + ")",
             "E_SHAPE");
      return nullptr;
    }
  }
  // An ignoreIndex that no int32 can equal ignores nothing.
  const int32_t ignore_i = (ignore == (double)(int32_t)ignore) ? (int32_t)ignore : -1;
  kernels().cross_entropy(logits, targets, losses, rows, cols, dlogits, scale, ignore_i);
  return undefined(env);
}


napi_value PackProbs(napi_env env, napi_callback_info info) {
  ECHOATT_ARGS(5);
  PackProbsArgs p;
  p.probs = A.f32(0), p.packed = A.f32(1), p.heads = A.i64(2), p.t = A.i64(3), p.stats = A.f64(4);
  if (!A.ok()) return nullptr;
  kernels().pack_probs(p);
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

napi_value AdamW(napi_env env, napi_callback_info info) {
  ECHOATT_ARGS(13);
  AdamWArgs p;
  p.w = A.f32(0), p.g = A.f32(1), p.m = A.f32(2), p.v = A.f32(3), p.n = A.i64(4);
  p.lr = A.f(5), p.beta1 = A.f(6), p.beta2 = A.f(7), p.eps = A.f(8), p.decay = A.f(9), p.c1 = A.f(10), p.c2 = A.f(11);
  p.grad_scale = A.f(12);
  if (!A.ok()) return nullptr;
  kernels().adamw(p);
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

// Shared by embedding and its backward: the ids index rows of a (vocab, dim) table, so check them all first.
bool check_ids(Args& A, const int32_t* ids, int64_t n, int64_t vocab) {
  for (int64_t t = 0; t < n; ++t) {
    if (!(ids[t] >= 0 && ids[t] < vocab)) {
      A.fail("token id " + std::to_string(ids[t]) + " at position " + std::to_string(t) + " is outside [0, " +
                 std::to_string(vocab) + ")",
             "E_SHAPE");
      return false;
    }
  }
  return true;
}

napi_value Embedding(napi_env env, napi_callback_info info) {
  ECHOATT_ARGS(5);
  const float* table = A.f32(0);
  int64_t n = 0;
  const int32_t* ids = A.i32(1, &n);
  float* out = A.f32(2);
  const int64_t vocab = A.i64(3), dim = A.i64(4);
  if (!A.ok() || !check_ids(A, ids, n, vocab)) return nullptr;
  embedding(table, ids, n, out, dim);
  return undefined(env);
}

napi_value EmbeddingBackward(napi_env env, napi_callback_info info) {
  ECHOATT_ARGS(5);
  const float* dout = A.f32(0);
  int64_t n = 0;
  const int32_t* ids = A.i32(1, &n);
  float* dtable = A.f32(2);
  const int64_t vocab = A.i64(3), dim = A.i64(4);
  if (!A.ok() || !check_ids(A, ids, n, vocab)) return nullptr;
  embedding_backward(dout, ids, n, dtable, dim);
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
  const napi_property_descriptor props[] = {
      {"info", nullptr, Info, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"setThreads", nullptr, SetThreads, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"gemm", nullptr, Gemm, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"matvec", nullptr, Matvec, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"matmulHalf", nullptr, MatmulHalf, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"rmsnorm", nullptr, Rmsnorm, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"rmsnormBackward", nullptr, RmsnormBackward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"rope", nullptr, Rope, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"attention", nullptr, Attention, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"probsTimesV", nullptr, ProbsTimesV, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"attentionBackward", nullptr, AttentionBackward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"probsTimesVBackward", nullptr, ProbsTimesVBackward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"softmax", nullptr, Softmax, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"softmaxBackward", nullptr, SoftmaxBackward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"logSoftmax", nullptr, LogSoftmax, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"crossEntropy", nullptr, CrossEntropy, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"siluMul", nullptr, SiluMul, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"siluMulBackward", nullptr, SiluMulBackward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"geluTanhMul", nullptr, GeluTanhMul, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"geluTanhMulBackward", nullptr, GeluTanhMulBackward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"scale", nullptr, Scale, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"add", nullptr, Add, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"mul", nullptr, Mul, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"axpy", nullptr, Axpy, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"packProbs", nullptr, PackProbs, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"compareProbs", nullptr, CompareProbs, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"klDivergence", nullptr, KlDivergence, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"adamw", nullptr, AdamW, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"sumSquares", nullptr, SumSquares, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"embedding", nullptr, Embedding, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"embeddingBackward", nullptr, EmbeddingBackward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"compileProgram", nullptr, CompileProgram, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"runProgram", nullptr, RunProgram, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"programProfile", nullptr, ProgramProfile, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  if (napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props) != napi_ok) return nullptr;
  return exports;
}
