// Scalar reference dot kernels: integer dot products per block, scaled and summed in float in
// block order (the same arithmetic as ggml's generic kernels, summed without their 8-lane split).
#include <cstring>

#include "model/fp16.h"
#include "model/quant_blocks.h"
#include "model/vec_dot.h"

namespace dualblade {

float VecDotF32Scalar(int64_t n, const void* w, const void* x) {
  const float* a = static_cast<const float*>(w);
  const float* b = static_cast<const float*>(x);
  double sum = 0;  // ggml's scalar f32 dot also accumulates in double (ggml_float)
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(a[i]) * b[i];
  return static_cast<float>(sum);
}

namespace {
template <float (*kConv)(uint16_t)>
float Dot16(int64_t n, const void* w, const void* x) {
  const uint8_t* a = static_cast<const uint8_t*>(w);
  const uint8_t* b = static_cast<const uint8_t*>(x);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    uint16_t ha, hb;
    std::memcpy(&ha, a + 2 * i, 2);
    std::memcpy(&hb, b + 2 * i, 2);
    sum += static_cast<double>(kConv(ha)) * kConv(hb);
  }
  return static_cast<float>(sum);
}
}  // namespace

float VecDotF16Scalar(int64_t n, const void* w, const void* x) { return Dot16<Fp16ToFp32>(n, w, x); }
float VecDotBF16Scalar(int64_t n, const void* w, const void* x) { return Dot16<Bf16ToFp32>(n, w, x); }

float VecDotQ8_0Scalar(int64_t n, const void* w, const void* x) {
  const BlockQ8_0* a = static_cast<const BlockQ8_0*>(w);
  const BlockQ8_0* b = static_cast<const BlockQ8_0*>(x);
  float sum = 0;
  for (int64_t i = 0; i < n / kQK8_0; ++i) {
    int sumi = 0;
    for (int j = 0; j < kQK8_0; ++j) sumi += a[i].qs[j] * b[i].qs[j];
    sum += sumi * (Fp16ToFp32(a[i].d) * Fp16ToFp32(b[i].d));
  }
  return sum;
}

float VecDotQ4_0Scalar(int64_t n, const void* w, const void* x) {
  const BlockQ4_0* a = static_cast<const BlockQ4_0*>(w);
  const BlockQ8_0* b = static_cast<const BlockQ8_0*>(x);
  float sum = 0;
  for (int64_t i = 0; i < n / kQK4_0; ++i) {
    int sumi = 0;
    for (int j = 0; j < kQK4_0 / 2; ++j) {
      sumi += ((a[i].qs[j] & 0x0F) - 8) * b[i].qs[j];
      sumi += ((a[i].qs[j] >> 4) - 8) * b[i].qs[j + kQK4_0 / 2];
    }
    sum += sumi * (Fp16ToFp32(a[i].d) * Fp16ToFp32(b[i].d));
  }
  return sum;
}

// Q4_K / Q5_K: per super-block, sum over sub-blocks s of sc[s] * dot(q, q8) (scaled by d) minus
// sum of m[s] * sum(q8 of s) (scaled by dmin); the q8 sums come precomputed in bsums.
namespace {
template <bool kFiveBit, typename Block>
float DotK4K5(int64_t n, const void* w, const void* x) {
  const Block* a = static_cast<const Block*>(w);
  const BlockQ8_K* b = static_cast<const BlockQ8_K*>(x);
  float sum = 0;
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const uint8_t* q = a[i].qs;
    const int8_t* q8 = b[i].qs;
    int32_t sum_sc = 0, sum_m = 0;
    for (int s = 0; s < 8; ++s) {
      uint8_t sc, m;
      UnpackScaleMinK4(s, a[i].scales, &sc, &m);
      const uint8_t* qs = q + (s / 2) * 32;
      const int shift = (s & 1) * 4;
      int32_t dot = 0;
      for (int l = 0; l < 32; ++l) {
        int v = (qs[l] >> shift) & 0xF;
        if constexpr (kFiveBit) v += ((a[i].qh[l] >> s) & 1) << 4;
        dot += v * q8[s * 32 + l];
      }
      sum_sc += sc * dot;
      sum_m += m * (b[i].bsums[2 * s] + b[i].bsums[2 * s + 1]);
    }
    sum += Fp16ToFp32(a[i].d) * b[i].d * sum_sc - Fp16ToFp32(a[i].dmin) * b[i].d * sum_m;
  }
  return sum;
}
}  // namespace

float VecDotQ4_KScalar(int64_t n, const void* w, const void* x) {
  return DotK4K5<false, BlockQ4_K>(n, w, x);
}
float VecDotQ5_KScalar(int64_t n, const void* w, const void* x) {
  return DotK4K5<true, BlockQ5_K>(n, w, x);
}

float VecDotQ6_KScalar(int64_t n, const void* w, const void* x) {
  const BlockQ6_K* a = static_cast<const BlockQ6_K*>(w);
  const BlockQ8_K* b = static_cast<const BlockQ8_K*>(x);
  float sum = 0;
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    int8_t q[kQK_K];
    const uint8_t* ql = a[i].ql;
    const uint8_t* qh = a[i].qh;
    for (int half = 0; half < 2; ++half) {
      int8_t* o = q + half * 128;
      for (int l = 0; l < 32; ++l) {
        o[l] = static_cast<int8_t>(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
        o[l + 32] = static_cast<int8_t>(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
        o[l + 64] = static_cast<int8_t>(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
        o[l + 96] = static_cast<int8_t>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
      }
      ql += 64;
      qh += 32;
    }
    int32_t sumi = 0;
    for (int g = 0; g < 16; ++g) {
      int32_t dot = 0;
      for (int l = 0; l < 16; ++l) dot += q[g * 16 + l] * b[i].qs[g * 16 + l];
      sumi += a[i].scales[g] * dot;
    }
    sum += Fp16ToFp32(a[i].d) * b[i].d * sumi;
  }
  return sum;
}

}  // namespace dualblade
