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

// Opcodes: the order of OPS in src/backend/program.ts.
enum Op : int32_t {
  kEmbed, kRmsnorm, kMatvec, kMatmulHalf, kGemvAdd, kAdd, kRope, kStore, kAttend, kProbsV, kSiluMul, kZero, kGeluMul,
  kScale, kNumOps
};
// Operand words per opcode (a ref is two: array, offset).
constexpr int kWords[kNumOps] = {6, 10, 9, 9, 11, 7, 9, 5, 16, 14, 7, 3, 7, 6};

struct Program {
  // Wall time per instruction, accumulated over runs while profiling (programProfile turns it on and reads it).
  bool profiling = false;
  std::vector<double> ns;
  std::vector<int32_t> code;
  std::vector<double> consts;
  std::vector<void*> arrays;
  int64_t max_pos = 0, vocab = 0;
};

float f16_to_f32(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ff, bits;
  if (e == 0) {
    if (m == 0) bits = sign;
    else {  // subnormal: normalise
      e = 113;
      while (!(m & 0x400)) m <<= 1, --e;
      bits = sign | (e << 23) | ((m & 0x3ff) << 13);
    }
  } else if (e == 31) bits = sign | 0x7f800000 | (m << 13);
  else bits = sign | ((e + 112) << 23) | (m << 13);
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

class Runner {
 public:
  Runner(const Program& p, int32_t token, int64_t pos) : p_(p), token_(token), pos_(pos) {}

  void run() {
    const int32_t* c = p_.code.data();
    const int32_t* end = c + p_.code.size();
    Program& p = const_cast<Program&>(p_);
    for (size_t i = 0; c < end; ++i) {
      pc_ = c + 1;
      if (p.profiling) {
        const auto t0 = std::chrono::steady_clock::now();
        step((Op)*c);
        p.ns[i] += (double)std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
      } else {
        step((Op)*c);
      }
      c += 1 + kWords[*c];
    }
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

  void step(Op op) {
    const Kernels& K = kernels();
    switch (op) {
      case kEmbed: {
        void* table = ref<void>();
        const int64_t dtype = num();
        float* out = ref();
        const int64_t dim = num();
        if (dtype == 0) {
          embedding(static_cast<const float*>(table), &token_, 1, out, dim);
        } else {
          const uint16_t* row = static_cast<const uint16_t*>(table) + (int64_t)token_ * dim;
          for (int64_t i = 0; i < dim; ++i) {
            if (dtype == 2) {
              const uint32_t b = (uint32_t)row[i] << 16;
              memcpy(out + i, &b, 4);
            } else out[i] = f16_to_f32(row[i]);
          }
        }
        return;
      }
      case kRmsnorm: {
        const float *x = ref(), *w = ref();
        float* out = ref();
        const int64_t rows = num(), dim = num();
        const float eps = (float)cst(), w_offset = (float)cst();
        K.rmsnorm(x, w, out, rows, dim, eps, w_offset);
        return;
      }
      case kMatvec: {
        const float *w = ref(), *x = ref();
        float* y = ref();
        const int64_t n = num(), k = num();
        K.matvec(w, x, y, n, k, num() != 0);
        return;
      }
      case kMatmulHalf: {
        const float* x = ref();
        const uint16_t* w = ref<uint16_t>();
        const bool bf16 = num() == 2;
        float* out = ref();
        const int64_t n = num(), k = num();
        K.matmul_half(x, w, bf16, out, 1, n, k);
        return;
      }
      case kGemvAdd: {
        GemmArgs g;
        g.a = ref(), g.b = ref(), g.c = ref();
        g.m = 1, g.n = num(), g.k = num();
        g.lda = num(), g.ldb = num(), g.ldc = num();
        g.trans_a = false, g.trans_b = true, g.alpha = 1, g.beta = 1;
        g.batch = 1, g.stride_a = g.lda, g.stride_b = g.n * g.ldb, g.stride_c = g.ldc;
        gemm(g);
        return;
      }
      case kAdd:
      case kSiluMul:
      case kGeluMul: {
        const float *a = ref(), *b = ref();
        float* out = ref();
        const int64_t n = num();
        (op == kAdd ? K.add : op == kSiluMul ? K.silu_mul : K.gelu_tanh_mul)(a, b, out, n);
        return;
      }
      case kScale: {
        const float* x = ref();
        float* out = ref();
        const int64_t n = num();
        K.scale(x, (float)cst(), out, n);
        return;
      }
      case kRope: {
        float* x = ref();
        const int64_t heads = num(), d = num();
        const bool half = num() != 0;
        const float *cos = ref(), *sin = ref();
        const int32_t pos = (int32_t)pos_;
        K.rope(x, 1, heads, d, &pos, cos, sin, half, false);
        return;
      }
      case kStore: {
        const float* src = ref();
        float* cache = ref();
        const int64_t row = num();
        memcpy(cache + pos_ * row, src, sizeof(float) * (size_t)row);
        return;
      }
      case kAttend: {
        AttentionArgs a;
        a.q = ref(), a.k = ref(), a.v = ref(), a.out = ref(), a.probs = ref();
        a.n_heads = num(), a.n_kv_heads = num(), a.head_dim = num();
        a.scale = (float)cst();
        a.kv_batch_stride = num(), a.window = num();
        a.batch = 1, a.tq = 1, a.s = pos_ + 1, a.q_pos0 = pos_;
        K.attention(a);
        return;
      }
      case kProbsV: {
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
        K.probs_times_v(a);
        return;
      }
      case kZero: {
        float* out = ref();
        memset(out, 0, sizeof(float) * (size_t)num());
        return;
      }
      case kNumOps:
        return;
    }
  }

  const Program& p_;
  const int32_t token_;
  const int64_t pos_;
  const int32_t* pc_ = nullptr;
};

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

int program_words(int op) { return op >= 0 && op < kNumOps ? kWords[op] : -1; }
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
  for (size_t i = 0; i < p->code.size(); i += 1 + kWords[p->code[i]]) {
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
  for (size_t i = 0; i < p.code.size(); i += 1 + kWords[p.code[i]]) ++n;
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
