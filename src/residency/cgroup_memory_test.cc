#include "residency/cgroup_memory.h"

#include <gtest/gtest.h>

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

constexpr const char* kV2Stat =
    "anon 104857600\nfile 52428800\nkernel 1048576\nkernel_stack 16384\npagetables 32768\n"
    "sock 0\nshmem 4096\nfile_mapped 8192\nfile_dirty 12288\nfile_writeback 4096\n"
    "inactive_anon 100000000\nactive_anon 4857600\ninactive_file 40000000\n"
    "active_file 12428800\nunevictable 0\nslab 900000\npgfault 12345\n";

constexpr const char* kV1Stat =
    "cache 1019904\nrss 1699840\nrss_huge 0\nshmem 0\nmapped_file 12288\ndirty 20480\n"
    "writeback 0\ninactive_anon 1609728\nactive_anon 12288\ninactive_file 20480\n"
    "active_file 999424\nunevictable 0\nhierarchical_memory_limit 268435456\n"
    "total_cache 2019904\ntotal_rss 2699840\ntotal_shmem 0\ntotal_mapped_file 12288\n"
    "total_dirty 40960\ntotal_writeback 4096\ntotal_inactive_file 30480\n"
    "total_active_file 1989424\n";

// A v2 hierarchy: mount/parent (memory.max 256M) / child (memory.max max).
struct V2Fixture {
  TempDir tmp;
  std::string mount = tmp.path() + "/cg";
  std::string dir = mount + "/parent/child";
  V2Fixture() {
    WriteFile(mount + "/parent/memory.max", "268435456\n");
    WriteFile(dir + "/memory.max", "max\n");
    WriteFile(dir + "/memory.current", "160000000\n");
    WriteFile(dir + "/memory.stat", kV2Stat);
    WriteFile(dir + "/memory.events",
              "low 0\nhigh 0\nmax 7\noom 2\noom_kill 1\noom_group_kill 0\n");
    WriteFile(dir + "/memory.peak", "200000000\n");
  }
  MemoryCgroup cg() const { return {CgroupVersion::kV2, dir, mount}; }
};

struct V1Fixture {
  TempDir tmp;
  std::string mount = tmp.path() + "/memory";
  std::string dir = mount + "/a";
  V1Fixture() {
    WriteFile(dir + "/memory.limit_in_bytes", "9223372036854771712\n");
    WriteFile(dir + "/memory.usage_in_bytes", "3973120\n");
    WriteFile(dir + "/memory.max_usage_in_bytes", "9121792\n");
    WriteFile(dir + "/memory.stat", kV1Stat);
    WriteFile(dir + "/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n");
  }
  MemoryCgroup cg() const { return {CgroupVersion::kV1, dir, mount}; }
};

TEST(CgroupLimitTest, MaxAndHugeValuesMeanUnlimited) {
  EXPECT_EQ(*ParseCgroupLimit(CgroupVersion::kV2, "max\n", "f"), kUnlimitedBytes);
  EXPECT_EQ(*ParseCgroupLimit(CgroupVersion::kV2, "1048576\n", "f"), 1048576u);
  EXPECT_EQ(*ParseCgroupLimit(CgroupVersion::kV1, "9223372036854771712\n", "f"), kUnlimitedBytes);
  EXPECT_EQ(*ParseCgroupLimit(CgroupVersion::kV1, "104857600", "f"), 104857600u);
  // "max" is v2 syntax only.
  EXPECT_TRUE(ParseCgroupLimit(CgroupVersion::kV1, "max", "f").status().IsCorruption());
  auto bad = ParseCgroupLimit(CgroupVersion::kV2, "lots", "/cg/memory.max");
  ASSERT_TRUE(bad.status().IsCorruption());
  EXPECT_NE(bad.status().message().find("/cg/memory.max"), std::string::npos);
  EXPECT_TRUE(ParseCgroupLimit(CgroupVersion::kV2, "", "f").status().IsCorruption());
  EXPECT_TRUE(ParseCgroupLimit(CgroupVersion::kV2, "-1", "f").status().IsCorruption());
  EXPECT_TRUE(
      ParseCgroupLimit(CgroupVersion::kV2, "99999999999999999999999", "f").status().IsCorruption());
}

