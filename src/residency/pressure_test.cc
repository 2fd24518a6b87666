#include "residency/pressure.h"

#include <gtest/gtest.h>

#include "testing/test_env.h"

namespace dualblade {
namespace {

TEST(PressureTest, ParsesSomeAndFull) {
  auto p = ParseMemoryPressure(
      "some avg10=1.25 avg60=0.50 avg300=0.07 total=123456\n"
      "full avg10=0.75 avg60=0.00 avg300=0.00 total=6543\n",
      "p");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_DOUBLE_EQ(p->some.avg10, 1.25);
  EXPECT_DOUBLE_EQ(p->some.avg60, 0.5);
  EXPECT_DOUBLE_EQ(p->some.avg300, 0.07);
  EXPECT_EQ(p->some.total_us, 123456u);
  EXPECT_TRUE(p->has_full);
  EXPECT_DOUBLE_EQ(p->full.avg10, 0.75);
  EXPECT_EQ(p->full.total_us, 6543u);
}

TEST(PressureTest, FullLineIsOptional) {
  auto p = ParseMemoryPressure("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", "p");
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->has_full);
}

TEST(PressureTest, GarbageIsCorruptionNamingTheFile) {
  for (const char* text :
       {"", "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
        "some avg10=x avg60=0.00 avg300=0.00 total=0\n", "some avg10=0.00 avg60=0.00 total=0\n",
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=-1\n",
        "some avg10=101.00 avg60=0.00 avg300=0.00 total=0\n",
        "some avg10 avg60=0.00 avg300=0.00 total=0\n",
        "half avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"}) {
    auto p = ParseMemoryPressure(text, "/proc/pressure/memory");
    ASSERT_TRUE(p.status().IsCorruption()) << text;
    EXPECT_NE(p.status().message().find("/proc/pressure/memory"), std::string::npos);
  }
}

TEST(PressureTest, MissingFileIsNotFound) {
  testing::TempDir dir;
  EXPECT_TRUE(ReadMemoryPressure(dir.File("memory")).status().IsNotFound());
}

TEST(PressureTest, LiveMachine) {
  auto p = ReadMemoryPressure();
  if (p.status().IsNotFound() || p.status().IsNotSupported()) {
    GTEST_SKIP() << "no PSI on this kernel: " << p.status().ToString();
  }
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_LE(p->some.avg10, 100.0);
  EXPECT_GE(p->some.total_us, p->full.total_us);
}

}  // namespace
}  // namespace dualblade
