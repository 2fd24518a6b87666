#include "model/ggml_types.h"

#include <array>
#include <cctype>

namespace dualblade {
namespace {

// Block geometry from ggml-common.h (block_* structs) and ggml.c (type_traits). Bytes per block:
// Q4_0 = fp16 d + 16 nibble bytes = 18; Q8_0 = fp16 d + 32 int8 = 34; Q4_K = 2 fp16 + 12 scale
// bytes + 128 nibble bytes = 144; Q5_K = 144 + 32 high-bit bytes = 176; Q6_K = 128 low + 64 high
// + 16 int8 scales + fp16 d = 210; Q8_K = f32 d + 256 int8 + 16 int16 sums = 292.
constexpr size_t kNumIds = 40;
constexpr std::array<GgmlTypeTraits, kNumIds> kTraits = {{
    {"F32", 1, 4},          // 0
    {"F16", 1, 2},          // 1
    {"Q4_0", 32, 18},       // 2
    {"Q4_1", 32, 20},       // 3
    {nullptr, 0, 0},        // 4 (removed Q4_2)
    {nullptr, 0, 0},        // 5 (removed Q4_3)
    {"Q5_0", 32, 22},       // 6
    {"Q5_1", 32, 24},       // 7
    {"Q8_0", 32, 34},       // 8
    {"Q8_1", 32, 36},       // 9
    {"Q2_K", 256, 84},      // 10
    {"Q3_K", 256, 110},     // 11
    {"Q4_K", 256, 144},     // 12
    {"Q5_K", 256, 176},     // 13
    {"Q6_K", 256, 210},     // 14
    {"Q8_K", 256, 292},     // 15
    {"IQ2_XXS", 256, 66},   // 16
    {"IQ2_XS", 256, 74},    // 17
    {"IQ3_XXS", 256, 98},   // 18
    {"IQ1_S", 256, 50},     // 19
    {"IQ4_NL", 32, 18},     // 20
    {"IQ3_S", 256, 110},    // 21
    {"IQ2_S", 256, 82},     // 22
    {"IQ4_XS", 256, 136},   // 23
    {"I8", 1, 1},           // 24
    {"I16", 1, 2},          // 25
    {"I32", 1, 4},          // 26
    {"I64", 1, 8},          // 27
    {"F64", 1, 8},          // 28
    {"IQ1_M", 256, 56},     // 29
    {"BF16", 1, 2},         // 30
    {nullptr, 0, 0},        // 31 (removed Q4_0_4_4)
    {nullptr, 0, 0},        // 32 (removed Q4_0_4_8)
    {nullptr, 0, 0},        // 33 (removed Q4_0_8_8)
    {"TQ1_0", 256, 54},     // 34
    {"TQ2_0", 256, 66},     // 35
    {nullptr, 0, 0},        // 36 (removed IQ4_NL_4_4)
    {nullptr, 0, 0},        // 37 (removed IQ4_NL_4_8)
    {nullptr, 0, 0},        // 38 (removed IQ4_NL_8_8)
    {"MXFP4", 32, 17},      // 39
}};

constexpr GgmlType kSupported[] = {GgmlType::kF32,  GgmlType::kF16,  GgmlType::kBF16,
                                   GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ4_K,
                                   GgmlType::kQ5_K, GgmlType::kQ6_K};

}  // namespace

const GgmlTypeTraits* GgmlTypeInfo(uint32_t id) {
  if (id >= kNumIds || kTraits[id].name == nullptr) return nullptr;
  return &kTraits[id];
}

std::string GgmlTypeName(uint32_t id) {
  const GgmlTypeTraits* t = GgmlTypeInfo(id);
  return t != nullptr ? std::string(t->name) : "type " + std::to_string(id);
}

Result<GgmlType> GgmlTypeFromName(std::string_view name) {
  for (uint32_t id = 0; id < kNumIds; ++id) {
    const char* n = kTraits[id].name;
    if (n == nullptr || std::string_view(n).size() != name.size()) continue;
    bool eq = true;
    for (size_t i = 0; i < name.size() && eq; ++i) {
      eq = std::toupper(static_cast<unsigned char>(name[i])) == n[i];
    }
    if (eq) return static_cast<GgmlType>(id);
  }
  return Status::NotFound("unknown tensor type '" + std::string(name) + "'");
}

size_t RowSizeBytes(GgmlType type, int64_t n) {
  const GgmlTypeTraits* t = GgmlTypeInfo(type);
  DB_CHECK(t != nullptr);
  DB_CHECK(n >= 0 && n % t->block_size == 0);
  return static_cast<size_t>(n / t->block_size) * t->type_size;
}

bool IsSupportedWeightType(GgmlType type) {
  for (GgmlType s : kSupported) {
    if (s == type) return true;
  }
  return false;
}

Status CheckSupportedWeightType(GgmlType type, std::string_view tensor_name) {
  if (IsSupportedWeightType(type)) return Status::OK();
  std::string list;
  for (GgmlType s : kSupported) {
    if (!list.empty()) list += ", ";
    list += GgmlTypeName(s);
  }
  return Status::NotSupported("tensor '" + std::string(tensor_name) + "' has type " +
                              GgmlTypeName(type) + ", which is not supported (supported: " +
                              list + ")");
}

}  // namespace dualblade
