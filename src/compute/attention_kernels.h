// The inner kernel of chunked attention: one query head against one chunk's keys and values of
// one KV head, producing the partial softmax state (m, s, o) that ChunkedAttention merges. K and
// V are read in their stored element type (f32 or f16) and converted on the fly, so an f16 cache
// is never expanded to f32 in memory.
//
// Two implementations with the same contract: a scalar reference (std::exp, double sum) and an
// AVX2/FMA/F16C one (eight keys per step, a polynomial exp within 2 ulp of std::exp). The AVX2
// one is chosen at run time when the CPU has the features and DUALBLADE_NO_SIMD is not 1. Both
// are deterministic functions of their inputs, which is all the chunk-order merge needs for
// bit-identical results whatever the arrival order.
// Thread-safety: pure functions.
#pragma once

#include <cstdint>

namespace dualblade::compute {

enum class KvElemType : uint8_t { kF32, kF16 };

inline int KvElemBytes(KvElemType t) { return t == KvElemType::kF32 ? 4 : 2; }

struct HeadPartialArgs {
  const float* q = nullptr;  // head_dim floats
  const void* k = nullptr;   // key t's head at k + t * row_stride elements
  const void* v = nullptr;   // likewise for values
  int64_t row_stride = 0;    // elements between consecutive tokens' rows
  int n_keys = 0;            // visible keys, > 0
  int head_dim = 0;
  float scale = 0.0f;
  KvElemType type = KvElemType::kF32;
  float* scores = nullptr;   // scratch of at least n_keys floats
};

// Writes st[0] = m (max score), st[1] = s (sum of exp(score - m)), st[2..2+head_dim) = o (sum of
// exp(score - m) * v).
using HeadPartialFn = void (*)(const HeadPartialArgs& a, float* st);

void HeadPartialScalar(const HeadPartialArgs& a, float* st);
// REQUIRES: the CPU has AVX2, FMA and F16C.
void HeadPartialAvx2(const HeadPartialArgs& a, float* st);

// The implementation this CPU runs.
HeadPartialFn GetHeadPartial();

// e^x for 8 lanes, as the AVX2 kernel computes it (exposed for tests). REQUIRES: AVX2 + FMA.
void ExpF32Avx2(const float* x, float* out, int64_t n);

}  // namespace dualblade::compute
