// AVX2 + FMA + F16C dot kernels, compiled for that ISA function by function (target attributes)
// so the rest of the binary stays baseline x86-64; vec_dot.cc calls them only when the CPU has
// the features. Integer work (int8 x int8 products, scale multiplications) is exact; floats are
// accumulated in 8 lanes and summed at the end.
#include <immintrin.h>

#include <cstring>

#include "model/fp16.h"
#include "model/quant_blocks.h"
#include "model/vec_dot.h"

#define DB_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace dualblade {
namespace {

DB_AVX2 inline float Hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

DB_AVX2 inline float Half(uint16_t h) { return _cvtsh_ss(h); }

// Signed int8 x signed int8 over 32 lanes -> 8 int32 partial sums. maddubs wants an unsigned
// left operand, so move a's sign onto b; |a| <= 128 and |b| <= 127 keep the pairwise int16 sums
// below saturation.
DB_AVX2 inline __m256i DotI8(__m256i a, __m256i b) {
  const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a));
  return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

DB_AVX2 inline __m256i Load32(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}

}  // namespace

bool CpuHasAvx2Fma() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("f16c");
}

DB_AVX2 float VecDotF32Avx2(int64_t n, const void* w, const void* x) {
  const float* a = static_cast<const float*>(w);
  const float* b = static_cast<const float*>(x);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), acc2);
    acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), acc3);
  }
  for (; i + 8 <= n; i += 8) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
  }
  float sum = Hsum(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

namespace {
DB_AVX2 inline __m256 LoadF16x8(const uint8_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
DB_AVX2 inline __m256 LoadBF16x8(const uint8_t* p) {
  const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

template <__m256 (*kLoad)(const uint8_t*), float (*kConv)(uint16_t)>
DB_AVX2 inline float Dot16Avx2(int64_t n, const void* w, const void* x) {
  const uint8_t* a = static_cast<const uint8_t*>(w);
  const uint8_t* b = static_cast<const uint8_t*>(x);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    acc0 = _mm256_fmadd_ps(kLoad(a + 2 * i), kLoad(b + 2 * i), acc0);
    acc1 = _mm256_fmadd_ps(kLoad(a + 2 * i + 16), kLoad(b + 2 * i + 16), acc1);
    acc2 = _mm256_fmadd_ps(kLoad(a + 2 * i + 32), kLoad(b + 2 * i + 32), acc2);
    acc3 = _mm256_fmadd_ps(kLoad(a + 2 * i + 48), kLoad(b + 2 * i + 48), acc3);
  }
  for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(kLoad(a + 2 * i), kLoad(b + 2 * i), acc0);
  float sum = Hsum(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
  for (; i < n; ++i) {
    uint16_t ha, hb;
    std::memcpy(&ha, a + 2 * i, 2);
    std::memcpy(&hb, b + 2 * i, 2);
    sum += kConv(ha) * kConv(hb);
  }
  return sum;
}
}  // namespace

DB_AVX2 float VecDotF16Avx2(int64_t n, const void* w, const void* x) {
  return Dot16Avx2<LoadF16x8, Fp16ToFp32>(n, w, x);
}

DB_AVX2 float VecDotBF16Avx2(int64_t n, const void* w, const void* x) {
  return Dot16Avx2<LoadBF16x8, Bf16ToFp32>(n, w, x);
}

DB_AVX2 float VecDotQ8_0Avx2(int64_t n, const void* w, const void* x) {
  const BlockQ8_0* a = static_cast<const BlockQ8_0*>(w);
  const BlockQ8_0* b = static_cast<const BlockQ8_0*>(x);
  // Two accumulators, so consecutive blocks' multiply-adds do not wait on each other.
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  const int64_t nb = n / kQK8_0;
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    const __m256 d0 = _mm256_set1_ps(Half(a[i].d) * Half(b[i].d));
    const __m256 d1 = _mm256_set1_ps(Half(a[i + 1].d) * Half(b[i + 1].d));
    const __m256i p0 = DotI8(Load32(a[i].qs), Load32(b[i].qs));
    const __m256i p1 = DotI8(Load32(a[i + 1].qs), Load32(b[i + 1].qs));
    acc0 = _mm256_fmadd_ps(d0, _mm256_cvtepi32_ps(p0), acc0);
    acc1 = _mm256_fmadd_ps(d1, _mm256_cvtepi32_ps(p1), acc1);
  }
  for (; i < nb; ++i) {
    const __m256 d = _mm256_set1_ps(Half(a[i].d) * Half(b[i].d));
    acc0 = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(DotI8(Load32(a[i].qs), Load32(b[i].qs))), acc0);
  }
  return Hsum(_mm256_add_ps(acc0, acc1));
}

namespace {
// The 32 weights of a Q4_0 block as signed bytes (q - 8), element order.
DB_AVX2 inline __m256i UnpackQ4_0(const BlockQ4_0& blk) {
  const __m128i low4 = _mm_set1_epi8(0x0F);
  const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk.qs));
  const __m128i lo = _mm_and_si128(packed, low4);                     // elements 0..15
  const __m128i hi = _mm_and_si128(_mm_srli_epi16(packed, 4), low4);  // elements 16..31
  return _mm256_sub_epi8(_mm256_set_m128i(hi, lo), _mm256_set1_epi8(8));
}
}  // namespace

