#include "compute/attention_kernels.h"

#include <immintrin.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "model/fp16.h"
#include "model/vec_dot.h"

#define DB_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace dualblade::compute {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

inline float LoadScalar(const void* base, int64_t i, KvElemType type) {
  if (type == KvElemType::kF32) return static_cast<const float*>(base)[i];
  return ::dualblade::Fp16ToFp32(static_cast<const uint16_t*>(base)[i]);
}

// ---- AVX2 -------------------------------------------------------------------------------------

template <bool kF16>
DB_AVX2 inline __m256 Load8(const void* base, int64_t i) {
  if constexpr (kF16) {
    return _mm256_cvtph_ps(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(base) + i)));
  } else {
    return _mm256_loadu_ps(static_cast<const float*>(base) + i);
  }
}

DB_AVX2 inline float Hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

DB_AVX2 inline float Hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Lane j of the result is the sum of the lanes of a[j].
DB_AVX2 inline __m256 Reduce8(const __m256* a) {
  const __m256 t0 = _mm256_hadd_ps(a[0], a[1]);
  const __m256 t1 = _mm256_hadd_ps(a[2], a[3]);
  const __m256 t2 = _mm256_hadd_ps(a[4], a[5]);
  const __m256 t3 = _mm256_hadd_ps(a[6], a[7]);
  const __m256 u0 = _mm256_hadd_ps(t0, t1);
  const __m256 u1 = _mm256_hadd_ps(t2, t3);
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

// Cephes' expf: x = n ln2 + r with |r| <= ln2/2 (ln2 split in two for exactness), a degree-7
// polynomial for e^r, 2^n put into the exponent bits. Below ln(FLT_MIN) the result is 0 (-inf
// included), from 88.376 up +inf (where n would reach 128).
DB_AVX2 inline __m256 Exp8(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.33654475f), hi = _mm256_set1_ps(88.3762626647949f);
  const __m256 underflow = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  const __m256 overflow = _mm256_cmp_ps(x, hi, _CMP_GT_OQ);
  x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  __m256 out = _mm256_mul_ps(y, _mm256_castsi256_ps(e));
  out = _mm256_andnot_ps(underflow, out);
  return _mm256_blendv_ps(out, _mm256_set1_ps(std::numeric_limits<float>::infinity()), overflow);
}

