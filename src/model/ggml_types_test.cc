#include "model/ggml_types.h"

#include <gtest/gtest.h>

namespace dualblade {
namespace {

TEST(GgmlTypesTest, IdsAndBlockSizesMatchGgml) {
  struct Row { GgmlType t; uint32_t id; const char* name; int64_t block; size_t bytes; };
  const Row rows[] = {{GgmlType::kF32, 0, "F32", 1, 4},      {GgmlType::kF16, 1, "F16", 1, 2},
                      {GgmlType::kQ4_0, 2, "Q4_0", 32, 18},  {GgmlType::kQ8_0, 8, "Q8_0", 32, 34},
                      {GgmlType::kQ4_K, 12, "Q4_K", 256, 144},
                      {GgmlType::kQ5_K, 13, "Q5_K", 256, 176},
                      {GgmlType::kQ6_K, 14, "Q6_K", 256, 210},
                      {GgmlType::kQ8_K, 15, "Q8_K", 256, 292},
                      {GgmlType::kBF16, 30, "BF16", 1, 2}};
  for (const Row& r : rows) {
    EXPECT_EQ(static_cast<uint32_t>(r.t), r.id);
    const GgmlTypeTraits* t = GgmlTypeInfo(r.t);
    ASSERT_NE(t, nullptr);
    EXPECT_STREQ(t->name, r.name);
    EXPECT_EQ(t->block_size, r.block);
    EXPECT_EQ(t->type_size, r.bytes);
  }
  EXPECT_EQ(GgmlTypeInfo(4u), nullptr);
  EXPECT_EQ(GgmlTypeInfo(1000u), nullptr);
  EXPECT_EQ(GgmlTypeName(31u), "type 31");
}

TEST(GgmlTypesTest, RowSizes) {
  EXPECT_EQ(RowSizeBytes(GgmlType::kQ8_0, 256), 8u * 34);
  EXPECT_EQ(RowSizeBytes(GgmlType::kQ6_K, 512), 2u * 210);
  EXPECT_EQ(RowSizeBytes(GgmlType::kF16, 7), 14u);
}

TEST(GgmlTypesTest, NamesParseCaseInsensitively) {
  EXPECT_EQ(*GgmlTypeFromName("q4_k"), GgmlType::kQ4_K);
  EXPECT_EQ(*GgmlTypeFromName("BF16"), GgmlType::kBF16);
  EXPECT_TRUE(GgmlTypeFromName("q4_k_m").status().IsNotFound());
}

TEST(GgmlTypesTest, UnsupportedTypesAreRefusedByName) {
  EXPECT_TRUE(CheckSupportedWeightType(GgmlType::kQ6_K, "x").ok());
  Status st = CheckSupportedWeightType(GgmlType::kIQ2_XXS, "blk.0.attn_q.weight");
  EXPECT_TRUE(st.IsNotSupported());
  EXPECT_EQ(st.message(),
            "tensor 'blk.0.attn_q.weight' has type IQ2_XXS, which is not supported (supported: "
            "F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K)");
}

}  // namespace
}  // namespace dualblade