DB_AVX2 float VecDotQ4_0Avx2(int64_t n, const void* w, const void* x) {
  const BlockQ4_0* a = static_cast<const BlockQ4_0*>(w);
  const BlockQ8_0* b = static_cast<const BlockQ8_0*>(x);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  const int64_t nb = n / kQK4_0;
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    const __m256 d0 = _mm256_set1_ps(Half(a[i].d) * Half(b[i].d));
    const __m256 d1 = _mm256_set1_ps(Half(a[i + 1].d) * Half(b[i + 1].d));
    const __m256i p0 = DotI8(UnpackQ4_0(a[i]), Load32(b[i].qs));
    const __m256i p1 = DotI8(UnpackQ4_0(a[i + 1]), Load32(b[i + 1].qs));
    acc0 = _mm256_fmadd_ps(d0, _mm256_cvtepi32_ps(p0), acc0);
    acc1 = _mm256_fmadd_ps(d1, _mm256_cvtepi32_ps(p1), acc1);
  }
  for (; i < nb; ++i) {
    const __m256 d = _mm256_set1_ps(Half(a[i].d) * Half(b[i].d));
    acc0 = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(DotI8(UnpackQ4_0(a[i]), Load32(b[i].qs))), acc0);
  }
  return Hsum(_mm256_add_ps(acc0, acc1));
}

namespace {
// The 8 six-bit scales and 8 six-bit mins of a Q4_K/Q5_K block as 16 bytes, scales in bytes
// 0..7 and mins in 8..15 (UnpackScaleMinK4 for all j at once, on 32-bit words).
DB_AVX2 inline __m128i UnpackScalesMinsK4(const uint8_t* packed) {
  constexpr uint32_t kLow6 = 0x3f3f3f3f, kLow4 = 0x0f0f0f0f, kLow2 = 0x03030303;
  uint32_t u[4];
  std::memcpy(u, packed, 12);
  const uint32_t mins_lo = u[1] & kLow6;
  u[3] = ((u[2] >> 4) & kLow4) | (((u[1] >> 6) & kLow2) << 4);  // mins 4..7
  u[1] = (u[2] & kLow4) | (((u[0] >> 6) & kLow2) << 4);         // scales 4..7
  u[2] = mins_lo;                                                // mins 0..3
  u[0] &= kLow6;                                                 // scales 0..3
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(u));
}

// Byte shuffle that broadcasts 16-bit lane i of each 128-bit half to all its lanes.
DB_AVX2 inline __m256i Broadcast16Shuffle(int i) {
  const char lo = static_cast<char>(2 * i), hi = static_cast<char>(2 * i + 1);
  return _mm256_setr_epi8(lo, hi, lo, hi, lo, hi, lo, hi, lo, hi, lo, hi, lo, hi, lo, hi,
                          lo, hi, lo, hi, lo, hi, lo, hi, lo, hi, lo, hi, lo, hi, lo, hi);
}

