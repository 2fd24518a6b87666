#include "testing/test_env.h"

#include <sys/stat.h>

#include <gtest/gtest.h>

namespace dualblade::testing {
namespace {

TEST(TestEnvTest, TempDirRemovesItself) {
  std::string path;
  {
    TempDir d;
    path = d.path();
    struct stat st;
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    ASSERT_EQ(RunCommand("touch " + d.File("x")), 0);
  }
  struct stat st;
  EXPECT_NE(::stat(path.c_str(), &st), 0);
}

TEST(TestEnvTest, LoopDeviceAttachesAndDetaches) {
  std::string dev;
  {
    DB_LOOP_DEVICE_OR_SKIP(loop, 8 << 20);
    dev = loop.device();
    std::string out;
    ASSERT_EQ(RunCommand("blockdev --getsize64 " + dev, &out), 0);
    EXPECT_EQ(std::stoull(out), 8u << 20);
  }
  std::string out;
  RunCommand("losetup -l -n -O NAME", &out);
  EXPECT_EQ(out.find(dev + "\n"), std::string::npos) << out;
}

}  // namespace
}  // namespace dualblade::testing
