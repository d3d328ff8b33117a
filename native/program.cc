// Step programs (src/backend/program.ts): one decode step of a whole model as a list of kernel calls over fixed
// buffers, run in one call from JS. The TypeScript side has already proved every access in bounds for every position
// below max_pos (src/backend/program-run.ts, checkProgram); here the only inputs checked are the token and position.
// Each instruction makes exactly the kernel call the op-by-op decoder makes, so the logits are the same bits.
#include <node_api.h>
#include <string.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "gather.h"
#include "kernels.h"
#include "program.h"
#include "threadpool.h"

namespace echoatt {
namespace {

struct Program {
  // Wall time per instruction, accumulated over runs while profiling (programProfile turns it on and reads it).
  bool profiling = false;
  std::vector<double> ns;
  std::vector<int32_t> code;
  std::vector<double> consts;
  std::vector<void*> arrays;
  int64_t max_pos = 0, vocab = 0;
};

// Runs one step: each opcode is one handler, which reads its operands in the order of its OPS entry in
// src/backend/program.ts (a ref is two words: array, offset) and makes the op-by-op decoder's kernel call.
class Runner {
 public:
  Runner(const Program& p, int32_t token, int64_t pos) : p_(p), token_(token), pos_(pos) {}

  void run();

  void embed() {
    void* table = ref<void>();
    const int64_t dtype = num();
    float* out = ref();
    const int64_t dim = num();
    if (dtype == 0) embedding(static_cast<const float*>(table), &token_, 1, out, dim);
    else embedding_half_row(static_cast<const uint16_t*>(table), dtype == 2, token_, out, dim);
  }
  void rmsnorm() {
    const float *x = ref(), *w = ref();
    float* out = ref();
    const int64_t rows = num(), dim = num();
    const float eps = (float)cst(), w_offset = (float)cst();
    kernels().rmsnorm(x, w, out, rows, dim, eps, w_offset);
  }
  void matvec() {
    const float *w = ref(), *x = ref();
    float* y = ref();
    const int64_t n = num(), k = num();
    kernels().matvec(w, x, y, n, k, num() != 0);
  }
  void matmul_half() {
    const float* x = ref();
    const uint16_t* w = ref<uint16_t>();
    const bool bf16 = num() == 2;
    float* out = ref();
    const int64_t n = num(), k = num();
    kernels().matmul_half(x, w, bf16, out, 1, n, k);
  }
  void gemv_add() {
    GemmArgs g;
    g.a = ref(), g.b = ref(), g.c = ref();
    g.m = 1, g.n = num(), g.k = num();
    g.lda = num(), g.ldb = num(), g.ldc = num();
    g.trans_a = false, g.trans_b = true, g.alpha = 1, g.beta = 1;
    g.batch = 1, g.stride_a = g.lda, g.stride_b = g.n * g.ldb, g.stride_c = g.ldc;
    gemm(g);
  }
  // add, siluMul, geluMul: (a, b, out, n).
  template <void (*const Kernels::*Fn)(const float*, const float*, float*, int64_t)>
  void binary() {
    const float *a = ref(), *b = ref();
    float* out = ref();
    const int64_t n = num();
    (kernels().*Fn)(a, b, out, n);
  }
  void scale() {
    const float* x = ref();
    float* out = ref();
    const int64_t n = num();
    kernels().scale(x, (float)cst(), out, n);
  }
  void rope() {
    float* x = ref();
    const int64_t heads = num(), d = num();
    const bool half = num() != 0;
    const float *cos = ref(), *sin = ref();
    const int32_t pos = (int32_t)pos_;
    kernels().rope(x, 1, heads, d, &pos, cos, sin, half, false);
  }
  void store() {
    const float* src = ref();
    float* cache = ref();
    const int64_t row = num();
    memcpy(cache + pos_ * row, src, sizeof(float) * (size_t)row);
  }
  void attend() {
    AttentionArgs a;
    a.q = ref(), a.k = ref(), a.v = ref(), a.out = ref(), a.probs = ref();
    a.n_heads = num(), a.n_kv_heads = num(), a.head_dim = num();
    a.scale = (float)cst();
    a.kv_batch_stride = num(), a.window = num();
    a.batch = 1, a.tq = 1, a.s = pos_ + 1, a.q_pos0 = pos_;
    kernels().attention(a);
  }
  void probs_v() {
    ProbsTimesVArgs a;
    const float* probs = ref();
    a.v = ref(), a.out = ref();
    const int32_t* map = ref<int32_t>();
    float* scratch = ref();
    a.n_heads = num(), a.n_kv_heads = num(), a.head_dim = num(), a.kv_batch_stride = num();
    a.batch = 1, a.tq = 1, a.s = pos_ + 1;
    if (map) {  // head-aligned echo: gather the anchor's rows in this layer's head order
      for (int64_t h = 0; h < a.n_heads; ++h) memcpy(scratch + h * a.s, probs + map[h] * a.s, sizeof(float) * (size_t)a.s);
      probs = scratch;
    }
    a.probs = probs;
    kernels().probs_times_v(a);
  }
  void zero() {
    float* out = ref();
    memset(out, 0, sizeof(float) * (size_t)num());
  }

