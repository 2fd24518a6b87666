// AVX2/F16C row dequantization for the GEMM path (weights dequantized in tiles for prefill).
// Bit-identical to the scalar reference in dequantize.cc: every output is the same one or two
// float operations on the same operands (the build is ISO C++, so no multiply-add contraction).
#include <immintrin.h>

#include <cstring>

#include "model/dequantize.h"
#include "model/quant_blocks.h"

#define DB_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace dualblade {
namespace {

// 8 unsigned bytes at p -> 8 int32 lanes.
DB_AVX2 inline __m256i U8x8(const uint8_t* p) {
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}
DB_AVX2 inline __m256i I8x8(const int8_t* p) {
  return _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}

}  // namespace

DB_AVX2 void DequantizeRowF16Avx2(const void* src, float* dst, int64_t n) {
  const uint8_t* p = static_cast<const uint8_t*>(src);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(dst + i,
                     _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2 * i))));
  }
  if (i < n) DequantizeRowF16(p + 2 * i, dst + i, n - i);
}

DB_AVX2 void DequantizeRowQ8_0Avx2(const void* src, float* dst, int64_t n) {
  DB_CHECK(n % kQK8_0 == 0);
  const BlockQ8_0* b = static_cast<const BlockQ8_0*>(src);
  for (int64_t i = 0; i < n / kQK8_0; ++i, dst += kQK8_0) {
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(b[i].d));
    for (int j = 0; j < kQK8_0; j += 8) {
      _mm256_storeu_ps(dst + j, _mm256_mul_ps(_mm256_cvtepi32_ps(I8x8(b[i].qs + j)), d));
    }
  }
}

DB_AVX2 void DequantizeRowQ4_0Avx2(const void* src, float* dst, int64_t n) {
  DB_CHECK(n % kQK4_0 == 0);
  const BlockQ4_0* b = static_cast<const BlockQ4_0*>(src);
  const __m256i low4 = _mm256_set1_epi32(0xF), eight = _mm256_set1_epi32(8);
  for (int64_t i = 0; i < n / kQK4_0; ++i, dst += kQK4_0) {
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(b[i].d));
    for (int j = 0; j < kQK4_0 / 2; j += 8) {
      const __m256i q = U8x8(b[i].qs + j);
      const __m256i lo = _mm256_sub_epi32(_mm256_and_si256(q, low4), eight);
      const __m256i hi = _mm256_sub_epi32(_mm256_srli_epi32(q, 4), eight);
      _mm256_storeu_ps(dst + j, _mm256_mul_ps(_mm256_cvtepi32_ps(lo), d));
      _mm256_storeu_ps(dst + j + kQK4_0 / 2, _mm256_mul_ps(_mm256_cvtepi32_ps(hi), d));
    }
  }
}

namespace {
template <bool kFiveBit, typename Block>
DB_AVX2 inline void DequantK4K5Avx2(const void* src, float* dst, int64_t n) {
  DB_CHECK(n % kQK_K == 0);
  const Block* b = static_cast<const Block*>(src);
  const __m256i low4 = _mm256_set1_epi32(0xF);
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const float d = _cvtsh_ss(b[i].d), dmin = _cvtsh_ss(b[i].dmin);
    for (int s = 0; s < 8; ++s, dst += 32) {
      uint8_t sc, m;
      UnpackScaleMinK4(s, b[i].scales, &sc, &m);
      const __m256 ds = _mm256_set1_ps(d * sc), ms = _mm256_set1_ps(dmin * m);
      const uint8_t* q = b[i].qs + (s / 2) * 32;
      for (int l = 0; l < 32; l += 8) {
        __m256i v = U8x8(q + l);
        v = (s & 1) ? _mm256_srli_epi32(v, 4) : _mm256_and_si256(v, low4);
        if constexpr (kFiveBit) {
          const __m256i h = _mm256_and_si256(_mm256_srli_epi32(U8x8(b[i].qh + l), s),
                                             _mm256_set1_epi32(1));
          v = _mm256_add_epi32(v, _mm256_slli_epi32(h, 4));
        }
        _mm256_storeu_ps(dst + l, _mm256_sub_ps(_mm256_mul_ps(ds, _mm256_cvtepi32_ps(v)), ms));
      }
    }
  }
}
}  // namespace

DB_AVX2 void DequantizeRowQ4_KAvx2(const void* src, float* dst, int64_t n) {
  DequantK4K5Avx2<false, BlockQ4_K>(src, dst, n);
}

DB_AVX2 void DequantizeRowQ5_KAvx2(const void* src, float* dst, int64_t n) {
  DequantK4K5Avx2<true, BlockQ5_K>(src, dst, n);
}

DB_AVX2 void DequantizeRowQ6_KAvx2(const void* src, float* dst, int64_t n) {
  DB_CHECK(n % kQK_K == 0);
  const BlockQ6_K* b = static_cast<const BlockQ6_K*>(src);
  const __m256i low4 = _mm256_set1_epi32(0xF), three = _mm256_set1_epi32(3);
  const __m256i k32 = _mm256_set1_epi32(32);
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const float d = _cvtsh_ss(b[i].d);
    for (int half = 0; half < 2; ++half, dst += 128) {
      const uint8_t* ql = b[i].ql + 64 * half;
      const uint8_t* qh = b[i].qh + 32 * half;
      const int8_t* sc = b[i].scales + 8 * half;
      for (int l = 0; l < 32; l += 8) {
        const int is = l / 16;
        const __m256i l0 = U8x8(ql + l), l1 = U8x8(ql + l + 32), h = U8x8(qh + l);
        const __m256i q[4] = {
            _mm256_or_si256(_mm256_and_si256(l0, low4),
                            _mm256_slli_epi32(_mm256_and_si256(h, three), 4)),
            _mm256_or_si256(_mm256_and_si256(l1, low4),
                            _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(h, 2), three), 4)),
            _mm256_or_si256(_mm256_srli_epi32(l0, 4),
                            _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(h, 4), three), 4)),
            _mm256_or_si256(_mm256_srli_epi32(l1, 4),
                            _mm256_slli_epi32(_mm256_srli_epi32(h, 6), 4))};
        for (int k = 0; k < 4; ++k) {
          const __m256 scale = _mm256_set1_ps(d * sc[is + 2 * k]);
          const __m256 v = _mm256_cvtepi32_ps(_mm256_sub_epi32(q[k], k32));
          _mm256_storeu_ps(dst + l + 32 * k, _mm256_mul_ps(scale, v));
        }
      }
    }
  }
}

}  // namespace dualblade
