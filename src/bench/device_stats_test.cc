#include "bench/device_stats.h"

#include <gtest/gtest.h>
#include <dirent.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "testing/test_env.h"

namespace dualblade {
namespace {

// A 6.x kernel's line (17 fields: classic 11, discard 4, flush 2), from a virtio disk.
constexpr char kStat17[] =
    " 1097472   814934 1129335082  2752596    83329    27793 29099088   285456        0   "
    "348716  3071596    26071       96 23157360    31224     1701     2318\n";
// A 4.x kernel's line: the classic 11 fields only.
constexpr char kStat11[] = "     455        0    36400      120        2        0       16        0"
                           "        0      104      120\n";

TEST(BlockDeviceStatTest, ParsesEveryKernelsLayout) {
  auto s = ParseBlockDeviceStat(kStat17, "vda/stat");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->read_ios, 1097472u);
  EXPECT_EQ(s->read_sectors, 1129335082u);
  EXPECT_EQ(s->read_bytes(), 1129335082ull * 512);
  EXPECT_EQ(s->write_sectors, 29099088u);
  EXPECT_EQ(s->io_ticks_ms, 348716u);
  EXPECT_EQ(s->time_in_queue_ms, 3071596u);
  auto old = ParseBlockDeviceStat(kStat11, "sda/stat");
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(old->read_ios, 455u);
  EXPECT_EQ(old->io_ticks_ms, 104u);
}

TEST(BlockDeviceStatTest, MalformedFilesAreCorruptionNamingTheFile) {
  auto shortline = ParseBlockDeviceStat("1 2 3 4 5", "x/stat");
  ASSERT_FALSE(shortline.ok());
  EXPECT_TRUE(shortline.status().IsCorruption());
  EXPECT_NE(shortline.status().message().find("x/stat"), std::string::npos);
  auto garbage = ParseBlockDeviceStat("1 2 three 4 5 6 7 8 9 10 11", "y/stat");
  ASSERT_FALSE(garbage.ok());
  EXPECT_NE(garbage.status().message().find("three"), std::string::npos);
}

TEST(BlockDeviceStatTest, DiffCountsWhatHappenedBetweenTwoSamples) {
  BlockDeviceStat a, b;
  a.read_ios = 10;
  a.read_sectors = 100;
  a.write_sectors = 8;
  a.io_ticks_ms = 50;
  b = a;
  b.read_ios = 15;
  b.read_sectors = 2148;  // + 1 MiB
  b.io_ticks_ms = 75;
  BlockDeviceDelta d = DiffBlockDeviceStat(a, b);
  EXPECT_EQ(d.read_ios, 5u);
  EXPECT_EQ(d.read_bytes, 1024u * 1024);
  EXPECT_EQ(d.write_bytes, 0u);
  EXPECT_EQ(d.busy_ms, 25u);
  // A device re-created between samples: counters restart, never a huge unsigned wrap.
  EXPECT_EQ(DiffBlockDeviceStat(b, a).read_bytes, 0u);
}

TEST(BlockDeviceStatTest, ReadsAFixtureSysfsTreeAndRejectsPathLikeNames) {
  testing::TempDir dir;
  std::filesystem::create_directories(dir.path() + "/block/nvme0n1");
  std::ofstream(dir.path() + "/block/nvme0n1/stat") << kStat17;
  auto s = ReadBlockDeviceStat("nvme0n1", dir.path());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->read_ios, 1097472u);
  EXPECT_TRUE(ReadBlockDeviceStat("sdz", dir.path()).status().IsNotFound());
  EXPECT_TRUE(ReadBlockDeviceStat("../etc", dir.path()).status().IsInvalidArgument());
  EXPECT_TRUE(ReadBlockDeviceStat("", dir.path()).status().IsInvalidArgument());
}

TEST(BlockDeviceStatTest, ReadsEveryLiveBlockDevice) {
  DIR* d = ::opendir("/sys/block");
  if (d == nullptr) GTEST_SKIP() << "no /sys/block here";
  int n = 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    auto s = ReadBlockDeviceStat(e->d_name);
    EXPECT_TRUE(s.ok()) << e->d_name << ": " << s.status().ToString();
    ++n;
  }
  ::closedir(d);
  if (n == 0) GTEST_SKIP() << "no block devices in /sys/block";
}

}  // namespace
}  // namespace dualblade
