#include "model/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "model/fp16.h"
#include "model/quant_blocks.h"

namespace dualblade {

void QuantizeRowQ8_0Ref(const float* x, void* dst, int64_t n) {
  DB_CHECK(n % kQK8_0 == 0);
  BlockQ8_0* y = static_cast<BlockQ8_0*>(dst);
  for (int64_t i = 0; i < n / kQK8_0; ++i, x += kQK8_0) {
    float amax = 0.0f;
    for (int j = 0; j < kQK8_0; ++j) amax = std::fmax(amax, std::fabs(x[j]));
    const float d = amax / 127;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = Fp32ToFp16(d);
    for (int j = 0; j < kQK8_0; ++j) y[i].qs[j] = static_cast<int8_t>(std::roundf(x[j] * id));
  }
}

void QuantizeRowQ4_0Ref(const float* x, void* dst, int64_t n) {
  DB_CHECK(n % kQK4_0 == 0);
  BlockQ4_0* y = static_cast<BlockQ4_0*>(dst);
  for (int64_t i = 0; i < n / kQK4_0; ++i, x += kQK4_0) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < kQK4_0; ++j) {
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    // The signed extreme maps to -8, so the full 16-level range is used.
    const float d = max / -8;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = Fp32ToFp16(d);
    for (int j = 0; j < kQK4_0 / 2; ++j) {
      // Truncation of x + 8.5 toward zero, as ggml's (int8_t) cast does.
      const int q0 = std::min(15, static_cast<int>(static_cast<int8_t>(x[j] * id + 8.5f)));
      const int q1 =
          std::min(15, static_cast<int>(static_cast<int8_t>(x[j + kQK4_0 / 2] * id + 8.5f)));
      y[i].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

void QuantizeRowQ8_0(const float* x, void* dst, int64_t n) {
  DB_CHECK(n % kQK8_0 == 0);
  BlockQ8_0* y = static_cast<BlockQ8_0*>(dst);
  for (int64_t i = 0; i < n / kQK8_0; ++i, x += kQK8_0) {
    float amax = 0.0f;
    for (int j = 0; j < kQK8_0; ++j) amax = std::fmax(amax, std::fabs(x[j]));
    y[i].d = Fp32ToFp16(amax / 127.0f);
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    for (int j = 0; j < kQK8_0; ++j) y[i].qs[j] = static_cast<int8_t>(std::nearbyintf(x[j] * id));
  }
}

void QuantizeRowQ8_K(const float* x, void* dst, int64_t n) {
  DB_CHECK(n % kQK_K == 0);
  BlockQ8_K* y = static_cast<BlockQ8_K*>(dst);
  for (int64_t i = 0; i < n / kQK_K; ++i, x += kQK_K) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < kQK_K; ++j) {
      if (std::fabs(x[j]) > amax) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    if (amax == 0.0f) {
      std::memset(&y[i], 0, sizeof(BlockQ8_K));
      continue;
    }
    const float iscale = -127.0f / max;
    for (int j = 0; j < kQK_K; ++j) {
      const int v = static_cast<int>(std::nearbyintf(iscale * x[j]));
      y[i].qs[j] = static_cast<int8_t>(std::min(127, v));
    }
    for (int g = 0; g < kQK_K / 16; ++g) {
      int sum = 0;
      for (int l = 0; l < 16; ++l) sum += y[i].qs[g * 16 + l];
      y[i].bsums[g] = static_cast<int16_t>(sum);
    }
    y[i].d = 1.0f / iscale;
  }
}

void QuantizeRowF16(const float* x, void* dst, int64_t n) {
  uint8_t* p = static_cast<uint8_t*>(dst);
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t h = Fp32ToFp16(x[i]);
    std::memcpy(p + 2 * i, &h, 2);
  }
}

void QuantizeRowBF16(const float* x, void* dst, int64_t n) {
  uint8_t* p = static_cast<uint8_t*>(dst);
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t h = Fp32ToBf16(x[i]);
    std::memcpy(p + 2 * i, &h, 2);
  }
}

void QuantizeRowF32(const float* x, void* dst, int64_t n) {
  std::memcpy(dst, x, static_cast<size_t>(n) * sizeof(float));
}

GgmlType VecDotType(GgmlType weight) {
  switch (weight) {
    case GgmlType::kQ4_0:
    case GgmlType::kQ8_0: return GgmlType::kQ8_0;
    case GgmlType::kQ4_K:
    case GgmlType::kQ5_K:
    case GgmlType::kQ6_K: return GgmlType::kQ8_K;
    case GgmlType::kF16: return GgmlType::kF16;
    case GgmlType::kBF16: return GgmlType::kBF16;
    case GgmlType::kF32: return GgmlType::kF32;
    default: DB_CHECK_MSG(false, "VecDotType: unsupported weight type");
  }
  return GgmlType::kF32;
}

void QuantizeWeightRow(GgmlType type, const float* x, void* dst, int64_t n) {
  switch (type) {
    case GgmlType::kQ8_0: return QuantizeRowQ8_0Ref(x, dst, n);
    case GgmlType::kQ4_0: return QuantizeRowQ4_0Ref(x, dst, n);
    case GgmlType::kQ4_K: return QuantizeRowQ4_KRef(x, dst, n);
    case GgmlType::kQ5_K: return QuantizeRowQ5_KRef(x, dst, n);
    case GgmlType::kQ6_K: return QuantizeRowQ6_KRef(x, dst, n);
    case GgmlType::kF16: return QuantizeRowF16(x, dst, n);
    case GgmlType::kBF16: return QuantizeRowBF16(x, dst, n);
    case GgmlType::kF32: return QuantizeRowF32(x, dst, n);
    default: DB_CHECK_MSG(false, "QuantizeWeightRow: unsupported weight type");
  }
}

void QuantizeActivationRow(GgmlType type, const float* x, void* dst, int64_t n) {
  switch (type) {
    case GgmlType::kQ8_0: return QuantizeRowQ8_0(x, dst, n);
    case GgmlType::kQ8_K: return QuantizeRowQ8_K(x, dst, n);
    case GgmlType::kF16: return QuantizeRowF16(x, dst, n);
    case GgmlType::kBF16: return QuantizeRowBF16(x, dst, n);
    case GgmlType::kF32: return QuantizeRowF32(x, dst, n);
    default: DB_CHECK_MSG(false, "QuantizeActivationRow: not an activation type");
  }
}

}  // namespace dualblade
