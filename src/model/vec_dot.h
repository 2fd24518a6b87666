// Dot products of one weight row with one activation row already converted to the weight type's
// partner type (VecDotType in quantize.h), the inner loop of every quantized matrix-vector
// product. Each kernel has a scalar reference and an AVX2/FMA version; the fastest one the CPU
// supports is chosen once, at run time (no -march flags: one binary runs on every x86-64).
// Results of the SIMD kernels equal the scalar ones up to float summation order: the integer
// parts are exact, only the per-block float accumulation is reordered (see vec_dot_test.cc for
// the tolerance).
// Thread-safety: pure functions; the dispatch table is initialised once, thread-safely.
#pragma once

#include <cstdint>

#include "model/ggml_types.h"

namespace dualblade {

// Signature of every kernel: n elements (a multiple of the weight type's block size), a weight
// row of that type, an activation row of its partner type.
using VecDotFn = float (*)(int64_t n, const void* w, const void* x);
using ToFloatFn = void (*)(const void* src, float* dst, int64_t n);
using FromFloatFn = void (*)(const float* x, void* dst, int64_t n);

// Everything a matmul needs for one weight type.
struct RowKernels {
  ToFloatFn to_float;       // weight row -> f32 (bit-identical to DequantizeRow, SIMD when possible)
  GgmlType vec_dot_type;    // partner type of the activations
  FromFloatFn from_float;   // f32 activations -> partner type
  VecDotFn vec_dot;         // best kernel for this CPU
  VecDotFn vec_dot_scalar;  // reference
};

// nullptr for unsupported weight types.
const RowKernels* GetRowKernels(GgmlType weight_type);

// Which SIMD level the dispatch picked: "avx2" or "scalar". Set DUALBLADE_NO_SIMD=1 in the
// environment to force the scalar kernels (for comparisons).
const char* VecDotIsa();

// Scalar references.
float VecDotF32Scalar(int64_t n, const void* w, const void* x);
float VecDotF16Scalar(int64_t n, const void* w, const void* x);
float VecDotBF16Scalar(int64_t n, const void* w, const void* x);
float VecDotQ8_0Scalar(int64_t n, const void* w, const void* x);
float VecDotQ4_0Scalar(int64_t n, const void* w, const void* x);
float VecDotQ4_KScalar(int64_t n, const void* w, const void* x);
float VecDotQ5_KScalar(int64_t n, const void* w, const void* x);
float VecDotQ6_KScalar(int64_t n, const void* w, const void* x);

// AVX2 + FMA + F16C versions. REQUIRES: the CPU supports them (CpuHasAvx2Fma()).
bool CpuHasAvx2Fma();
float VecDotF32Avx2(int64_t n, const void* w, const void* x);
float VecDotF16Avx2(int64_t n, const void* w, const void* x);
float VecDotBF16Avx2(int64_t n, const void* w, const void* x);
float VecDotQ8_0Avx2(int64_t n, const void* w, const void* x);
float VecDotQ4_0Avx2(int64_t n, const void* w, const void* x);
float VecDotQ4_KAvx2(int64_t n, const void* w, const void* x);
float VecDotQ5_KAvx2(int64_t n, const void* w, const void* x);
float VecDotQ6_KAvx2(int64_t n, const void* w, const void* x);

}  // namespace dualblade
