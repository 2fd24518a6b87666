// Quantization of f32 rows: weights (for `mkmodel` and tests, bit-exact with ggml's reference
// quantize_row_*_ref, which llama-quantize uses without an importance matrix) and activations
// (what llama.cpp's CPU backend does to the input vector before every quantized dot product).
// Thread-safety: pure functions.
#pragma once

#include <cstdint>

#include "model/ggml_types.h"

namespace dualblade {

// Weights. REQUIRES: n a multiple of 32.
void QuantizeRowQ8_0Ref(const float* x, void* dst, int64_t n);  // roundf(x / (amax / 127))
void QuantizeRowQ4_0Ref(const float* x, void* dst, int64_t n);  // d = max / -8, q = x/d + 8.5
// K-quants (quantize_k.cc): per-sub-block least-squares fits, as llama-quantize does without an
// importance matrix. REQUIRES: n a multiple of 256.
void QuantizeRowQ4_KRef(const float* x, void* dst, int64_t n);
void QuantizeRowQ5_KRef(const float* x, void* dst, int64_t n);
void QuantizeRowQ6_KRef(const float* x, void* dst, int64_t n);
// Weight quantization of a row to any supported weight type (the *Ref functions above, F16/BF16
// conversion, or a copy for F32). REQUIRES: IsSupportedWeightType(type), n a block multiple.
void QuantizeWeightRow(GgmlType type, const float* x, void* dst, int64_t n);

// Activations.
// Q8_0 as llama.cpp's x86 CPU backend rounds it: d = amax / 127, q = nearest-even(x * 127 / amax).
// (This differs from QuantizeRowQ8_0Ref in the last bit of some q's.) REQUIRES: n % 32 == 0.
void QuantizeRowQ8_0(const float* x, void* dst, int64_t n);
// Q8_K (ggml quantize_row_q8_K_ref): scale -127 / max (max = the value of largest magnitude,
// with its sign), q = nearest-even, clamped to 127, plus the sums of each group of 16.
// REQUIRES: n % 256 == 0.
void QuantizeRowQ8_K(const float* x, void* dst, int64_t n);
void QuantizeRowF16(const float* x, void* dst, int64_t n);
void QuantizeRowBF16(const float* x, void* dst, int64_t n);
void QuantizeRowF32(const float* x, void* dst, int64_t n);

// The activation type llama.cpp pairs with each weight type (its vec_dot_type): Q8_0 for Q4_0
// and Q8_0, Q8_K for Q4_K/Q5_K/Q6_K, F16 for F16, BF16 for BF16, F32 for F32.
// REQUIRES: IsSupportedWeightType(weight).
GgmlType VecDotType(GgmlType weight);

// Converts an activation row to `type` (one of the VecDotType results). REQUIRES: n a multiple
// of the type's block size.
void QuantizeActivationRow(GgmlType type, const float* x, void* dst, int64_t n);

}  // namespace dualblade