 private:
  template <class T = float>
  T* ref() {
    const int32_t a = pc_[0], off = pc_[1];
    pc_ += 2;
    return a < 0 ? nullptr : static_cast<T*>(p_.arrays[a]) + off;
  }
  int64_t num() { return *pc_++; }
  double cst() { return p_.consts[*pc_++]; }

  const Program& p_;
  const int32_t token_;
  const int64_t pos_;
  const int32_t* pc_ = nullptr;
};

// The instruction set, indexed by opcode (the order of OPS in src/backend/program.ts): operand words and handler.
struct OpSpec {
  int words;
  void (Runner::*run)();
};
constexpr OpSpec kOps[] = {
    {6, &Runner::embed},         {10, &Runner::rmsnorm},  {9, &Runner::matvec},
    {9, &Runner::matmul_half},   {11, &Runner::gemv_add}, {7, &Runner::binary<&Kernels::add>},
    {9, &Runner::rope},          {5, &Runner::store},     {16, &Runner::attend},
    {14, &Runner::probs_v},      {7, &Runner::binary<&Kernels::silu_mul>},
    {3, &Runner::zero},          {7, &Runner::binary<&Kernels::gelu_tanh_mul>},
    {6, &Runner::scale},
};
constexpr int kNumOps = (int)(sizeof(kOps) / sizeof(kOps[0]));

void Runner::run() {
  const int32_t* c = p_.code.data();
  const int32_t* end = c + p_.code.size();
  Program& p = const_cast<Program&>(p_);
  for (size_t i = 0; c < end; ++i) {
    const OpSpec& op = kOps[*c];
    pc_ = c + 1;
    if (p.profiling) {
      const auto t0 = std::chrono::steady_clock::now();
      (this->*op.run)();
      p.ns[i] += (double)std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
    } else {
      (this->*op.run)();
    }
    c += 1 + op.words;
  }
}

void finalize(napi_env, void* data, void*) { delete static_cast<Program*>(data); }

bool throw_error(napi_env env, const std::string& msg, const char* code = nullptr) {
  napi_throw_error(env, code, msg.c_str());
  return false;
}

void* typed_data(napi_env env, napi_value v, size_t* length, napi_typedarray_type* type) {
  bool is_ta = false;
  void* data = nullptr;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta) return nullptr;
  if (napi_get_typedarray_info(env, v, type, length, &data, nullptr, nullptr) != napi_ok) return nullptr;
  return data;
}

}  // namespace

int program_words(int op) { return op >= 0 && op < kNumOps ? kOps[op].words : -1; }
int program_ops() { return kNumOps; }

