// Picks the kernel table once, at first use: the widest the CPU and OS support (AVX-512 > AVX2 > portable), unless
// ECHOATT_NATIVE_SIMD=avx2 / portable caps it (tests use this to exercise every path on one machine).
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

// The ISA tables exist only where the build compiled them: scripts/build-native.mjs leaves out the x86 files on
// other targets, and the AVX-512 ones (defining ECHOATT_NO_AVX512 here) when the toolchain cannot build them.
#if !defined(__x86_64__) && !defined(__i386__) && !defined(ECHOATT_NO_AVX2)
#define ECHOATT_NO_AVX2 1
#endif
#if defined(ECHOATT_NO_AVX2) && !defined(ECHOATT_NO_AVX512)
#define ECHOATT_NO_AVX512 1
#endif

namespace echoatt {

const char* const kBuiltKernels[] = {
#if !defined(ECHOATT_NO_AVX512)
    "avx512",
#endif
#if !defined(ECHOATT_NO_AVX2)
    "avx2",
#endif
    "portable", nullptr};

namespace {

#if !defined(ECHOATT_NO_AVX2)
bool cpu_has_avx2_fma() {
  // __builtin_cpu_supports also checks that the OS saves the ymm state (XGETBV), not just CPUID.
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}
#endif

#if !defined(ECHOATT_NO_AVX512)
bool cpu_has_avx512() {
  // F for the micro-kernel, VL + BW for the EVEX encodings of the 128/256-bit and 16-bit code compiled alongside it.
  // As for AVX2, __builtin_cpu_supports only reports these when the OS saves the zmm / mask state.
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512bw");
}
#endif

const Kernels& select_kernels() {
  const char* want = getenv("ECHOATT_NATIVE_SIMD");
  if (want && strcmp(want, "portable") == 0) return kernels_portable;
#if !defined(ECHOATT_NO_AVX2)
  if (!cpu_has_avx2_fma()) return kernels_portable;
#if !defined(ECHOATT_NO_AVX512)
  if (cpu_has_avx512() && !(want && strcmp(want, "avx2") == 0)) return kernels_avx512;
#endif
  return kernels_avx2;
#else
  return kernels_portable;
#endif
}

}  // namespace

const Kernels& kernels() {
  static const Kernels& k = select_kernels();
  return k;
}

}  // namespace echoatt
