// Attention kernels (forward, probs·V, and both backward passes), compiled once per ISA like kernels_body.h.
// Layouts: q/out (B, Tq, H, D), k/v (B, S, Hkv, D) with a batch stride, probabilities (B, H, Tq, S).
#pragma once

#include <vector>

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

// Scores of one query row against keys [0, n) at row stride kv_row: p[j] = scale · q·k_j. Four keys at a time:
// four independent FMA chains and one reduction for four sums, where a dot() per key pays a horizontal sum each.
static inline void scores_row(const float* q, const float* kb, int64_t kv_row, int64_t D, int64_t n, float scale,
                              float* p) {
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const float* k0 = kb + j * kv_row;
    const float *k1 = k0 + kv_row, *k2 = k1 + kv_row, *k3 = k2 + kv_row;
    F8 a0 = zero8(), a1 = zero8(), a2 = zero8(), a3 = zero8();
    int64_t d = 0;
    for (; d + 8 <= D; d += 8) {
      const F8 qv = load8(q + d);
      a0 = fma8(qv, load8(k0 + d), a0);
      a1 = fma8(qv, load8(k1 + d), a1);
      a2 = fma8(qv, load8(k2 + d), a2);
      a3 = fma8(qv, load8(k3 + d), a3);
    }
    if (d < D) {
      const F8 qv = load8_part(q + d, D - d);
      a0 = fma8(qv, load8_part(k0 + d, D - d), a0);
      a1 = fma8(qv, load8_part(k1 + d, D - d), a1);
      a2 = fma8(qv, load8_part(k2 + d, D - d), a2);
      a3 = fma8(qv, load8_part(k3 + d, D - d), a3);
    }
    hsum4_scaled(a0, a1, a2, a3, scale, p + j);
  }
  for (; j < n; ++j) p[j] = dot(q, kb + j * kv_row, D) * scale;
}

// o (D) += Σ_{j<n} p[j] · v_j (rows at stride kv_row). The sum lives in registers, 32 columns at a time, two
// keys per step (8 FMA chains), where an axpy per key would load and store o for every key.
static inline void pv_row(const float* p, int64_t n, const float* vb, int64_t kv_row, int64_t D, float* o) {
  int64_t d0 = 0;
  for (; d0 + 32 <= D; d0 += 32) {
    F8 a[2][4];
    for (int u = 0; u < 2; ++u)
      for (int i = 0; i < 4; ++i) a[u][i] = zero8();
    int64_t j = 0;
    for (; j + 2 <= n; j += 2) {
      const F8 p0 = set8(p[j]), p1 = set8(p[j + 1]);
      const float* v0 = vb + j * kv_row + d0;
      const float* v1 = v0 + kv_row;
      for (int i = 0; i < 4; ++i) {
        a[0][i] = fma8(p0, load8(v0 + 8 * i), a[0][i]);
        a[1][i] = fma8(p1, load8(v1 + 8 * i), a[1][i]);
      }
    }
    if (j < n) {
      const F8 p0 = set8(p[j]);
      const float* v0 = vb + j * kv_row + d0;
      for (int i = 0; i < 4; ++i) a[0][i] = fma8(p0, load8(v0 + 8 * i), a[0][i]);
    }
    for (int i = 0; i < 4; ++i) store8(o + d0 + 8 * i, load8(o + d0 + 8 * i) + (a[0][i] + a[1][i]));
  }
  for (; d0 + 8 <= D; d0 += 8) {  // full 8-column groups: plain loads (masked ones are slow on some cores)
    F8 a0 = zero8(), a1 = zero8();
    int64_t j = 0;
    for (; j + 2 <= n; j += 2) {
      a0 = fma8(set8(p[j]), load8(vb + j * kv_row + d0), a0);
      a1 = fma8(set8(p[j + 1]), load8(vb + (j + 1) * kv_row + d0), a1);
    }
    if (j < n) a0 = fma8(set8(p[j]), load8(vb + j * kv_row + d0), a0);
    store8(o + d0, load8(o + d0) + (a0 + a1));
  }
  for (; d0 < D; d0 += 8) {
    const int64_t w = min64(8, D - d0);
    F8 a0 = zero8(), a1 = zero8();
    int64_t j = 0;
    for (; j + 2 <= n; j += 2) {
      a0 = fma8(set8(p[j]), load8_part(vb + j * kv_row + d0, w), a0);
      a1 = fma8(set8(p[j + 1]), load8_part(vb + (j + 1) * kv_row + d0, w), a1);
    }
    if (j < n) a0 = fma8(set8(p[j]), load8_part(vb + j * kv_row + d0, w), a0);
    store8_part(o + d0, load8_part(o + d0, w) + (a0 + a1), w);
  }
}