// compileProgram(code: Int32Array, consts: Float64Array, arrays: TypedArray[], maxPos, vocab) → external handle.
// The caller keeps `arrays` alive as long as the handle (their data pointers are taken here).
napi_value CompileProgram(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 5) {
    throw_error(env, "compileProgram: expected 5 arguments");
    return nullptr;
  }
  auto* p = new Program();
  size_t len = 0;
  napi_typedarray_type type;
  void* code = typed_data(env, argv[0], &len, &type);
  if (!code || type != napi_int32_array) return delete p, throw_error(env, "compileProgram: code must be an Int32Array"), nullptr;
  p->code.assign(static_cast<int32_t*>(code), static_cast<int32_t*>(code) + len);
  void* consts = typed_data(env, argv[1], &len, &type);
  if (len && (!consts || type != napi_float64_array)) return delete p, throw_error(env, "compileProgram: consts must be a Float64Array"), nullptr;
  if (len) p->consts.assign(static_cast<double*>(consts), static_cast<double*>(consts) + len);
  uint32_t n = 0;
  if (napi_get_array_length(env, argv[2], &n) != napi_ok) return delete p, throw_error(env, "compileProgram: arrays must be an array"), nullptr;
  for (uint32_t i = 0; i < n; ++i) {
    napi_value e;
    napi_get_element(env, argv[2], i, &e);
    void* d = typed_data(env, e, &len, &type);
    if (!d && len != 0) return delete p, throw_error(env, "compileProgram: arrays[" + std::to_string(i) + "] is not a typed array"), nullptr;
    p->arrays.push_back(d);
  }
  double max_pos = 0, vocab = 0;
  napi_get_value_double(env, argv[3], &max_pos);
  napi_get_value_double(env, argv[4], &vocab);
  p->max_pos = (int64_t)max_pos, p->vocab = (int64_t)vocab;
  for (size_t i = 0; i < p->code.size(); i += 1 + kOps[p->code[i]].words) {
    if (p->code[i] < 0 || p->code[i] >= kNumOps) return delete p, throw_error(env, "compileProgram: bad opcode"), nullptr;
  }
  napi_value handle;
  if (napi_create_external(env, p, finalize, nullptr, &handle) != napi_ok) return delete p, nullptr;
  return handle;
}

// runProgram(handle, token, pos): one decode step.
napi_value RunProgram(napi_env env, napi_callback_info info) {
  FlushDenormals flush_guard;
  size_t argc = 3;
  napi_value argv[3];
  void* data = nullptr;
  double token = 0, pos = 0;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 3 ||
      napi_get_value_external(env, argv[0], &data) != napi_ok || napi_get_value_double(env, argv[1], &token) != napi_ok ||
      napi_get_value_double(env, argv[2], &pos) != napi_ok) {
    throw_error(env, "runProgram(handle, token, pos): bad arguments");
    return nullptr;
  }
  const Program& p = *static_cast<Program*>(data);
  if (!(token >= 0 && token < (double)p.vocab && token == (double)(int32_t)token)) {
    throw_error(env, "token id " + std::to_string(token) + " is outside [0, " + std::to_string(p.vocab) + ")", "E_SHAPE");
    return nullptr;
  }
  if (!(pos >= 0 && pos < (double)p.max_pos && pos == (double)(int64_t)pos)) {
    throw_error(env, "position " + std::to_string(pos) + " is outside [0, " + std::to_string(p.max_pos) + ")", "E_SHAPE");
    return nullptr;
  }
  Runner(p, (int32_t)token, (int64_t)pos).run();
  return nullptr;
}

// programProfile(handle, on): turns per-instruction timing on or off and returns the nanoseconds accumulated so far
// per instruction (a Float64Array), resetting them.
napi_value ProgramProfile(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  void* data = nullptr;
  bool on = false;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 2 ||
      napi_get_value_external(env, argv[0], &data) != napi_ok || napi_get_value_bool(env, argv[1], &on) != napi_ok) {
    throw_error(env, "programProfile(handle, on): bad arguments");
    return nullptr;
  }
  Program& p = *static_cast<Program*>(data);
  size_t n = 0;
  for (size_t i = 0; i < p.code.size(); i += 1 + kOps[p.code[i]].words) ++n;
  p.ns.resize(n, 0.0);
  napi_value buf, arr;
  void* out = nullptr;
  napi_create_arraybuffer(env, n * sizeof(double), &out, &buf);
  memcpy(out, p.ns.data(), n * sizeof(double));
  napi_create_typedarray(env, napi_float64_array, n, buf, 0, &arr);
  std::fill(p.ns.begin(), p.ns.end(), 0.0);
  p.profiling = on;
  return arr;
}

}  // namespace echoatt
