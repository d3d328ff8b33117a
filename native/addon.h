// N-API plumbing of the addon (addon.cc): one call's arguments, the ECHOATT_ARGS prologue of every kernel entry, and
// the entry templates that read a kernel's arguments from its parameter types (Direct) or a struct's fields (Fill).
#pragma once

#include <node_api.h>

#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "kernels.h"
#include "threadpool.h"

namespace echoatt {

constexpr size_t kMaxArgs = 24;

// One JS call's arguments. Accessors record the first failure (and throw it into JS); the caller checks ok()
// once after reading everything.
class Args {
 public:
  Args(napi_env env, napi_callback_info info, size_t expected) : env_(env), argc_(kMaxArgs) {
    if (napi_get_cb_info(env, info, &argc_, argv_, nullptr, nullptr) != napi_ok) fail("bad call");
    else if (argc_ < expected) fail("expected " + std::to_string(expected) + " arguments, got " + std::to_string(argc_));
  }

  bool ok() const { return ok_; }

  float* f32(size_t i) { return static_cast<float*>(typed(i, napi_float32_array, "Float32Array", nullptr, false)); }
  float* f32_or_null(size_t i) { return static_cast<float*>(typed(i, napi_float32_array, "Float32Array", nullptr, true)); }
  double* f64(size_t i) { return static_cast<double*>(typed(i, napi_float64_array, "Float64Array", nullptr, false)); }
  double* f64_or_null(size_t i) {
    return static_cast<double*>(typed(i, napi_float64_array, "Float64Array", nullptr, true));
  }
  // A JS array of Float32Arrays, as pointers (each array's length checked by the TypeScript validator).
  std::vector<const float*> f32_list(size_t i) {
    std::vector<const float*> out;
    bool is_array = false;
    uint32_t n = 0;
    if (!ok_) return out;
    if (napi_is_array(env_, argv_[i], &is_array) != napi_ok || !is_array || napi_get_array_length(env_, argv_[i], &n) != napi_ok) {
      fail("argument " + std::to_string(i) + " must be an array of Float32Arrays");
      return out;
    }
    for (uint32_t j = 0; j < n && ok_; ++j) {
      napi_value el;
      bool is_ta = false;
      napi_typedarray_type type;
      size_t length = 0;
      void* data = nullptr;
      if (napi_get_element(env_, argv_[i], j, &el) != napi_ok || napi_is_typedarray(env_, el, &is_ta) != napi_ok || !is_ta ||
          napi_get_typedarray_info(env_, el, &type, &length, &data, nullptr, nullptr) != napi_ok || type != napi_float32_array) {
        fail("argument " + std::to_string(i) + " must be an array of Float32Arrays");
        return out;
      }
      out.push_back(static_cast<const float*>(data));
    }
    return out;
  }
  const uint16_t* u16(size_t i) {
    return static_cast<const uint16_t*>(typed(i, napi_uint16_array, "Uint16Array", nullptr, false));
  }
  const int32_t* i32(size_t i, int64_t* len) {
    return static_cast<const int32_t*>(typed(i, napi_int32_array, "Int32Array", len, false));
  }

  int64_t i64(size_t i) { return (int64_t)num(i); }
  float f(size_t i) { return (float)num(i); }
  double num(size_t i) {
    double v = 0;
    if (ok_ && napi_get_value_double(env_, argv_[i], &v) != napi_ok) fail("argument " + std::to_string(i) + " must be a number");
    return v;
  }
  bool flag(size_t i) {
    bool v = false;
    if (ok_ && napi_get_value_bool(env_, argv_[i], &v) != napi_ok) fail("argument " + std::to_string(i) + " must be a boolean");
    return v;
  }
  bool is_nullish(size_t i) {
    napi_valuetype t;
    return napi_typeof(env_, argv_[i], &t) == napi_ok && (t == napi_null || t == napi_undefined);
  }

  void fail(const std::string& msg, const char* code = nullptr) {
    if (!ok_) return;
    ok_ = false;
    if (code) napi_throw_error(env_, code, msg.c_str());
    else napi_throw_type_error(env_, nullptr, msg.c_str());
  }

