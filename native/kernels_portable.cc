// The kernels compiled for baseline x86-64 / any target: the fallback when AVX2+FMA is missing or
// ECHOATT_NATIVE_SIMD=portable.
#define ECHOATT_ISA portable
#include "kernels_table.h"
