#include "residency/meminfo.h"

#include <gtest/gtest.h>

#include <fstream>

#include "testing/test_env.h"

namespace dualblade {
namespace {

constexpr const char* kMeminfo =
    "MemTotal:       24684120 kB\nMemFree:        24494104 kB\nMemAvailable:   24421340 kB\n"
    "Buffers:            4096 kB\nCached:           105912 kB\nSwapCached:            0 kB\n"
    "Active(file):      60000 kB\nInactive(file):    40000 kB\nAnonPages:        90000 kB\n"
    "Shmem:              8192 kB\nDirty:                20 kB\nWriteback:             4 kB\n"
    "SwapTotal:             0 kB\nSwapFree:              0 kB\nHugePages_Total:       0\n"
    "Hugepagesize:       2048 kB\n";

TEST(MeminfoTest, ParsesKilobytesIntoBytes) {
  auto m = ParseMeminfo(kMeminfo, "mi");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->mem_total_bytes, 24684120ull * 1024);
  EXPECT_EQ(m->mem_available_bytes, 24421340ull * 1024);
  EXPECT_TRUE(m->has_mem_available);
  EXPECT_EQ(m->cached_bytes, 105912ull * 1024);
  EXPECT_EQ(m->dirty_bytes, 20ull * 1024);
  EXPECT_EQ(m->writeback_bytes, 4ull * 1024);
  EXPECT_EQ(m->active_file_bytes, 60000ull * 1024);
  EXPECT_EQ(m->anon_pages_bytes, 90000ull * 1024);
}

TEST(MeminfoTest, OldKernelWithoutMemAvailableGetsAnEstimate) {
  auto m =
      ParseMeminfo("MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 10 kB\nCached: 200 kB\n", "mi");
  ASSERT_TRUE(m.ok());
  EXPECT_FALSE(m->has_mem_available);
  EXPECT_EQ(m->mem_available_bytes, 310u * 1024);
}

TEST(MeminfoTest, GarbageIsCorruptionNamingTheFile) {
  for (const char* text : {"MemTotal 1000 kB\n", "MemTotal: lots kB\nMemFree: 1 kB\n",
                           "MemTotal: 1 MB\nMemFree: 1 kB\n", "MemTotal: 1 kB\n",
                           "MemTotal: 99999999999999999999 kB\nMemFree: 1 kB\n",
                           "MemTotal: 36028797018963968 kB\nMemFree: 1 kB\n", ""}) {
    auto m = ParseMeminfo(text, "/proc/meminfo");
    ASSERT_TRUE(m.status().IsCorruption()) << text;
    EXPECT_NE(m.status().message().find("/proc/meminfo"), std::string::npos);
  }
}

TEST(MeminfoTest, MissingFileIsNotFound) {
  testing::TempDir dir;
  auto m = ReadMeminfo(dir.File("meminfo"));
  ASSERT_TRUE(m.status().IsNotFound());
  EXPECT_NE(m.status().message().find(dir.File("meminfo")), std::string::npos);
}

TEST(MeminfoTest, FixtureFile) {
  testing::TempDir dir;
  std::ofstream(dir.File("meminfo")) << kMeminfo;
  auto m = ReadMeminfo(dir.File("meminfo"));
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->mem_free_bytes, 24494104ull * 1024);
}

TEST(MeminfoTest, LiveMachine) {
  auto m = ReadMeminfo();
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_GT(m->mem_total_bytes, 64ull << 20);
  EXPECT_TRUE(m->has_mem_available);
  EXPECT_LE(m->mem_available_bytes, m->mem_total_bytes);
  EXPECT_LE(m->mem_free_bytes, m->mem_total_bytes);
}

}  // namespace
}  // namespace dualblade