TEST(CgroupStatTest, V2KeysMapToFields) {
  auto r = ParseCgroupMemoryStat(CgroupVersion::kV2, kV2Stat, "s");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->anon_bytes, 104857600u);
  EXPECT_EQ(r->file_bytes, 52428800u);
  EXPECT_EQ(r->kernel_bytes, 1048576u);
  EXPECT_EQ(r->file_dirty_bytes, 12288u);
  EXPECT_EQ(r->file_writeback_bytes, 4096u);
  EXPECT_EQ(r->inactive_file_bytes, 40000000u);
  EXPECT_EQ(r->active_file_bytes, 12428800u);
  EXPECT_EQ(r->hierarchical_limit_bytes, kUnlimitedBytes);
}

TEST(CgroupStatTest, V2WithoutKernelKeySumsItsParts) {
  auto r = ParseCgroupMemoryStat(
      CgroupVersion::kV2, "anon 1\nfile 2\nkernel_stack 10\npagetables 20\nsock 30\nslab 40\n",
      "s");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->kernel_bytes, 100u);
}

TEST(CgroupStatTest, V1PrefersHierarchicalTotals) {
  auto r = ParseCgroupMemoryStat(CgroupVersion::kV1, kV1Stat, "s");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->anon_bytes, 2699840u);
  EXPECT_EQ(r->file_bytes, 2019904u);
  EXPECT_EQ(r->file_dirty_bytes, 40960u);
  EXPECT_EQ(r->active_file_bytes, 1989424u);
  // No total_active_anon in the fixture: the plain key fills in.
  EXPECT_EQ(r->active_anon_bytes, 12288u);
  EXPECT_EQ(r->hierarchical_limit_bytes, 268435456u);
}

TEST(CgroupStatTest, GarbageAndMissingKeysAreCorruption) {
  auto r = ParseCgroupMemoryStat(CgroupVersion::kV2, "anon 1\nfile x\n", "/cg/memory.stat");
  ASSERT_TRUE(r.status().IsCorruption());
  EXPECT_NE(r.status().message().find("/cg/memory.stat"), std::string::npos);
  EXPECT_NE(r.status().message().find("file x"), std::string::npos);
  EXPECT_TRUE(
      ParseCgroupMemoryStat(CgroupVersion::kV2, "anon 1 2\nfile 3\n", "s").status().IsCorruption());
  EXPECT_TRUE(ParseCgroupMemoryStat(CgroupVersion::kV2, "anon 1\n", "s").status().IsCorruption());
  EXPECT_TRUE(ParseCgroupMemoryStat(CgroupVersion::kV1, "rss 1\n", "s").status().IsCorruption());
  EXPECT_TRUE(ParseCgroupMemoryStat(CgroupVersion::kV1, "", "s").status().IsCorruption());
}

TEST(CgroupOomTest, V2EventsAndV1OomControl) {
  auto v2 =
      ParseCgroupOomCounters(CgroupVersion::kV2, "low 0\nhigh 0\nmax 3\noom 2\noom_kill 1\n", "e");
  ASSERT_TRUE(v2.ok());
  EXPECT_EQ(v2->oom_events, 2u);
  EXPECT_EQ(v2->oom_kill_events, 1u);
  EXPECT_TRUE(v2->has_oom_kill);
  auto v1 = ParseCgroupOomCounters(CgroupVersion::kV1, "oom_kill_disable 0\nunder_oom 1\n", "o");
  ASSERT_TRUE(v1.ok());
  EXPECT_FALSE(v1->has_oom_kill);  // a kernel before 4.13
  EXPECT_TRUE(v1->under_oom);
  EXPECT_TRUE(
      ParseCgroupOomCounters(CgroupVersion::kV2, "oom many\n", "e").status().IsCorruption());
}

