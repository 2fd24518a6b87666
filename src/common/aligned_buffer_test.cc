#include "common/aligned_buffer.h"

#include <gtest/gtest.h>

namespace dualblade {
namespace {

TEST(AlignedBufferTest, AlignedAndZeroed) {
  AlignedBuffer b(10000);
  ASSERT_NE(b.data(), nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % kDirectIoAlignBytes, 0u);
  EXPECT_EQ(b.size(), 10000u);
  for (size_t i = 0; i < b.size(); ++i) ASSERT_EQ(b.data()[i], 0);
}

TEST(AlignedBufferTest, MoveTransfersOwnership) {
  AlignedBuffer a(4096);
  a.data()[0] = 7;
  AlignedBuffer b = std::move(a);
  EXPECT_EQ(a.data(), nullptr);
  EXPECT_EQ(a.size(), 0u);
  EXPECT_EQ(b.data()[0], 7);
}

}  // namespace
}  // namespace dualblade
