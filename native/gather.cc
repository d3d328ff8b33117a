// Embedding gather and its scatter-add backward: pure data movement, so one portable version serves every ISA.
// Token ids are range-checked by the caller (addon.cc) before either runs.
#include <string.h>

#include "gather.h"
#include "half.h"
#include "threadpool.h"

namespace echoatt {

void embedding(const float* table, const int32_t* ids, int64_t n_ids, float* out, int64_t dim) {
  const int64_t grain = dim > 0 ? (1 << 15) / dim + 1 : 1;
  parallel_for(n_ids, grain, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) memcpy(out + t * dim, table + (int64_t)ids[t] * dim, sizeof(float) * (size_t)dim);
  });
}

// Repeated ids must add up, so threads split the embedding dimension rather than the tokens: every thread visits
// every token but owns a disjoint column range, which keeps the accumulation race-free and in token order.
void embedding_backward(const float* dout, const int32_t* ids, int64_t n_ids, float* dtable, int64_t dim) {
  const int64_t grain = n_ids > 0 ? (1 << 15) / n_ids + 16 : dim;
  parallel_for(dim, grain, [&](int64_t j0, int64_t j1) {
    for (int64_t t = 0; t < n_ids; ++t) {
      const float* src = dout + t * dim;
      float* dst = dtable + (int64_t)ids[t] * dim;
      for (int64_t j = j0; j < j1; ++j) dst[j] += src[j];
    }
  });
}

void embedding_half_row(const uint16_t* table, bool bf16, int32_t id, float* out, int64_t dim) {
  const uint16_t* row = table + (int64_t)id * dim;
  for (int64_t i = 0; i < dim; ++i) out[i] = bf16 ? bf16_to_f32(row[i]) : f16_to_f32(row[i]);
}

}  // namespace echoatt
