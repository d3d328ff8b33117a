// The kernels compiled for AVX-512 (this file gets -mavx512f -mavx512vl -mavx512bw -mavx2 -mfma -mf16c; see
// scripts/build-native.mjs). Only reached after select_kernels() has checked the CPU. The row-wise kernels are the
// AVX2 code (ECHOATT_ISA_AVX2: 8-lane vec.h) re-encoded with EVEX; what differs is the SGEMM tile (gemm_avx512.cc)
// and the half-precision B packing for it (ECHOATT_ISA_AVX512 in kernels_body.h).
#define ECHOATT_ISA avx512
#define ECHOATT_ISA_AVX2 1
#define ECHOATT_ISA_AVX512 1
#include "kernels_table.h"