 private:
  // napi_get_typedarray_info's data pointer already includes the view's byteOffset, so subarrays work as is.
  void* typed(size_t i, napi_typedarray_type want, const char* name, int64_t* len, bool nullable) {
    if (!ok_) return nullptr;
    if (nullable && is_nullish(i)) return nullptr;
    bool is_ta = false;
    napi_typedarray_type type;
    size_t length = 0;
    void* data = nullptr;
    if (napi_is_typedarray(env_, argv_[i], &is_ta) != napi_ok || !is_ta ||
        napi_get_typedarray_info(env_, argv_[i], &type, &length, &data, nullptr, nullptr) != napi_ok || type != want) {
      fail("argument " + std::to_string(i) + " must be a " + name);
      return nullptr;
    }
    if (len) *len = (int64_t)length;
    // An empty typed array may have a null data pointer; kernels never dereference it for zero sizes.
    return data;
  }

  napi_env env_;
  size_t argc_;
  napi_value argv_[kMaxArgs];
  bool ok_ = true;
};

inline napi_value undefined(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

// Every kernel entry reads its arguments and runs with denormals flushed (see FlushDenormals in threadpool.h).
#define ECHOATT_ARGS(n)          \
  FlushDenormals flush_guard_;   \
  Args A(env, info, n);          \
  if (!A.ok()) return nullptr

// Reading argument i into a kernel parameter or struct field, by its type (Opt: a field that may be null).
inline void read(Args& A, size_t i, float*& v) { v = A.f32(i); }
inline void read(Args& A, size_t i, const float*& v) { v = A.f32(i); }
inline void read(Args& A, size_t i, double*& v) { v = A.f64(i); }
inline void read(Args& A, size_t i, const uint16_t*& v) { v = A.u16(i); }
inline void read(Args& A, size_t i, const int32_t*& v) { v = A.i32(i, nullptr); }
inline void read(Args& A, size_t i, int64_t& v) { v = A.i64(i); }
inline void read(Args& A, size_t i, float& v) { v = A.f(i); }
inline void read(Args& A, size_t i, bool& v) { v = A.flag(i); }
inline void read_opt(Args& A, size_t i, float*& v) { v = A.f32_or_null(i); }
inline void read_opt(Args& A, size_t i, const float*& v) { v = A.f32_or_null(i); }
inline void read_opt(Args& A, size_t i, double*& v) { v = A.f64_or_null(i); }

template <auto Member, bool Nullable = false>
struct Field {};
template <auto Member>
using F = Field<Member>;
template <auto Member>
using Opt = Field<Member, true>;

template <class S, auto Member, bool Nullable>
void read_field(Args& A, size_t i, S& s, Field<Member, Nullable>) {
  if constexpr (Nullable) read_opt(A, i, s.*Member);
  else read(A, i, s.*Member);
}

// The parameters of a kernel table entry, as values.
template <class Fn>
struct KernelParams;
template <class R, class... P>
struct KernelParams<R (*Kernels::*)(P...)> {
  using type = std::tuple<std::decay_t<P>...>;
};

// An entry whose JS arguments are the kernel's parameters, in order.
template <auto Fn>
napi_value Direct(napi_env env, napi_callback_info info) {
  using Params = typename KernelParams<decltype(Fn)>::type;
  ECHOATT_ARGS(std::tuple_size_v<Params>);
  Params p{};
  std::apply([&](auto&... v) {
    size_t i = 0;
    (read(A, i++, v), ...);
  }, p);
  if (!A.ok()) return nullptr;
  std::apply(kernels().*Fn, p);
  return undefined(env);
}

// An entry for a kernel taking one argument struct: JS argument i fills field Fields[i].
template <auto Fn, class... Fields>
napi_value Fill(napi_env env, napi_callback_info info) {
  ECHOATT_ARGS(sizeof...(Fields));
  std::tuple_element_t<0, typename KernelParams<decltype(Fn)>::type> s{};
  size_t i = 0;
  (read_field(A, i++, s, Fields{}), ...);
  if (!A.ok()) return nullptr;
  (kernels().*Fn)(s);
  return undefined(env);
}

}  // namespace echoatt