template <bool kF16>
DB_AVX2 void HeadPartialAvx2T(const HeadPartialArgs& a, float* st) {
  const int hd = a.head_dim;
  const int n = a.n_keys;
  const int64_t stride = a.row_stride;
  float* scores = a.scores;

  // Scores, eight keys at a time: eight dot products in eight accumulators, then one
  // transpose-and-add, instead of a horizontal sum per key.
  __m256 vmax = _mm256_set1_ps(kNegInf);
  const __m256 scale = _mm256_set1_ps(a.scale);
  int t = 0;
  for (; t + 8 <= n; t += 8) {
    __m256 acc[8];
    for (int j = 0; j < 8; ++j) acc[j] = _mm256_setzero_ps();
    const int64_t row0 = static_cast<int64_t>(t) * stride;
    for (int d = 0; d < hd; d += 8) {
      const __m256 qv = _mm256_loadu_ps(a.q + d);
      for (int j = 0; j < 8; ++j) {
        acc[j] = _mm256_fmadd_ps(qv, Load8<kF16>(a.k, row0 + j * stride + d), acc[j]);
      }
    }
    const __m256 s = _mm256_mul_ps(Reduce8(acc), scale);
    _mm256_storeu_ps(scores + t, s);
    vmax = _mm256_max_ps(vmax, s);
  }
  float m = Hmax(vmax);
  for (; t < n; ++t) {
    __m256 acc = _mm256_setzero_ps();
    const int64_t row = static_cast<int64_t>(t) * stride;
    for (int d = 0; d < hd; d += 8) {
      acc = _mm256_fmadd_ps(_mm256_loadu_ps(a.q + d), Load8<kF16>(a.k, row + d), acc);
    }
    scores[t] = Hsum(acc) * a.scale;
    m = std::max(m, scores[t]);
  }

  // Weights e^(score - m), summed in double like the reference.
  const __m256 vm = _mm256_set1_ps(m);
  __m256d sum0 = _mm256_setzero_pd(), sum1 = _mm256_setzero_pd();
  t = 0;
  for (; t + 8 <= n; t += 8) {
    const __m256 e = Exp8(_mm256_sub_ps(_mm256_loadu_ps(scores + t), vm));
    _mm256_storeu_ps(scores + t, e);
    sum0 = _mm256_add_pd(sum0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
    sum1 = _mm256_add_pd(sum1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
  }
  if (t < n) {
    alignas(32) float tail[8];
    for (int j = 0; j < 8; ++j) tail[j] = t + j < n ? scores[t + j] - m : kNegInf;
    const __m256 e = Exp8(_mm256_load_ps(tail));  // the padding lanes come out 0
    _mm256_store_ps(tail, e);
    for (int j = 0; t + j < n; ++j) scores[t + j] = tail[j];
    sum0 = _mm256_add_pd(sum0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
    sum1 = _mm256_add_pd(sum1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
  }
  alignas(32) double sums[4];
  _mm256_store_pd(sums, _mm256_add_pd(sum0, sum1));
  const double s = (sums[0] + sums[1]) + (sums[2] + sums[3]);

  // o = sum_t e_t v_t. Short heads (8 or 16 dimensions: one or two vectors) keep four or two
  // keys in flight in separate accumulators, or every key would wait on the previous one's
  // multiply-add; longer heads go 32 dimensions at a time, held in registers across all keys.
  float* o = st + 2;
  if (hd == 8) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    int u = 0;
    for (; u + 4 <= n; u += 4) {
      const int64_t row = static_cast<int64_t>(u) * stride;
      a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(scores + u), Load8<kF16>(a.v, row), a0);
      a1 = _mm256_fmadd_ps(_mm256_broadcast_ss(scores + u + 1), Load8<kF16>(a.v, row + stride), a1);
      a2 = _mm256_fmadd_ps(_mm256_broadcast_ss(scores + u + 2), Load8<kF16>(a.v, row + 2 * stride), a2);
      a3 = _mm256_fmadd_ps(_mm256_broadcast_ss(scores + u + 3), Load8<kF16>(a.v, row + 3 * stride), a3);
    }
    for (; u < n; ++u) {
      a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(scores + u), Load8<kF16>(a.v, int64_t{u} * stride), a0);
    }
    _mm256_storeu_ps(o, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  } else if (hd == 16) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    __m256 b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps();
    int u = 0;
    for (; u + 2 <= n; u += 2) {
      const int64_t row = static_cast<int64_t>(u) * stride;
      const __m256 e0 = _mm256_broadcast_ss(scores + u), e1 = _mm256_broadcast_ss(scores + u + 1);
      a0 = _mm256_fmadd_ps(e0, Load8<kF16>(a.v, row), a0);
      a1 = _mm256_fmadd_ps(e0, Load8<kF16>(a.v, row + 8), a1);
      b0 = _mm256_fmadd_ps(e1, Load8<kF16>(a.v, row + stride), b0);
      b1 = _mm256_fmadd_ps(e1, Load8<kF16>(a.v, row + stride + 8), b1);
    }
    if (u < n) {
      const int64_t row = static_cast<int64_t>(u) * stride;
      const __m256 e0 = _mm256_broadcast_ss(scores + u);
      a0 = _mm256_fmadd_ps(e0, Load8<kF16>(a.v, row), a0);
      a1 = _mm256_fmadd_ps(e0, Load8<kF16>(a.v, row + 8), a1);
    }
    _mm256_storeu_ps(o, _mm256_add_ps(a0, b0));
    _mm256_storeu_ps(o + 8, _mm256_add_ps(a1, b1));
  } else {
    for (int d0 = 0; d0 < hd; d0 += 32) {
      const int nv = std::min(4, (hd - d0) / 8);
      __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
      __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
      for (int u = 0; u < n; ++u) {
        const __m256 e = _mm256_broadcast_ss(scores + u);
        const int64_t row = static_cast<int64_t>(u) * stride + d0;
        acc0 = _mm256_fmadd_ps(e, Load8<kF16>(a.v, row), acc0);
        if (nv > 1) acc1 = _mm256_fmadd_ps(e, Load8<kF16>(a.v, row + 8), acc1);
        if (nv > 2) acc2 = _mm256_fmadd_ps(e, Load8<kF16>(a.v, row + 16), acc2);
        if (nv > 3) acc3 = _mm256_fmadd_ps(e, Load8<kF16>(a.v, row + 24), acc3);
      }
      _mm256_storeu_ps(o + d0, acc0);
      if (nv > 1) _mm256_storeu_ps(o + d0 + 8, acc1);
      if (nv > 2) _mm256_storeu_ps(o + d0 + 16, acc2);
      if (nv > 3) _mm256_storeu_ps(o + d0 + 24, acc3);
    }
  }
  st[0] = m;
  st[1] = static_cast<float>(s);
}

HeadPartialFn Pick() {
  const char* no_simd = std::getenv("DUALBLADE_NO_SIMD");
  if (no_simd != nullptr && std::strcmp(no_simd, "1") == 0) return HeadPartialScalar;
  return CpuHasAvx2Fma() ? HeadPartialAvx2 : HeadPartialScalar;
}

}  // namespace

void HeadPartialScalar(const HeadPartialArgs& a, float* st) {
  const int hd = a.head_dim;
  float m = kNegInf;
  for (int t = 0; t < a.n_keys; ++t) {
    const int64_t row = static_cast<int64_t>(t) * a.row_stride;
    float dot = 0.0f;
    for (int d = 0; d < hd; ++d) dot += a.q[d] * LoadScalar(a.k, row + d, a.type);
    a.scores[t] = dot * a.scale;
    m = std::max(m, a.scores[t]);
  }
  float* o = st + 2;
  std::fill(o, o + hd, 0.0f);
  double s = 0.0;
  for (int t = 0; t < a.n_keys; ++t) {
    const float e = std::exp(a.scores[t] - m);
    s += e;
    const int64_t row = static_cast<int64_t>(t) * a.row_stride;
    for (int d = 0; d < hd; ++d) o[d] += e * LoadScalar(a.v, row + d, a.type);
  }
  st[0] = m;
  st[1] = static_cast<float>(s);
}

DB_AVX2 void HeadPartialAvx2(const HeadPartialArgs& a, float* st) {
  // The vector loops step by 8 dimensions; other head sizes (none of the supported models have
  // one) take the reference.
  if (a.head_dim % 8 != 0) return HeadPartialScalar(a, st);
  if (a.type == KvElemType::kF16) return HeadPartialAvx2T<true>(a, st);
  return HeadPartialAvx2T<false>(a, st);
}

DB_AVX2 void ExpF32Avx2(const float* x, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, Exp8(_mm256_loadu_ps(x + i)));
  if (i < n) {
    alignas(32) float tail[8] = {};
    for (int64_t j = i; j < n; ++j) tail[j - i] = x[j];
    _mm256_store_ps(tail, Exp8(_mm256_load_ps(tail)));
    for (int64_t j = i; j < n; ++j) out[j] = tail[j - i];
  }
}

HeadPartialFn GetHeadPartial() {
  static const HeadPartialFn fn = Pick();
  return fn;
}

}  // namespace dualblade::compute
