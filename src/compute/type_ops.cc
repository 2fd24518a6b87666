#include "compute/type_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "compute/ops.h"
#include "model/quant_blocks.h"

namespace dualblade::compute {
namespace {

// Dots of 16-bit float rows convert blocks of this many elements to F32 on the stack.
constexpr int64_t kConvertBlock = 256;

void F32ToFloat(const void* row, float* out, int64_t n) {
  std::memcpy(out, row, static_cast<size_t>(n) * sizeof(float));
}
void F32FromFloat(const float* x, void* out, int64_t n) {
  std::memcpy(out, x, static_cast<size_t>(n) * sizeof(float));
}
float F32Dot(int64_t n, const void* w, const void* x) {
  return DotF32(static_cast<const float*>(w), static_cast<const float*>(x), n);
}

void F16ToFloat(const void* row, float* out, int64_t n) {
  Fp16ToFp32Row(static_cast<const uint16_t*>(row), out, n);
}
void F16FromFloat(const float* x, void* out, int64_t n) {
  Fp32ToFp16Row(x, static_cast<uint16_t*>(out), n);
}

// bf16 is the top half of an f32; rounding to nearest even as ggml_compute_fp32_to_bf16 does.
void Bf16ToFloat(const void* row, float* out, int64_t n) {
  const uint16_t* h = static_cast<const uint16_t*>(row);
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t bits = static_cast<uint32_t>(h[i]) << 16;
    std::memcpy(&out[i], &bits, 4);
  }
}
void Bf16FromFloat(const float* x, void* out, int64_t n) {
  uint16_t* h = static_cast<uint16_t*>(out);
  for (int64_t i = 0; i < n; ++i) {
    uint32_t u;
    std::memcpy(&u, &x[i], 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
      h[i] = static_cast<uint16_t>((u >> 16) | 64);  // NaN stays a quiet NaN
    } else {
      h[i] = static_cast<uint16_t>((u + (0x7fffu + ((u >> 16) & 1u))) >> 16);
    }
  }
}

template <void (*kToFloat)(const void*, float*, int64_t)>
float Half16Dot(int64_t n, const void* w, const void* x) {
  float wf[kConvertBlock], xf[kConvertBlock];
  const uint16_t* wh = static_cast<const uint16_t*>(w);
  const uint16_t* xh = static_cast<const uint16_t*>(x);
  float sum = 0.0f;
  for (int64_t i = 0; i < n; i += kConvertBlock) {
    const int64_t len = n - i < kConvertBlock ? n - i : kConvertBlock;
    kToFloat(wh + i, wf, len);
    kToFloat(xh + i, xf, len);
    sum += DotF32(wf, xf, len);
  }
  return sum;
}

// ---- Q8_0 and Q4_0 (ggml-common.h layouts) ------------------------------------------------------
// Activations are rounded to Q8_0 the way ggml's x86 quantize_row_q8_0 does it (AVX path, which
// is what llama.cpp runs on these machines): scale by 127/amax and round half to even; the block
// scale is fp16(amax/127).

void Q8_0FromFloat(const float* x, void* out, int64_t n) {
  BlockQ8_0* y = static_cast<BlockQ8_0*>(out);
  for (int64_t b = 0; b < n / kQK8_0; ++b) {
    const float* xb = x + b * kQK8_0;
    float amax = 0.0f;
    for (int j = 0; j < kQK8_0; ++j) amax = std::max(amax, std::fabs(xb[j]));
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    y[b].d = Fp32ToFp16(d);
    for (int j = 0; j < kQK8_0; ++j) {
      y[b].qs[j] = static_cast<int8_t>(std::nearbyint(xb[j] * id));  // ties to even
    }
  }
}

void Q8_0ToFloat(const void* row, float* out, int64_t n) {
  const BlockQ8_0* x = static_cast<const BlockQ8_0*>(row);
  for (int64_t b = 0; b < n / kQK8_0; ++b) {
    const float d = Fp16ToFp32(x[b].d);
    for (int j = 0; j < kQK8_0; ++j) out[b * kQK8_0 + j] = x[b].qs[j] * d;
  }
}

void Q4_0ToFloat(const void* row, float* out, int64_t n) {
  const BlockQ4_0* x = static_cast<const BlockQ4_0*>(row);
  for (int64_t b = 0; b < n / kQK4_0; ++b) {
    const float d = Fp16ToFp32(x[b].d);
    float* o = out + b * kQK4_0;
    for (int j = 0; j < kQK4_0 / 2; ++j) {
      o[j] = static_cast<float>((x[b].qs[j] & 0x0F) - 8) * d;
      o[j + kQK4_0 / 2] = static_cast<float>((x[b].qs[j] >> 4) - 8) * d;
    }
  }
}

// Q4_0 rows for tests and mkmodel: scale so the extreme value maps to -8 (ggml's reference).
void Q4_0FromFloat(const float* x, void* out, int64_t n) {
  BlockQ4_0* y = static_cast<BlockQ4_0*>(out);
  for (int64_t b = 0; b < n / kQK4_0; ++b) {
    const float* xb = x + b * kQK4_0;
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < kQK4_0; ++j) {
      if (amax < std::fabs(xb[j])) {
        amax = std::fabs(xb[j]);
        max = xb[j];
      }
    }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = Fp32ToFp16(d);
    for (int j = 0; j < kQK4_0 / 2; ++j) {
      const int q0 = std::min(15, static_cast<int>(xb[j] * id + 8.5f));
      const int q1 = std::min(15, static_cast<int>(xb[j + kQK4_0 / 2] * id + 8.5f));
      y[b].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

// Integer dot per block, then sum of d_w * d_x * isum in float, as ggml's vec_dot kernels.
float Q8_0Dot(int64_t n, const void* w, const void* xq) {
  const BlockQ8_0* a = static_cast<const BlockQ8_0*>(w);
  const BlockQ8_0* b = static_cast<const BlockQ8_0*>(xq);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / kQK8_0; ++i) {
    int isum = 0;
    for (int j = 0; j < kQK8_0; ++j) isum += a[i].qs[j] * b[i].qs[j];
    sum += static_cast<float>(isum) * (Fp16ToFp32(a[i].d) * Fp16ToFp32(b[i].d));
  }
  return sum;
}

float Q4_0Dot(int64_t n, const void* w, const void* xq) {
  const BlockQ4_0* a = static_cast<const BlockQ4_0*>(w);
  const BlockQ8_0* b = static_cast<const BlockQ8_0*>(xq);
  float sum = 0.0f;
  for (int64_t i = 0; i < n / kQK8_0; ++i) {
    int isum = 0;
    for (int j = 0; j < kQK4_0 / 2; ++j) {
      isum += ((a[i].qs[j] & 0x0F) - 8) * b[i].qs[j];
      isum += ((a[i].qs[j] >> 4) - 8) * b[i].qs[j + kQK4_0 / 2];
    }
    sum += static_cast<float>(isum) * (Fp16ToFp32(a[i].d) * Fp16ToFp32(b[i].d));
  }
  return sum;
}

const TypeOps kQ8_0Ops = {Q8_0ToFloat, GgmlType::kQ8_0, Q8_0FromFloat, Q8_0Dot};
const TypeOps kQ4_0Ops = {Q4_0ToFloat, GgmlType::kQ8_0, Q4_0FromFloat, Q4_0Dot};

const TypeOps kF32Ops = {F32ToFloat, GgmlType::kF32, F32FromFloat, F32Dot};
const TypeOps kF16Ops = {F16ToFloat, GgmlType::kF16, F16FromFloat, Half16Dot<F16ToFloat>};
const TypeOps kBf16Ops = {Bf16ToFloat, GgmlType::kBF16, Bf16FromFloat, Half16Dot<Bf16ToFloat>};

}  // namespace

const TypeOps* GetTypeOps(GgmlType type) {
  switch (type) {
    case GgmlType::kF32:
      return &kF32Ops;
    case GgmlType::kF16:
      return &kF16Ops;
    case GgmlType::kBF16:
      return &kBf16Ops;
    case GgmlType::kQ8_0:
      return &kQ8_0Ops;
    case GgmlType::kQ4_0:
      return &kQ4_0Ops;
    default:
      return nullptr;
  }
}

}  // namespace dualblade::compute
