#include "residency/cgroup.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "testing/test_env.h"

namespace dualblade {
namespace {

using testing::TempDir;

void WriteFile(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path) << text;
}

// A fake /proc/self plus a fake cgroup mount, both inside one TempDir.
struct FakeSystem {
  TempDir dir;
  std::string proc() const { return dir.path() + "/proc"; }
  std::string mnt(const std::string& sub) const { return dir.path() + "/sys/fs/cgroup" + sub; }
  void SetCgroup(const std::string& text) { WriteFile(proc() + "/self/cgroup", text); }
  void SetMountinfo(const std::string& text) { WriteFile(proc() + "/self/mountinfo", text); }
  void MakeDir(const std::string& path) { std::filesystem::create_directories(path); }
};

TEST(ProcCgroupTest, ParsesV1AndV2Lines) {
  auto r = ParseProcCgroup(
      "12:memory:/user.slice\n4:cpu,cpuacct:/\n1:name=systemd:/init.scope\n0::/user.slice/a\n",
      "cg");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 4u);
  EXPECT_EQ((*r)[0].hierarchy_id, 12);
  EXPECT_EQ((*r)[0].controllers, std::vector<std::string>{"memory"});
  EXPECT_EQ((*r)[0].path, "/user.slice");
  EXPECT_EQ((*r)[1].controllers, (std::vector<std::string>{"cpu", "cpuacct"}));
  EXPECT_TRUE((*r)[3].controllers.empty());
  EXPECT_EQ((*r)[3].path, "/user.slice/a");
}

TEST(ProcCgroupTest, PathMayContainColonsAndDeletedSuffixIsDropped) {
  auto r = ParseProcCgroup("0::/a:b/c (deleted)\n", "cg");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].path, "/a:b/c");
}

TEST(ProcCgroupTest, GarbageIsCorruptionNamingTheFile) {
  for (const char* text : {"garbage\n", "x:memory:/a\n", "3:memory:relative\n", "", "\n\n"}) {
    auto r = ParseProcCgroup(text, "/proc/self/cgroup");
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_TRUE(r.status().IsCorruption());
    EXPECT_NE(r.status().message().find("/proc/self/cgroup"), std::string::npos);
  }
}

TEST(MountInfoTest, ParsesOptionalFieldsAndEscapes) {
  auto r = ParseMountInfo(
      "34 30 0:31 / /sys/fs/cgroup/memory rw,relatime shared:9 master:2 - cgroup cgroup "
      "rw,memory\n"
      "40 30 0:37 /sub\\040dir /mnt/with\\040space rw - cgroup2 cgroup2 rw,nsdelegate\n",
      "mi");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].fs_type, "cgroup");
  EXPECT_EQ((*r)[0].mount_point, "/sys/fs/cgroup/memory");
  EXPECT_EQ((*r)[0].super_options, (std::vector<std::string>{"rw", "memory"}));
  EXPECT_EQ((*r)[1].root, "/sub dir");
  EXPECT_EQ((*r)[1].mount_point, "/mnt/with space");
}

TEST(MountInfoTest, MalformedLinesAreCorruption) {
  for (const char* text : {"1 2 3\n", "34 30 0:31 / /x rw no-separator here\n",
                           "34 30 0:31 / /x rw -\n", "34 30 0:31 rel /x rw - ext4 /dev/a rw\n"}) {
    auto r = ParseMountInfo(text, "mi");
    EXPECT_TRUE(r.status().IsCorruption()) << text;
  }
}

TEST(FindMemoryCgroupTest, PrefersV2WhenItHasTheMemoryController) {
  FakeSystem fs;
  fs.MakeDir(fs.mnt("/user.slice/app.scope"));
  WriteFile(fs.mnt("/cgroup.controllers"), "cpuset cpu io memory pids\n");
  fs.SetCgroup("0::/user.slice/app.scope\n");
  fs.SetMountinfo("30 22 0:27 / " + fs.mnt("") + " rw - cgroup2 cgroup2 rw\n");
  auto r = FindMemoryCgroup(fs.proc());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->version, CgroupVersion::kV2);
  EXPECT_EQ(r->dir, fs.mnt("/user.slice/app.scope"));
  EXPECT_EQ(r->mount_point, fs.mnt(""));
  EXPECT_FALSE(r->is_root());
}

