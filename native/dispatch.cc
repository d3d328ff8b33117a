// Picks the kernel table once, at first use: AVX2 when the CPU and OS support it, unless
// ECHOATT_NATIVE_SIMD=portable asks for the fallback (tests use this to exercise both paths on one machine).
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

namespace echoatt {
namespace {

bool cpu_has_avx2_fma() {
#if defined(__x86_64__) || defined(__i386__)
  // __builtin_cpu_supports also checks that the OS saves the ymm state (XGETBV), not just CPUID.
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#else
  return false;
#endif
}

const Kernels& select_kernels() {
  const char* want = getenv("ECHOATT_NATIVE_SIMD");
  if (want && strcmp(want, "portable") == 0) return kernels_portable;
  return cpu_has_avx2_fma() ? kernels_avx2 : kernels_portable;
}

}  // namespace

const Kernels& kernels() {
  static const Kernels& k = select_kernels();
  return k;
}

}  // namespace echoatt
