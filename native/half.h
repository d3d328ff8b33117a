// The one f16 / bf16 → f32 scalar converter, shared by the kernel bodies (compiled per ISA) and the baseline
// files. `static inline`: each translation unit keeps its own copy, so the linker can never hand the baseline
// files one compiled with AVX2 flags (see vec.h).
#pragma once

#include <stdint.h>
#include <string.h>

namespace echoatt {

// Exact scalar widening for every input (zeros, subnormals, ±inf, NaN payloads); branch-free so that loops over it
// vectorise in the portable build.
static inline float f16_to_f32(uint32_t h) {
  const uint32_t sign = (h & 0x8000u) << 16, e = h & 0x7c00u, em = (h & 0x7fffu) << 13;
  const float sub = (float)(h & 0x3ffu) * 0x1p-24f;  // subnormal: mantissa · 2^-24, exact (≤ 10 significant bits)
  uint32_t sub_bits;
  memcpy(&sub_bits, &sub, 4);
  // normal: rebias the exponent by 127 − 15; inf / NaN: all-ones exponent, mantissa (payload) kept
  const uint32_t mag = e == 0x7c00u ? (em | 0x7f800000u) : e == 0 ? sub_bits : em + 0x38000000u;
  const uint32_t bits = sign | mag;
  float f;
  memcpy(&f, &bits, 4);
  return f;
}
static inline float bf16_to_f32(uint32_t h) {
  const uint32_t bits = h << 16;
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

}  // namespace echoatt