// Shared by Q4_K and Q5_K: `kFiveBit` adds the fifth bit from qh. Per block: the integer sum
// of sc[s] * q * q8 over the block (maddubs, then madd with the 16-bit scales, all exact), and
// the mins term sum_s m[s] * (bsum[2s] + bsum[2s+1]) with one madd.
template <bool kFiveBit, typename Block>
DB_AVX2 inline float DotK4K5Avx2(int64_t n, const void* w, const void* x) {
  const Block* a = static_cast<const Block*>(w);
  const BlockQ8_K* b = static_cast<const BlockQ8_K*>(x);
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  __m256i shuffle[8];
  for (int s = 0; s < 8; ++s) shuffle[s] = Broadcast16Shuffle(s);
  __m256 acc = _mm256_setzero_ps();
  __m128 acc_m = _mm_setzero_ps();
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const float dy = b[i].d;
    // 16-bit scales in both halves (bytes 0..7 widened), 16-bit mins in the upper half.
    const __m256i sm16 = _mm256_cvtepu8_epi16(UnpackScalesMinsK4(a[i].scales));
    const __m128i bsums_lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[i].bsums));
    const __m128i bsums_hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[i].bsums + 8));
    const __m128i pair_sums = _mm_hadd_epi16(bsums_lo, bsums_hi);  // |.| <= 2 * 16 * 128
    const __m128i mins = _mm_madd_epi16(_mm256_extracti128_si256(sm16, 1), pair_sums);
    acc_m = _mm_fmadd_ps(_mm_set1_ps(Half(a[i].dmin) * dy), _mm_cvtepi32_ps(mins), acc_m);
    const __m128i sc128 = _mm256_castsi256_si128(sm16);
    const __m256i scales = _mm256_set_m128i(sc128, sc128);
    __m256i qh;
    if constexpr (kFiveBit) qh = Load32(a[i].qh);
    __m256i sumi = _mm256_setzero_si256();
    for (int j = 0; j < 4; ++j) {  // 64 elements: sub-blocks 2j (low nibbles), 2j+1 (high)
      const __m256i q4 = Load32(a[i].qs + 32 * j);
      __m256i lo = _mm256_and_si256(q4, low4);
      __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q4, 4), low4);
      if constexpr (kFiveBit) {
        // Bit 2j of qh -> 16 in lo, bit 2j+1 -> 16 in hi.
        const __m256i sixteen = _mm256_set1_epi8(16);
        lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(qh, 2 * j), 4), sixteen));
        hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(qh, 2 * j + 1), 4), sixteen));
      }
      const __m256i p_lo = _mm256_maddubs_epi16(lo, Load32(b[i].qs + 64 * j));
      const __m256i p_hi = _mm256_maddubs_epi16(hi, Load32(b[i].qs + 64 * j + 32));
      const __m256i s_lo = _mm256_madd_epi16(_mm256_shuffle_epi8(scales, shuffle[2 * j]), p_lo);
      const __m256i s_hi = _mm256_madd_epi16(_mm256_shuffle_epi8(scales, shuffle[2 * j + 1]), p_hi);
      sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(s_lo, s_hi));
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(Half(a[i].d) * dy), _mm256_cvtepi32_ps(sumi), acc);
  }
  acc_m = _mm_add_ps(acc_m, _mm_movehl_ps(acc_m, acc_m));
  acc_m = _mm_add_ss(acc_m, _mm_movehdup_ps(acc_m));
  return Hsum(acc) - _mm_cvtss_f32(acc_m);
}
}  // namespace

DB_AVX2 float VecDotQ4_KAvx2(int64_t n, const void* w, const void* x) {
  return DotK4K5Avx2<false, BlockQ4_K>(n, w, x);
}

DB_AVX2 float VecDotQ5_KAvx2(int64_t n, const void* w, const void* x) {
  return DotK4K5Avx2<true, BlockQ5_K>(n, w, x);
}

// Q6_K: q in 0..63 (unsigned, so maddubs applies directly) and the -32 offset folded in through
// the q8 group sums: sum sc_g * (q - 32) * q8 = sum sc_g * q * q8 - 32 * sum sc_g * bsum_g,
// the second term one madd of the 16 scales with the 16 bsums.
DB_AVX2 float VecDotQ6_KAvx2(int64_t n, const void* w, const void* x) {
  const BlockQ6_K* a = static_cast<const BlockQ6_K*>(w);
  const BlockQ8_K* b = static_cast<const BlockQ8_K*>(x);
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  const __m256i three = _mm256_set1_epi8(3);
  // Scale bytes 2i (lower 16 bytes) and 2i+1 (upper 16 bytes) of a group pair, widened after.
  __m128i pair_shuffle[8];
  for (int i = 0; i < 8; ++i) {
    const char lo = static_cast<char>(2 * i), hi = static_cast<char>(2 * i + 1);
    pair_shuffle[i] = _mm_setr_epi8(lo, lo, lo, lo, lo, lo, lo, lo, hi, hi, hi, hi, hi, hi, hi, hi);
  }
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const __m128i sc8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a[i].scales));
    const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
    const __m256i bsums = Load32(b[i].bsums);
    // 32 * sum_g sc_g * bsum_g, as 8 int32 lanes subtracted from sumi's.
    __m256i sumi = _mm256_sub_epi32(_mm256_setzero_si256(),
                                    _mm256_slli_epi32(_mm256_madd_epi16(sc16, bsums), 5));
    for (int half = 0; half < 2; ++half) {
      const __m256i ql0 = Load32(a[i].ql + 64 * half);
      const __m256i ql1 = Load32(a[i].ql + 64 * half + 32);
      const __m256i qh = Load32(a[i].qh + 32 * half);
      const __m256i hb0 = _mm256_slli_epi16(_mm256_and_si256(qh, three), 4);
      const __m256i hb1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), three), 4);
      const __m256i hb2 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), three), 4);
      const __m256i hb3 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), three), 4);
      const __m256i q[4] = {
          _mm256_or_si256(_mm256_and_si256(ql0, low4), hb0),
          _mm256_or_si256(_mm256_and_si256(ql1, low4), hb1),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4), hb2),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4), hb3)};
      for (int k = 0; k < 4; ++k) {  // 32 elements = groups g, g+1 (g = half * 8 + 2k)
        const __m256i p = _mm256_maddubs_epi16(q[k], Load32(b[i].qs + half * 128 + 32 * k));
        const __m256i s = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc8, pair_shuffle[half * 4 + k]));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(s, p));
      }
    }
    const float d = Half(a[i].d) * b[i].d;
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
  }
  return Hsum(acc);
}

}  // namespace dualblade
