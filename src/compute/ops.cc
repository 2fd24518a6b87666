#include "compute/ops.h"

#include <immintrin.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "model/fp16.h"
#include "model/vec_dot.h"

namespace dualblade::compute {
namespace {

// The model library's test: its AVX2 kernels are built for AVX2 + FMA + F16C.
const bool kHasAvx2Fma = CpuHasAvx2Fma();
const bool kHasF16c = __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx");

__attribute__((target("avx2,fma"))) void AxpyAvx2(float a, const float* x, float* y, int64_t n) {
  const __m256 va = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  }
  for (; i < n; ++i) y[i] += a * x[i];
}

__attribute__((target("avx,f16c"))) void Fp16ToFp32RowF16c(const uint16_t* src, float* dst,
                                                           int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
  }
  for (; i < n; ++i) dst[i] = Fp16ToFp32(src[i]);
}

__attribute__((target("avx,f16c"))) void Fp32ToFp16RowF16c(const float* src, uint16_t* dst,
                                                           int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), h);
  }
  for (; i < n; ++i) dst[i] = Fp32ToFp16(src[i]);
}

}  // namespace

void RmsNorm(const float* x, const float* w, int64_t n, float eps, float* out) {
  // ggml_compute_forward_rms_norm_f32 sums squares in double, then scales in float.
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i] * x[i]);
  const float mean = static_cast<float>(sum / static_cast<double>(n));
  const float scale = 1.0f / std::sqrt(mean + eps);
  if (w != nullptr) {
    for (int64_t i = 0; i < n; ++i) out[i] = (x[i] * scale) * w[i];
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = x[i] * scale;
  }
}

void SwiGlu(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = (g / (1.0f + std::exp(-g))) * up[i];
  }
}

void Softmax(float* x, int64_t n) {
  float max = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) max = std::max(max, x[i]);
  if (max == -std::numeric_limits<float>::infinity()) {
    for (int64_t i = 0; i < n; ++i) x[i] = 0.0f;
    return;
  }
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - max);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void AddInPlace(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

// The model library's F32 row kernels (one AVX2 dot in the tree, with its scalar reference).
float DotF32(const float* a, const float* b, int64_t n) {
  if (kHasAvx2Fma) return VecDotF32Avx2(n, a, b);
  return VecDotF32Scalar(n, a, b);
}

void AxpyF32(float a, const float* x, float* y, int64_t n) {
  if (kHasAvx2Fma) return AxpyAvx2(a, x, y, n);
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void ScaleF32(float a, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] *= a;
}

// Scalar conversions: model/fp16.h's, bit-exact with ggml's.
float Fp16ToFp32(uint16_t h) { return ::dualblade::Fp16ToFp32(h); }
uint16_t Fp32ToFp16(float f) { return ::dualblade::Fp32ToFp16(f); }

void Fp16ToFp32Row(const uint16_t* src, float* dst, int64_t n) {
  if (kHasF16c) return Fp16ToFp32RowF16c(src, dst, n);
  for (int64_t i = 0; i < n; ++i) dst[i] = Fp16ToFp32(src[i]);
}

void Fp32ToFp16Row(const float* src, uint16_t* dst, int64_t n) {
  if (kHasF16c) return Fp32ToFp16RowF16c(src, dst, n);
  for (int64_t i = 0; i < n; ++i) dst[i] = Fp32ToFp16(src[i]);
}

}  // namespace dualblade::compute
