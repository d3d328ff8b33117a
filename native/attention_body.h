// Attention kernels (forward, probs·V, and both backward passes), compiled once per ISA like kernels_body.h.
// Layouts: q/out (B, Tq, H, D), k/v (B, S, Hkv, D) with a batch stride, probabilities (B, H, Tq, S).
#pragma once

#include "kernels_body.h"

namespace echoatt {
namespace ECHOATT_ISA {

// Query rows per task. Small enough that causal prefill balances over the pool, large enough that one task's
// K/V rows are reused from cache by the rows after the first.
constexpr int64_t kQueryBlock = 16;

struct HeadMap {
  int64_t group;  // query heads per key/value head
  int64_t kv_row, kv_batch;  // element strides of a key position and of a batch entry in k/v
};

// Forward. Each query row is one pass: scores into a row buffer (the caller's probs row when requested, else an
// S-float scratch per task, never a (Tq, S) matrix), softmax in place, then out = Σ_j p_j · v_j.
static void attention(const AttentionArgs& a) {
  const int64_t H = a.n_heads, D = a.head_dim, S = a.s, Tq = a.tq;
  const HeadMap hm{H / a.n_kv_heads, a.n_kv_heads * D, a.kv_batch_stride};
  const int64_t qblocks = (Tq + kQueryBlock - 1) / kQueryBlock;
  const int64_t units = a.batch * H * qblocks;
  const int64_t work_per_unit = kQueryBlock * max64(S, 1) * max64(D, 1);
  parallel_for(
      units, max64(1, kGrainElems / work_per_unit),
      [&](int64_t u0, int64_t u1) {
        float* scratch = a.probs ? nullptr : new float[(size_t)max64(S, 1)];
        for (int64_t u = u0; u < u1; ++u) {
          const int64_t qb = u % qblocks, h = (u / qblocks) % H, b = u / (qblocks * H);
          const int64_t kh = h / hm.group;
          const float* kb = a.k + b * hm.kv_batch + kh * D;
          const float* vb = a.v + b * hm.kv_batch + kh * D;
          for (int64_t t = qb * kQueryBlock; t < min64(Tq, (qb + 1) * kQueryBlock); ++t) {
            const float* q = a.q + ((b * Tq + t) * H + h) * D;
            float* o = a.out + ((b * Tq + t) * H + h) * D;
            float* p = a.probs ? a.probs + ((b * H + h) * Tq + t) * S : scratch;
            const int64_t n_keys = min64(a.q_pos0 + t + 1, S);  // keys [0, n_keys) are visible
            zero_row(o, D);
            if (n_keys <= 0) {
              if (a.probs) zero_row(p, S);
              continue;
            }
            for (int64_t j = 0; j < n_keys; ++j) p[j] = dot(q, kb + j * hm.kv_row, D) * a.scale;
            const float sum = exp_shift_sum(p, p, n_keys, row_max(p, n_keys));
            scale_row(1.f / sum, p, n_keys);
            if (a.probs) zero_row(p + n_keys, S - n_keys);
            for (int64_t j = 0; j < n_keys; ++j) axpy_row(p[j], vb + j * hm.kv_row, o, D);
          }
        }
        delete[] scratch;
      },
      8);
}

static void probs_times_v(const ProbsTimesVArgs& a) {
  const int64_t H = a.n_heads, D = a.head_dim, S = a.s, Tq = a.tq;
  const HeadMap hm{H / a.n_kv_heads, a.n_kv_heads * D, a.kv_batch_stride};
  const int64_t qblocks = (Tq + kQueryBlock - 1) / kQueryBlock;
  parallel_for(
      a.batch * H * qblocks, max64(1, kGrainElems / (kQueryBlock * max64(S, 1) * max64(D, 1))),
      [&](int64_t u0, int64_t u1) {
        for (int64_t u = u0; u < u1; ++u) {
          const int64_t qb = u % qblocks, h = (u / qblocks) % H, b = u / (qblocks * H);
          const float* vb = a.v + b * hm.kv_batch + (h / hm.group) * D;
          for (int64_t t = qb * kQueryBlock; t < min64(Tq, (qb + 1) * kQueryBlock); ++t) {
            const float* p = a.probs + ((b * H + h) * Tq + t) * S;
            float* o = a.out + ((b * Tq + t) * H + h) * D;
            zero_row(o, D);
            for (int64_t j = 0; j < S; ++j) axpy_row(p[j], vb + j * hm.kv_row, o, D);
          }
        }
      },
      4);
}

// ∂L/∂P rows: dp[b,h,t,j] = dout[b,t,h] · v[b,j,kh] (+ extra). Then, when `to_scores`, turn each row into
// scale · ∂L/∂scores = scale · p ⊙ (dp − Σ p·dp) and accumulate dq from it. Rows are independent: parallel over rows.
static void dprobs_rows(const AttentionBackwardArgs& a, float* dp, bool to_scores) {
  const int64_t H = a.n_heads, D = a.head_dim, S = a.s, Tq = a.tq;
  const int64_t group = H / a.n_kv_heads, kv_row = a.n_kv_heads * D, kv_batch = S * kv_row;
  parallel_for(
      a.batch * H * Tq, max64(1, kGrainElems / (max64(S, 1) * max64(D, 1))),
      [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          const int64_t t = r % Tq, h = (r / Tq) % H, b = r / (Tq * H);
          const int64_t kh = h / group;
          const float* g = a.dout + ((b * Tq + t) * H + h) * D;
          const float* vb = a.v + b * kv_batch + kh * D;
          float* row = dp + r * S;
          for (int64_t j = 0; j < S; ++j) row[j] = dot(g, vb + j * kv_row, D);
          if (a.dprobs_extra) axpy_row(1.f, a.dprobs_extra + r * S, row, S);
          if (!to_scores) continue;
          const float* p = a.probs + r * S;
          const F8 c = set8(dot(p, row, S)), sc = set8(a.scale);
          int64_t j = 0;
          for (; j + 8 <= S; j += 8) store8(row + j, sc * load8(p + j) * (load8(row + j) - c));
          if (j < S) store8_part(row + j, sc * load8_part(p + j, S - j) * (load8_part(row + j, S - j) - c), S - j);
          float* dq = a.dq + ((b * Tq + t) * H + h) * D;
          const float* kb = a.k + b * kv_batch + kh * D;
          zero_row(dq, D);
          for (int64_t j2 = 0; j2 < S; ++j2)
            if (row[j2] != 0.f) axpy_row(row[j2], kb + j2 * kv_row, dq, D);
        }
      },
      4);
}

// Key-side gradients, parallel over (batch, kv head, block of key positions) so each output row has one writer:
//   dv[j] = Σ_{h in group, t} p[h,t,j] · dout[t,h]      dk[j] = Σ_{h,t} ds[h,t,j] · q[t,h]   (ds may be null)
static void kv_grads(const AttentionBackwardArgs& a, const float* ds) {
  const int64_t H = a.n_heads, Hkv = a.n_kv_heads, D = a.head_dim, S = a.s, Tq = a.tq;
  const int64_t group = H / Hkv, kv_row = Hkv * D;
  constexpr int64_t kKeys = 64;
  const int64_t jblocks = (S + kKeys - 1) / kKeys;
  parallel_for(
      a.batch * Hkv * jblocks, max64(1, kGrainElems / (kKeys * max64(Tq * group, 1) * max64(D, 1))),
      [&](int64_t u0, int64_t u1) {
        for (int64_t u = u0; u < u1; ++u) {
          const int64_t jb = u % jblocks, kh = (u / jblocks) % Hkv, b = u / (jblocks * Hkv);
          const int64_t j0 = jb * kKeys, j1 = min64(S, j0 + kKeys);
          for (int64_t j = j0; j < j1; ++j) {
            const int64_t o = (b * S + j) * kv_row + kh * D;
            zero_row(a.dv + o, D);
            if (ds) zero_row(a.dk + o, D);
          }
          for (int64_t h = kh * group; h < (kh + 1) * group; ++h) {
            for (int64_t t = 0; t < Tq; ++t) {
              const int64_t r = (b * H + h) * Tq + t;
              const float* p = a.probs + r * S;
              const float* g = a.dout + ((b * Tq + t) * H + h) * D;
              for (int64_t j = j0; j < j1; ++j) axpy_row(p[j], g, a.dv + (b * S + j) * kv_row + kh * D, D);
              if (!ds) continue;
              const float* dsr = ds + r * S;
              const float* q = a.q + ((b * Tq + t) * H + h) * D;
              for (int64_t j = j0; j < j1; ++j)
                if (dsr[j] != 0.f) axpy_row(dsr[j], q, a.dk + (b * S + j) * kv_row + kh * D, D);
            }
          }
        }
      },
      4);
}

static void attention_backward(const AttentionBackwardArgs& a) {
  const int64_t n = a.batch * a.n_heads * a.tq * a.s;
  float* ds = new float[(size_t)max64(n, 1)];
  dprobs_rows(a, ds, true);
  kv_grads(a, ds);
  delete[] ds;
}

static void probs_times_v_backward(const AttentionBackwardArgs& a) {
  dprobs_rows(a, a.dprobs, false);
  kv_grads(a, nullptr);
}

}  // namespace ECHOATT_ISA
}  // namespace echoatt
