#include "store/kv_geometry.h"

#include <gtest/gtest.h>

namespace dualblade::store {
namespace {

KvGeometry Small() {
  return KvGeometry{.n_layer = 2, .n_head_kv = 2, .head_dim = 24, .type = KvType::kF16,
                    .chunk_tokens = 16, .capacity_tokens = 40};
}

TEST(KvGeometryTest, RowBytesPerType) {
  KvGeometry g = Small();
  EXPECT_EQ(g.row_bytes(), 2u * 24 * 2);
  g.type = KvType::kF32;
  EXPECT_EQ(g.row_bytes(), 2u * 24 * 4);
  g.head_dim = 64;
  g.type = KvType::kQ8_0;
  EXPECT_EQ(g.row_bytes(), 128u / 32 * 34);
  EXPECT_TRUE(g.Validate().ok());
}

TEST(KvGeometryTest, ValidateNamesTheBadField) {
  KvGeometry g = Small();
  EXPECT_TRUE(g.Validate().ok());
  g.n_layer = 0;
  EXPECT_NE(g.Validate().message().find("n_layer"), std::string::npos);
  g = Small();
  g.capacity_tokens = 0;
  EXPECT_NE(g.Validate().message().find("capacity_tokens"), std::string::npos);
  g = Small();
  g.type = KvType::kQ8_0;  // 48 elements: not whole q8_0 blocks
  EXPECT_TRUE(g.Validate().IsInvalidArgument());
  g = Small();
  g.type = static_cast<KvType>(9);
  EXPECT_TRUE(g.Validate().IsInvalidArgument());
  g = Small();
  g.chunk_tokens = 1u << 20;
  g.head_dim = 1u << 12;
  EXPECT_TRUE(g.Validate().IsInvalidArgument());
}

TEST(KvGeometryTest, ChunkPartsArePaddedToWholeBlocks) {
  KvLayout lay{Small(), 4096};
  EXPECT_EQ(lay.geometry.chunk_row_bytes(), 16u * 96);
  EXPECT_EQ(lay.chunk_part_bytes(), 4096u);
  EXPECT_EQ(lay.extent_blocks(3), 6u);
  EXPECT_EQ(lay.ChunksForTokens(40), 3u);
  EXPECT_EQ(lay.ChunksForTokens(48), 3u);
  lay.block_bytes = 512;
  EXPECT_EQ(lay.chunk_part_bytes(), 1536u);
}

}  // namespace
}  // namespace dualblade::store
