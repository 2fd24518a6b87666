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
  std::string backing;
  {
    DB_LOOP_DEVICE_OR_SKIP(loop, 8 << 20);
    backing = loop.backing_file();
    std::string out;
    ASSERT_EQ(RunCommand("blockdev --getsize64 " + loop.device(), &out), 0);
    EXPECT_EQ(std::stoull(out), 8u << 20);
  }
  // By backing file, not by name: tests running in parallel may attach the freed /dev/loopN.
  std::string out;
  RunCommand("losetup -l -n -O BACK-FILE", &out);
  EXPECT_EQ(out.find(backing), std::string::npos) << out;
}

}  // namespace
}  // namespace dualblade::testing
