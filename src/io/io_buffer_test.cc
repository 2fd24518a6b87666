#include "io/io_buffer.h"

#include <cstdint>
#include <utility>

#include <gtest/gtest.h>

#include "common/units.h"

namespace dualblade {
namespace {

TEST(IoBufferTest, AlignedZeroedAndMovable) {
  IoBuffer a(3 * kMiB + 5);
  ASSERT_NE(a.data(), nullptr);
  EXPECT_EQ(a.size(), 3 * kMiB + 5);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a.data()) % (2 * kMiB), 0u);
  for (size_t i = 0; i < a.size(); i += 4093) EXPECT_EQ(a.data()[i], 0);
  a.data()[a.size() - 1] = 7;
  uint8_t* p = a.data();
  IoBuffer b(std::move(a));
  EXPECT_EQ(a.data(), nullptr);
  EXPECT_EQ(b.data(), p);
  EXPECT_EQ(b.data()[b.size() - 1], 7);
  IoBuffer c;
  EXPECT_EQ(c.size(), 0u);
  c = std::move(b);
  EXPECT_EQ(c.data(), p);
}

}  // namespace
}  // namespace dualblade
