// Run-time kernel selection: the table is built once, on first use, from what the CPU supports.
#include "model/vec_dot.h"

#include <cstdlib>
#include <cstring>

#include "model/dequantize.h"
#include "model/quantize.h"

namespace dualblade {
namespace {

struct Dispatch {
  bool avx2 = false;
  RowKernels f32, f16, bf16, q8_0, q4_0, q4_k, q5_k, q6_k;
};

Dispatch Build() {
  Dispatch t;
  const char* no_simd = std::getenv("DUALBLADE_NO_SIMD");
  t.avx2 = CpuHasAvx2Fma() && !(no_simd != nullptr && std::strcmp(no_simd, "1") == 0);
  auto pick = [&](VecDotFn scalar, VecDotFn avx2) { return t.avx2 ? avx2 : scalar; };
  auto pick_deq = [&](ToFloatFn scalar, ToFloatFn avx2) { return t.avx2 ? avx2 : scalar; };
  t.f32 = {DequantizeRowF32, GgmlType::kF32, QuantizeRowF32,
           pick(VecDotF32Scalar, VecDotF32Avx2), VecDotF32Scalar};
  t.f16 = {pick_deq(DequantizeRowF16, DequantizeRowF16Avx2), GgmlType::kF16, QuantizeRowF16,
           pick(VecDotF16Scalar, VecDotF16Avx2), VecDotF16Scalar};
  t.bf16 = {DequantizeRowBF16, GgmlType::kBF16, QuantizeRowBF16,
            pick(VecDotBF16Scalar, VecDotBF16Avx2), VecDotBF16Scalar};
  t.q8_0 = {pick_deq(DequantizeRowQ8_0, DequantizeRowQ8_0Avx2), GgmlType::kQ8_0, QuantizeRowQ8_0,
            pick(VecDotQ8_0Scalar, VecDotQ8_0Avx2), VecDotQ8_0Scalar};
  t.q4_0 = {pick_deq(DequantizeRowQ4_0, DequantizeRowQ4_0Avx2), GgmlType::kQ8_0, QuantizeRowQ8_0,
            pick(VecDotQ4_0Scalar, VecDotQ4_0Avx2), VecDotQ4_0Scalar};
  t.q4_k = {pick_deq(DequantizeRowQ4_K, DequantizeRowQ4_KAvx2), GgmlType::kQ8_K, QuantizeRowQ8_K,
            pick(VecDotQ4_KScalar, VecDotQ4_KAvx2), VecDotQ4_KScalar};
  t.q5_k = {pick_deq(DequantizeRowQ5_K, DequantizeRowQ5_KAvx2), GgmlType::kQ8_K, QuantizeRowQ8_K,
            pick(VecDotQ5_KScalar, VecDotQ5_KAvx2), VecDotQ5_KScalar};
  t.q6_k = {pick_deq(DequantizeRowQ6_K, DequantizeRowQ6_KAvx2), GgmlType::kQ8_K, QuantizeRowQ8_K,
            pick(VecDotQ6_KScalar, VecDotQ6_KAvx2), VecDotQ6_KScalar};
  return t;
}

const Dispatch& Table() {
  static const Dispatch t = Build();  // thread-safe initialisation (C++11 statics)
  return t;
}

}  // namespace

const RowKernels* GetRowKernels(GgmlType weight_type) {
  const Dispatch& t = Table();
  switch (weight_type) {
    case GgmlType::kF32: return &t.f32;
    case GgmlType::kF16: return &t.f16;
    case GgmlType::kBF16: return &t.bf16;
    case GgmlType::kQ8_0: return &t.q8_0;
    case GgmlType::kQ4_0: return &t.q4_0;
    case GgmlType::kQ4_K: return &t.q4_k;
    case GgmlType::kQ5_K: return &t.q5_k;
    case GgmlType::kQ6_K: return &t.q6_k;
    default: return nullptr;
  }
}

const char* VecDotIsa() { return Table().avx2 ? "avx2" : "scalar"; }

}  // namespace dualblade
