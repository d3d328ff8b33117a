// Builds the per-ISA kernel table. Included last by kernels_<isa>.cc.
#pragma once

#include "attention_body.h"
#include "matmul_body.h"
#include "optim_body.h"
#include "pointwise_body.h"
#include "stats_body.h"

namespace echoatt {
namespace ECHOATT_ISA {
// Defined in gemm_<isa>.cc.
void gemm_micro(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, float alpha, float beta, int mr,
                int nr);
}  // namespace ECHOATT_ISA

#define ECHOATT_CAT2(a, b) a##b
#define ECHOATT_CAT(a, b) ECHOATT_CAT2(a, b)
#define ECHOATT_STR2(a) #a
#define ECHOATT_STR(a) ECHOATT_STR2(a)

const Kernels ECHOATT_CAT(kernels_, ECHOATT_ISA) = {
    ECHOATT_STR(ECHOATT_ISA),
    ECHOATT_ISA::gemm_micro,
    ECHOATT_ISA::kGemmMR,
    ECHOATT_ISA::kGemmNR,
    ECHOATT_ISA::gemm_small_m,
    ECHOATT_ISA::matvec,
    ECHOATT_ISA::pack_b_half,
    ECHOATT_ISA::softmax,
    ECHOATT_ISA::cross_entropy,
    ECHOATT_ISA::pack_probs,
    ECHOATT_ISA::compare_probs,
    ECHOATT_ISA::kl_div,
    ECHOATT_ISA::adamw,
    ECHOATT_ISA::sum_squares_total,
    ECHOATT_ISA::attention,
    ECHOATT_ISA::probs_times_v,
    ECHOATT_ISA::attention_backward,
    ECHOATT_ISA::probs_times_v_backward,
#define ECHOATT_KERNEL_INIT(js, name, params) ECHOATT_ISA::name,
    ECHOATT_DIRECT_KERNELS(ECHOATT_KERNEL_INIT)
#undef ECHOATT_KERNEL_INIT
};

}  // namespace echoatt
