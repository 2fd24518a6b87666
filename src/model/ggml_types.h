// Tensor storage types as ggml numbers them (ggml.h `enum ggml_type`; the numbers are part of the
// GGUF file format), with their block geometry. Every type ggml ever assigned a number is known
// here so that any GGUF file can be parsed and its tensor sizes checked; which types this runtime
// can compute with is a separate question (IsSupportedWeightType).
// Thread-safety: constant tables only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace dualblade {

enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  // 4 and 5 were Q4_2 and Q4_3, removed from ggml.
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kIQ2_XXS = 16,
  kIQ2_XS = 17,
  kIQ3_XXS = 18,
  kIQ1_S = 19,
  kIQ4_NL = 20,
  kIQ3_S = 21,
  kIQ2_S = 22,
  kIQ4_XS = 23,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kIQ1_M = 29,
  kBF16 = 30,
  // 31..33 were the Q4_0_4_4 / Q4_0_4_8 / Q4_0_8_8 repacks, removed from ggml.
  kTQ1_0 = 34,
  kTQ2_0 = 35,
  // 36..38 were the IQ4_NL repacks, removed from ggml.
  kMXFP4 = 39,
};

// Elements per super-block of the K-quants (ggml-common.h QK_K).
inline constexpr int64_t kQK_K = 256;
// Elements per block of Q4_0 / Q8_0 (ggml-common.h QK4_0, QK8_0).
inline constexpr int64_t kQK4_0 = 32;
inline constexpr int64_t kQK8_0 = 32;

struct GgmlTypeTraits {
  const char* name;     // ggml's name, upper case: "Q4_K"
  int64_t block_size;   // elements per block
  size_t type_size;     // bytes per block
};

// Traits of type id `id`, or nullptr when ggml never assigned that number (or removed it).
const GgmlTypeTraits* GgmlTypeInfo(uint32_t id);
inline const GgmlTypeTraits* GgmlTypeInfo(GgmlType t) { return GgmlTypeInfo(static_cast<uint32_t>(t)); }

// "Q4_K"; "type 31" for numbers without a name.
std::string GgmlTypeName(uint32_t id);
inline std::string GgmlTypeName(GgmlType t) { return GgmlTypeName(static_cast<uint32_t>(t)); }

// Parses a case-insensitive name ("q8_0", "F16") into a type. NotFound for unknown names.
Result<GgmlType> GgmlTypeFromName(std::string_view name);

// Bytes of a row of `n` elements. REQUIRES: known type, n >= 0, n a multiple of the block size.
size_t RowSizeBytes(GgmlType type, int64_t n);

// The weight types this runtime dequantizes and multiplies: F32, F16, BF16, Q8_0, Q4_0, Q4_K,
// Q5_K, Q6_K.
bool IsSupportedWeightType(GgmlType type);

// OK for a supported weight type; otherwise NotSupported naming the tensor, its type and the
// supported list: "tensor 'blk.0.attn_q.weight' has type IQ2_XXS, which is not supported
// (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K)".
Status CheckSupportedWeightType(GgmlType type, std::string_view tensor_name);

}  // namespace dualblade