TEST(CgroupMemoryReaderTest, V2FixtureTakesTheSmallestAncestorLimit) {
  V2Fixture f;
  auto r = ReadCgroupMemory(f.cg());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->limit_bytes, 268435456u);  // the child says "max", the parent 256 MiB
  EXPECT_EQ(r->usage_bytes, 160000000u);
  ASSERT_TRUE(r->peak_bytes.has_value());
  EXPECT_EQ(*r->peak_bytes, 200000000u);
  EXPECT_EQ(r->oom.oom_kill_events, 1u);
  EXPECT_EQ(r->stat.anon_bytes, 104857600u);
}

TEST(CgroupMemoryReaderTest, V1FixtureUsesTheHierarchicalLimit) {
  V1Fixture f;
  auto r = ReadCgroupMemory(f.cg());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->limit_bytes, 268435456u);  // own limit unlimited, an ancestor's 256 MiB
  EXPECT_EQ(r->usage_bytes, 3973120u);
  EXPECT_EQ(*r->peak_bytes, 9121792u);
  EXPECT_EQ(r->oom.oom_kill_events, 3u);
  EXPECT_EQ(r->stat.anon_bytes, 2699840u);
}

TEST(CgroupMemoryReaderTest, OptionalFilesMayBeMissing) {
  V2Fixture f;
  std::filesystem::remove(f.dir + "/memory.peak");
  std::filesystem::remove(f.dir + "/memory.events");
  auto r = ReadCgroupMemory(f.cg());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->peak_bytes.has_value());
  EXPECT_FALSE(r->oom.has_oom_kill);
}

TEST(CgroupMemoryReaderTest, MissingRequiredFileIsNotFoundWithThePath) {
  V2Fixture f;
  std::filesystem::remove(f.dir + "/memory.current");
  auto r = ReadCgroupMemory(f.cg());
  ASSERT_TRUE(r.status().IsNotFound());
  EXPECT_NE(r.status().message().find(f.dir + "/memory.current"), std::string::npos);
}

TEST(CgroupMemoryReaderTest, GarbageInAFileIsCorruptionWithThePath) {
  V1Fixture f;
  WriteFile(f.dir + "/memory.usage_in_bytes", "twelve\n");
  auto r = ReadCgroupMemory(f.cg());
  ASSERT_TRUE(r.status().IsCorruption());
  EXPECT_NE(r.status().message().find(f.dir + "/memory.usage_in_bytes"), std::string::npos);
}

TEST(CgroupMemoryReaderTest, PersistentReaderSeesUpdatedValues) {
  V2Fixture f;
  auto reader = CgroupMemoryReader::Open(f.cg());
  ASSERT_TRUE(reader.ok());
  CgroupMemoryState st;
  ASSERT_TRUE(reader->Sample(&st).ok());
  EXPECT_EQ(st.usage_bytes, 160000000u);
  // Rewrite in place (same inode, as the kernel does) and sample again through the same fd.
  { std::ofstream(f.dir + "/memory.current", std::ios::in | std::ios::out) << "170000000\n"; }
  ASSERT_TRUE(reader->Sample(&st).ok());
  EXPECT_EQ(st.usage_bytes, 170000000u);
}

TEST(CgroupMemoryReaderTest, LiveCgroupReadsPlausibleValues) {
  auto cg = FindMemoryCgroup();
  if (!cg.ok()) GTEST_SKIP() << cg.status().ToString();
  auto r = ReadCgroupMemory(*cg);
  if (r.status().IsNotFound()) GTEST_SKIP() << r.status().ToString();  // a v2 root cgroup
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_GT(r->usage_bytes, 0u);
  EXPECT_GT(r->limit_bytes, 0u);
  EXPECT_LE(r->stat.anon_bytes, r->usage_bytes + (64u << 20));
}

}  // namespace
}  // namespace dualblade
