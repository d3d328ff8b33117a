// The kernels compiled for AVX2 + FMA (this file gets -mavx2 -mfma -mf16c; see scripts/build-native.mjs).
// Only reached after select_kernels() has checked the CPU.
#define ECHOATT_ISA avx2
#define ECHOATT_ISA_AVX2 1
#include "kernels_table.h"
