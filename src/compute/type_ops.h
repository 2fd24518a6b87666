// Per-type row operations the matmul strategies need: dequantize a weight row, round an
// activation row to the type's partner ("vec_dot") type, and dot a weight row with a partner row.
// The quantized formats and their kernels live in model/; this table adapts them.
// Thread-safety: constant table.
#pragma once

#include <cstddef>
#include <cstdint>

#include "model/ggml_types.h"

namespace dualblade::compute {

struct TypeOps {
  // Weight row of n elements -> F32.
  void (*to_float)(const void* row, float* out, int64_t n);
  // The type activations are rounded to before dot products (llama.cpp's vec_dot_type).
  GgmlType vec_dot_type;
  // F32 -> a row of this type (activations use the vec_dot_type's from_float).
  void (*from_float)(const float* x, void* out, int64_t n);
  // Dot of a weight row with a vec_dot_type row, n elements.
  float (*vec_dot)(int64_t n, const void* w_row, const void* x_row);
};

// nullptr for types without kernels.
const TypeOps* GetTypeOps(GgmlType type);

}  // namespace dualblade::compute
