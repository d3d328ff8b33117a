// Embedding kernels (gather.cc). Ids must already be checked to lie in [0, vocab).
#pragma once

#include <stdint.h>

namespace echoatt {

void embedding(const float* table, const int32_t* ids, int64_t n_ids, float* out, int64_t dim);
void embedding_backward(const float* dout, const int32_t* ids, int64_t n_ids, float* dtable, int64_t dim);
// Row `id` of a (vocab, dim) table of f16 bits (bf16 when `bf16`), widened to f32.
void embedding_half_row(const uint16_t* table, bool bf16, int32_t id, float* out, int64_t dim);

}  // namespace echoatt