// Work units of the forward kernels: several query heads of one KV group, for a block of query rows. Inside a unit
// the keys are walked in blocks of kKeyBlock, every head of the unit using a block while its K (or V) rows are in
// L1, so the KV cache is streamed once per unit rather than once per query head (with GQA at long context the
// per-head re-reads fell out of L2). A unit takes the whole group unless that would leave threads idle. Together with
// the 4-key scores and register P·V: 20.3 → 6.3 ms per token for 22 TinyLlama layers at 2048 keys on 2 threads
// (`npm run bench:attention`, Intel Xeon).
// kKeyBlock: the cache rows of one KV head sit at a stride of Hkv·D floats (1 KB for TinyLlama), so a block's rows
// map to a quarter of the L1 sets; 16 keys stay resident where 64 thrashed (1 thread: 22.4 → 16.5 ms).
constexpr int64_t kMaxHeadsPerUnit = 16;
constexpr int64_t kKeyBlock = 16;

struct UnitMap {
  int64_t qblocks, subgroups, heads_per_unit;
  // Unit u → batch entry, first query head, number of heads, query block.
  void decode(int64_t u, int64_t group, int64_t n_kv_heads, int64_t* b, int64_t* h0, int64_t* nh, int64_t* qb) const {
    *qb = u % qblocks;
    const int64_t sg = (u / qblocks) % subgroups, kh = (u / (qblocks * subgroups)) % n_kv_heads;
    *b = u / (qblocks * subgroups * n_kv_heads);
    *h0 = kh * group + sg * heads_per_unit;
    *nh = min64(heads_per_unit, group - sg * heads_per_unit);
  }
};

static UnitMap unit_map(int64_t batch, int64_t tq, int64_t n_kv_heads, int64_t group) {
  const int64_t qblocks = (tq + kQueryBlock - 1) / kQueryBlock;
  const int64_t base = batch * n_kv_heads * qblocks, threads = pool_threads();
  int64_t hpu = min64(group, kMaxHeadsPerUnit);
  while (hpu > 1 && base * ((group + hpu - 1) / hpu) < threads) hpu = (hpu + 1) / 2;
  return {qblocks, (group + hpu - 1) / hpu, hpu};
}

// The next key block's rows (strided, so the hardware prefetchers follow them poorly).
static inline void prefetch_rows(const float* rows, int64_t stride, int64_t D, int64_t n) {
  for (int64_t j = 0; j < n; ++j)
    for (int64_t d = 0; d < D; d += 16) __builtin_prefetch(rows + j * stride + d, 0, 3);
}

// o_h += Σ_{j<n} p_h[j] · v_j for the nh heads of a unit, key block by key block.
static inline void pv_heads(float* const* p, float* const* o, int64_t nh, int64_t n, const float* vb, int64_t kv_row,
                            int64_t D) {
  if (D < 32) {  // narrow heads: a head's whole V walk is cheap to repeat, and per-block calls cost more than it
    for (int64_t i = 0; i < nh; ++i) pv_row(p[i], n, vb, kv_row, D, o[i]);
    return;
  }
  for (int64_t j0 = 0; j0 < n; j0 += kKeyBlock) {
    const int64_t nb = min64(kKeyBlock, n - j0);
    prefetch_rows(vb + (j0 + kKeyBlock) * kv_row, kv_row, D, min64(kKeyBlock, n - j0 - kKeyBlock));
    for (int64_t i = 0; i < nh; ++i) pv_row(p[i] + j0, nb, vb + j0 * kv_row, kv_row, D, o[i]);
  }
}

// Keys visible to query row t: [*j0, *j1), causal (clipped to S) and, with a sliding window W, from p − W + 1 on.
static inline void visible_keys(const AttentionArgs& a, int64_t t, int64_t* j0, int64_t* j1) {
  *j1 = min64(a.q_pos0 + t + 1, a.s);
  *j0 = a.window > 0 ? min64(max64(0, a.q_pos0 + t + 1 - a.window), max64(*j1, 0)) : 0;
}

