#include "common/units.h"

#include <gtest/gtest.h>

namespace dualblade {
namespace {

TEST(UnitsTest, ParsesSuffixesAsPowersOf1024) {
  EXPECT_EQ(*ParseSize("4096"), 4096u);
  EXPECT_EQ(*ParseSize("128K"), 128u * 1024);
  EXPECT_EQ(*ParseSize("128k"), 128u * 1024);
  EXPECT_EQ(*ParseSize("1M"), 1024u * 1024);
  EXPECT_EQ(*ParseSize("1MiB"), 1024u * 1024);
  EXPECT_EQ(*ParseSize("2G"), 2ull << 30);
  EXPECT_EQ(*ParseSize("1T"), 1ull << 40);
}

TEST(UnitsTest, RejectsGarbageAndOverflow) {
  EXPECT_FALSE(ParseSize("").ok());
  EXPECT_FALSE(ParseSize("-1").ok());
  EXPECT_FALSE(ParseSize("12Q").ok());
  EXPECT_FALSE(ParseSize("K").ok());
  EXPECT_FALSE(ParseSize("1.5M").ok());
  EXPECT_FALSE(ParseSize("99999999999999999999").ok());
  EXPECT_FALSE(ParseSize("20000000000T").ok());
}

TEST(UnitsTest, Formats) {
  EXPECT_EQ(FormatBytes(512), "512 B");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(FormatBytes(4 * kMiB), "4.0 MiB");
  EXPECT_EQ(FormatBandwidth(2.0e9), "2.00 GB/s");
  EXPECT_EQ(AlignUp(4097, 4096), 8192u);
  EXPECT_EQ(AlignDown(4097, 4096), 4096u);
}

}  // namespace
}  // namespace dualblade
