#include "compute/type_ops.h"

#include <cstring>

#include "compute/ops.h"

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
    default:
      return nullptr;
  }
}

}  // namespace dualblade::compute