// One query row t of batch entry b for the nh heads h0.. of one KV group: scores into a row buffer (the caller's
// probs row when requested, else `scratch` of S floats per head), softmax in place, then out = Σ_j p_j · v_j. Only
// the visible keys are read; the probabilities of the others are written as 0.
static inline void attention_row(const AttentionArgs& a, const HeadMap& hm, int64_t b, int64_t h0, int64_t nh,
                                 int64_t t, float* scratch) {
  const int64_t H = a.n_heads, D = a.head_dim, S = a.s, Tq = a.tq;
  int64_t j0, j1;
  visible_keys(a, t, &j0, &j1);
  const int64_t n_keys = j1 - j0;
  const int64_t kh = h0 / hm.group;
  const float* kb = a.k + b * hm.kv_batch + kh * D + j0 * hm.kv_row;
  const float* vb = a.v + b * hm.kv_batch + kh * D + j0 * hm.kv_row;
  float* p[kMaxHeadsPerUnit];
  float* o[kMaxHeadsPerUnit];
  for (int64_t i = 0; i < nh; ++i) {
    o[i] = a.out + ((b * Tq + t) * H + h0 + i) * D;
    p[i] = a.probs ? a.probs + ((b * H + h0 + i) * Tq + t) * S : scratch + i * S;
    zero_row(o[i], D);
    if (a.probs) {
      zero_row(p[i], j0);
      zero_row(p[i] + max64(j1, 0), S - max64(j1, 0));
    }
    p[i] += j0;
  }
  if (n_keys <= 0) return;
  if (D < 32) {  // narrow heads: no key blocks (see pv_heads)
    for (int64_t i = 0; i < nh; ++i) scores_row(a.q + ((b * Tq + t) * H + h0 + i) * D, kb, hm.kv_row, D, n_keys, a.scale, p[i]);
  } else for (int64_t k0 = 0; k0 < n_keys; k0 += kKeyBlock) {
    const int64_t nb = min64(kKeyBlock, n_keys - k0);
    prefetch_rows(kb + (k0 + kKeyBlock) * hm.kv_row, hm.kv_row, D, min64(kKeyBlock, n_keys - k0 - kKeyBlock));
    for (int64_t i = 0; i < nh; ++i) {
      scores_row(a.q + ((b * Tq + t) * H + h0 + i) * D, kb + k0 * hm.kv_row, hm.kv_row, D, nb, a.scale, p[i] + k0);
    }
  }
  for (int64_t i = 0; i < nh; ++i) {
    const float sum = exp_shift_sum(p[i], p[i], n_keys, row_max(p[i], n_keys));
    scale_row(1.f / sum, p[i], n_keys);
  }
  pv_heads(p, o, nh, n_keys, vb, hm.kv_row, D);
}

// Forward: work units (see UnitMap) of query rows, each row by attention_row; never a (Tq, S) matrix.
static void attention(const AttentionArgs& a) {
  const int64_t D = a.head_dim, S = a.s, Tq = a.tq;
  const HeadMap hm{a.n_heads / a.n_kv_heads, a.n_kv_heads * D, a.kv_batch_stride};
  const UnitMap um = unit_map(a.batch, Tq, a.n_kv_heads, hm.group);
  const int64_t units = a.batch * a.n_kv_heads * um.subgroups * um.qblocks;
  const int64_t work_per_unit = kQueryBlock * um.heads_per_unit * max64(S, 1) * max64(D, 1);
  parallel_for(
      units, max64(1, kGrainElems / work_per_unit),
      [&](int64_t u0, int64_t u1) {
        // Per-thread scratch kept across calls: a decode step calls this once per layer, and a fresh allocation
        // per call showed up in profiles of small models.
        thread_local std::vector<float> scratch_buf;
        const size_t need = a.probs ? 0 : (size_t)(um.heads_per_unit * max64(S, 1));
        if (scratch_buf.size() < need) scratch_buf.resize(need);
        for (int64_t u = u0; u < u1; ++u) {
          int64_t b, h0, nh, qb;
          um.decode(u, hm.group, a.n_kv_heads, &b, &h0, &nh, &qb);
          for (int64_t t = qb * kQueryBlock; t < min64(Tq, (qb + 1) * kQueryBlock); ++t) {
            attention_row(a, hm, b, h0, nh, t, scratch_buf.data());
          }
        }
      },
      8);
}

static void probs_times_v(const ProbsTimesVArgs& a) {
  const int64_t H = a.n_heads, D = a.head_dim, S = a.s, Tq = a.tq;
  const HeadMap hm{H / a.n_kv_heads, a.n_kv_heads * D, a.kv_batch_stride};
  const UnitMap um = unit_map(a.batch, Tq, a.n_kv_heads, hm.group);
  const int64_t units = a.batch * a.n_kv_heads * um.subgroups * um.qblocks;
  parallel_for(
      units, max64(1, kGrainElems / (kQueryBlock * um.heads_per_unit * max64(S, 1) * max64(D, 1))),
      [&](int64_t u0, int64_t u1) {
        float* p[kMaxHeadsPerUnit];
        float* o[kMaxHeadsPerUnit];
        for (int64_t u = u0; u < u1; ++u) {
          int64_t b, h0, nh, qb;
          um.decode(u, hm.group, a.n_kv_heads, &b, &h0, &nh, &qb);
          const float* vb = a.v + b * hm.kv_batch + (h0 / hm.group) * D;
          for (int64_t t = qb * kQueryBlock; t < min64(Tq, (qb + 1) * kQueryBlock); ++t) {
            for (int64_t i = 0; i < nh; ++i) {
              p[i] = const_cast<float*>(a.probs) + ((b * H + h0 + i) * Tq + t) * S;
              o[i] = a.out + ((b * Tq + t) * H + h0 + i) * D;
              zero_row(o[i], D);
            }
            pv_heads(p, o, nh, S, vb, hm.kv_row, D);
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