TEST(FindMemoryCgroupTest, HybridSystemUsesTheV1MemoryHierarchy) {
  // What this project's build machine looks like: cgroup2 mounted without controllers.
  FakeSystem fs;
  fs.MakeDir(fs.mnt("/memory/process_api/abc"));
  fs.MakeDir(fs.mnt("/unified"));
  WriteFile(fs.mnt("/unified/cgroup.controllers"), "hugetlb\n");
  fs.SetCgroup("9:name=systemd:/\n4:memory:/process_api/abc\n1:cpu:/\n0::/\n");
  fs.SetMountinfo("31 30 0:28 / " + fs.mnt("/cpu") + " rw,relatime - cgroup cgroup rw,cpu\n" +
                  "34 30 0:31 / " + fs.mnt("/memory") + " rw,relatime - cgroup cgroup rw,memory\n" +
                  "40 30 0:37 / " + fs.mnt("/unified") + " rw,relatime - cgroup2 cgroup2 rw\n");
  auto r = FindMemoryCgroup(fs.proc());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->version, CgroupVersion::kV1);
  EXPECT_EQ(r->dir, fs.mnt("/memory/process_api/abc"));
}

TEST(FindMemoryCgroupTest, ContainerMountOfASubtreeStripsTheMountRoot) {
  // Docker without a cgroup namespace: the mount's root is the container's own cgroup.
  FakeSystem fs;
  fs.MakeDir(fs.mnt("/memory/child"));
  fs.SetCgroup("5:memory:/docker/0123/child\n");
  fs.SetMountinfo("34 30 0:31 /docker/0123 " + fs.mnt("/memory") +
                  " ro - cgroup cgroup rw,memory\n");
  auto r = FindMemoryCgroup(fs.proc());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->dir, fs.mnt("/memory/child"));
}

TEST(FindMemoryCgroupTest, RootCgroupResolvesToTheMountPoint) {
  FakeSystem fs;
  fs.MakeDir(fs.mnt(""));
  WriteFile(fs.mnt("/cgroup.controllers"), "memory\n");
  fs.SetCgroup("0::/\n");
  fs.SetMountinfo("30 22 0:27 / " + fs.mnt("") + " rw - cgroup2 cgroup2 rw\n");
  auto r = FindMemoryCgroup(fs.proc());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->is_root());
}

TEST(FindMemoryCgroupTest, ClearErrorsWhenThereIsNoMemoryCgroup) {
  FakeSystem fs;
  fs.SetCgroup("1:cpu:/\n");
  fs.SetMountinfo("31 30 0:28 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n");
  auto r = FindMemoryCgroup(fs.proc());
  ASSERT_TRUE(r.status().IsNotFound());
  EXPECT_NE(r.status().message().find("no memory cgroup"), std::string::npos);

  FakeSystem missing;  // no files at all
  auto m = FindMemoryCgroup(missing.proc());
  ASSERT_TRUE(m.status().IsNotFound());
  EXPECT_NE(m.status().message().find(missing.proc() + "/self/cgroup"), std::string::npos);
}

TEST(FindMemoryCgroupTest, MissingCgroupDirectoryIsNotFoundWithThePath) {
  FakeSystem fs;
  fs.MakeDir(fs.mnt("/memory"));
  fs.SetCgroup("4:memory:/gone\n");
  fs.SetMountinfo("34 30 0:31 / " + fs.mnt("/memory") + " rw - cgroup cgroup rw,memory\n");
  auto r = FindMemoryCgroup(fs.proc());
  ASSERT_TRUE(r.status().IsNotFound());
  EXPECT_NE(r.status().message().find(fs.mnt("/memory/gone")), std::string::npos);
}

TEST(FindMemoryCgroupTest, LiveSystemHasAMemoryCgroupOrSaysWhy) {
  auto r = FindMemoryCgroup();
  if (!r.ok()) GTEST_SKIP() << r.status().ToString();
  struct stat st;
  EXPECT_EQ(::stat(r->dir.c_str(), &st), 0) << r->dir;
  EXPECT_EQ(r->dir.compare(0, r->mount_point.size(), r->mount_point), 0);
}

}  // namespace
}  // namespace dualblade
