// Dequantization of tensor rows to f32: the scalar reference for every supported weight type,
// the same arithmetic as ggml's dequantize_row_* (results are bit-identical: each output is one
// or two float products of the stored scales).
// Thread-safety: pure functions.
#pragma once

#include <cstdint>

#include "common/status.h"
#include "model/ggml_types.h"

namespace dualblade {

// Row of `n` elements of `type` at `src` -> dst[0..n). REQUIRES: n a multiple of the type's
// block size; type one of F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K, Q8_K (checked).
void DequantizeRow(GgmlType type, const void* src, float* dst, int64_t n);

void DequantizeRowF32(const void* src, float* dst, int64_t n);
void DequantizeRowF16(const void* src, float* dst, int64_t n);
void DequantizeRowBF16(const void* src, float* dst, int64_t n);
void DequantizeRowQ8_0(const void* src, float* dst, int64_t n);
void DequantizeRowQ4_0(const void* src, float* dst, int64_t n);
void DequantizeRowQ4_K(const void* src, float* dst, int64_t n);
void DequantizeRowQ5_K(const void* src, float* dst, int64_t n);
void DequantizeRowQ6_K(const void* src, float* dst, int64_t n);
void DequantizeRowQ8_K(const void* src, float* dst, int64_t n);

// AVX2/F16C versions, bit-identical to the above (GetRowKernels picks them when the CPU has the
// features). REQUIRES: CpuHasAvx2Fma() (vec_dot.h).
void DequantizeRowF16Avx2(const void* src, float* dst, int64_t n);
void DequantizeRowQ8_0Avx2(const void* src, float* dst, int64_t n);
void DequantizeRowQ4_0Avx2(const void* src, float* dst, int64_t n);
void DequantizeRowQ4_KAvx2(const void* src, float* dst, int64_t n);
void DequantizeRowQ5_KAvx2(const void* src, float* dst, int64_t n);
void DequantizeRowQ6_KAvx2(const void* src, float* dst, int64_t n);

}  // namespace dualblade
