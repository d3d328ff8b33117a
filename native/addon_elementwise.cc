// N-API entries of the elementwise kernels (see addon.cc for the conventions every entry follows).
#include "addon.h"

namespace echoatt {

napi_value SiluMul(napi_env env, napi_callback_info info) {
  ECHOATT_ARGS(4);
  const float* gate = A.f32(0);
  const float* up = A.f32(1);
  float* out = A.f32(2);
  const int64_t n = A.i64(3);
  if (!A.ok()) return nullptr;
  kernels().silu_mul(gate, up, out, n);
  return undefined(env);
}

napi_value SiluMulBackward(napi_env env, napi_callback_info info) {
  ECHOATT_ARGS(6);
  const float* gate = A.f32(0);
  const float* up = A.f32(1);
  const float* dout = A.f32(2);
  float* dgate = A.f32(3);
  float* dup = A.f32(4);
  const int64_t n = A.i64(5);
  if (!A.ok()) return nullptr;
  kernels().silu_mul_backward(gate, up, dout, dgate, dup, n);
  return undefined(env);
}

napi_value GeluTanhMul(napi_env env, napi_callback_info info) {
  ECHOATT_ARGS(4);
  const float* gate = A.f32(0);
  const float* up = A.f32(1);
  float* out = A.f32(2);
  const int64_t n = A.i64(3);
  if (!A.ok()) return nullptr;
  kernels().gelu_tanh_mul(gate, up, out, n);
  return undefined(env);
}

napi_value GeluTanhMulBackward(napi_env env, napi_callback_info info) {
  ECHOATT_ARGS(6);
  const float* gate = A.f32(0);
  const float* up = A.f32(1);
  const float* dout = A.f32(2);
  float* dgate = A.f32(3);
  float* dup = A.f32(4);
  const int64_t n = A.i64(5);
  if (!A.ok()) return nullptr;
  kernels().gelu_tanh_mul_backward(gate, up, dout, dgate, dup, n);
  return undefined(env);
}

napi_value Scale(napi_env env, napi_callback_info info) {
  ECHOATT_ARGS(4);
  const float* x = A.f32(0);
  const float alpha = A.f(1);
  float* out = A.f32(2);
  const int64_t n = A.i64(3);
  if (!A.ok()) return nullptr;
  kernels().scale(x, alpha, out, n);
  return undefined(env);
}

namespace {

template <void (*const Kernels::*Op)(const float*, const float*, float*, int64_t)>
napi_value Binary(napi_env env, napi_callback_info info) {
  ECHOATT_ARGS(4);
  const float* a = A.f32(0);
  const float* b = A.f32(1);
  float* out = A.f32(2);
  const int64_t n = A.i64(3);
  if (!A.ok()) return nullptr;
  (kernels().*Op)(a, b, out, n);
  return undefined(env);
}

}  // namespace

napi_value Add(napi_env env, napi_callback_info info) { return Binary<&Kernels::add>(env, info); }
napi_value Mul(napi_env env, napi_callback_info info) { return Binary<&Kernels::mul>(env, info); }

napi_value Axpy(napi_env env, napi_callback_info info) {
  ECHOATT_ARGS(4);
  const float alpha = A.f(0);
  const float* x = A.f32(1);
  float* y = A.f32(2);
  const int64_t n = A.i64(3);
  if (!A.ok()) return nullptr;
  kernels().axpy(alpha, x, y, n);
  return undefined(env);
}

}  // namespace echoatt
