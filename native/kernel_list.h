// The kernels the addon exports directly: their JS arguments are the C++ parameters, in order (addon.h's Direct
// reads each by its type). One line each, X(jsName, name, (parameters)), with `name` both the `Kernels` member and
// the per-ISA function in the *_body.h files, which returns void. From this one list come the `Kernels` members
// (kernels.h), each ISA's table initialiser (kernels_table.h; the same order, so they always agree) and the addon's
// {"jsName", Direct<&Kernels::name>} entries (addon.cc). Adding such a kernel: its line here and its body.
// Semantics are those of the TypeScript op-table entry of that name (src/backend/ops/).
#pragma once

#define ECHOATT_DIRECT_KERNELS(X)                                                                                      \
  /* out (rows, n) = x (rows, k) · Wᵀ with W (n, k) stored as f16 or bf16 bits. */                                     \
  X(matmulHalf, matmul_half, (const float* x, const uint16_t* w, bool bf16, float* out, int64_t rows, int64_t n,       \
                              int64_t k))                                                                              \
  /* Scales w + w_offset (w itself, bit for bit, when w_offset is 0). */                                               \
  X(rmsnorm, rmsnorm, (const float* x, const float* w, float* out, int64_t rows, int64_t dim, float eps,                \
                       float w_offset))                                                                                \
  X(rmsnormBackward, rmsnorm_backward, (const float* x, const float* w, const float* dy, float* dx, float* dw,         \
                                        int64_t rows, int64_t dim, float eps, float w_offset))                         \
  X(rope, rope, (float* x, int64_t n_tok, int64_t n_heads, int64_t head_dim, const int32_t* pos, const float* cos,     \
                 const float* sin, bool half_style, bool inverse))                                                     \
  X(softmaxBackward, softmax_backward, (const float* p, const float* dp, float* dx, int64_t rows, int64_t cols))       \
  X(logSoftmax, log_softmax, (const float* x, float* out, int64_t rows, int64_t cols))                                 \
  X(siluMul, silu_mul, (const float* gate, const float* up, float* out, int64_t n))                                    \
  X(siluMulBackward, silu_mul_backward, (const float* gate, const float* up, const float* dout, float* dgate,          \
                                         float* dup, int64_t n))                                                       \
  X(geluTanhMul, gelu_tanh_mul, (const float* gate, const float* up, float* out, int64_t n))                           \
  X(geluTanhMulBackward, gelu_tanh_mul_backward, (const float* gate, const float* up, const float* dout, float* dgate,  \
                                                  float* dup, int64_t n))                                              \
  X(scale, scale, (const float* x, float alpha, float* out, int64_t n))                                                \
  X(add, add, (const float* a, const float* b, float* out, int64_t n))                                                 \
  X(mul, mul, (const float* a, const float* b, float* out, int64_t n))                                                 \
  X(axpy, axpy, (float alpha, const float* x, float* y, int64_t n))
