#include "bench/cgroup_runner.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <vector>

#include "common/units.h"
#include "residency/memory_monitor.h"
#include "residency/residency_probe.h"
#include "testing/test_env.h"

namespace dualblade {
namespace {

#define DB_CGROUP_RUNNER_OR_SKIP()                                   \
  do {                                                               \
    if (auto why = CgroupRunnerUnavailableReason()) {                \
      GTEST_SKIP() << "cannot create memory cgroups here: " << *why; \
    }                                                                \
  } while (0)

bool DirExists(const std::string& path) {
  return ::access(path.c_str(), F_OK) == 0;
}

// Allocates BYTES of anonymous memory and writes every page, so it is really charged.
int TouchAnon(size_t bytes) {
  char* p = static_cast<char*>(
      ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (p == MAP_FAILED) return 2;
  for (size_t off = 0; off < bytes; off += 4096) p[off] = 1;
  ::munmap(p, bytes);
  return 0;
}

CgroupRunOptions Limit(uint64_t bytes) {
  CgroupRunOptions o;
  o.memory_limit_bytes = bytes;
  return o;
}

TEST(CgroupRunnerTest, ChildUnderTheLimitCompletesWithAPlausiblePeak) {
  DB_CGROUP_RUNNER_OR_SKIP();
  auto r = RunFunctionInMemoryCgroup(Limit(256 * kMiB), [] { return TouchAnon(64 * kMiB); });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::printf("%s\n", r->ToString().c_str());
  EXPECT_TRUE(r->exited) << r->ToString();
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_FALSE(r->oom_killed);
  EXPECT_EQ(r->limit_bytes, 256 * kMiB);
  EXPECT_GE(r->peak_bytes, 64 * kMiB) << r->ToString();
  EXPECT_LE(r->peak_bytes, 256 * kMiB) << r->ToString();
  EXPECT_FALSE(DirExists(r->cgroup_dir)) << r->cgroup_dir;
}

TEST(CgroupRunnerTest, SampledPeakAgreesWithTheKernelPeak) {
  // Kernels without memory.peak (v2 before 5.19) rely on sampling; check it where both exist.
  DB_CGROUP_RUNNER_OR_SKIP();
  CgroupRunOptions o = Limit(256 * kMiB);
  o.always_sample_peak = true;
  o.poll_interval_ms = 1;
  auto r = RunFunctionInMemoryCgroup(o, [] {
    char* p = static_cast<char*>(
        ::mmap(nullptr, 64 * kMiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (p == MAP_FAILED) return 2;
    for (size_t off = 0; off < 64 * kMiB; off += 4096) p[off] = 1;
    ::usleep(300'000);  // hold it long enough for several samples
    return 0;
  });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(r->peak_from_kernel);
  EXPECT_GE(r->sampled_peak_bytes, 64 * kMiB);
  EXPECT_LE(r->sampled_peak_bytes, r->peak_bytes);
}

TEST(CgroupRunnerTest, ChildOverTheLimitIsOomKilledAndReportedAsSuch) {
  DB_CGROUP_RUNNER_OR_SKIP();
  auto r = RunFunctionInMemoryCgroup(Limit(64 * kMiB), [] { return TouchAnon(512 * kMiB); });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::printf("%s\n", r->ToString().c_str());
  EXPECT_FALSE(r->exited) << r->ToString();
  EXPECT_EQ(r->term_signal, SIGKILL);
  EXPECT_TRUE(r->oom_killed) << r->ToString();
  EXPECT_GE(r->oom_kill_events, 1u);
  EXPECT_LE(r->peak_bytes, 64 * kMiB + 4 * kMiB) << r->ToString();
  EXPECT_FALSE(DirExists(r->cgroup_dir));
}

TEST(CgroupRunnerTest, PageCacheIsReclaimedInsteadOfKillingTheRun) {
  // Reading a file larger than the limit through the page cache must not OOM: the kernel
  // reclaims clean cache inside the cgroup. This is the pressure the KV page-cache path lives in.
  DB_CGROUP_RUNNER_OR_SKIP();
  testing::TempDir dir;
  const std::string file = dir.File("big");
  {
    std::vector<char> block(kMiB, 'x');
    std::ofstream out(file, std::ios::binary);
    for (int i = 0; i < 128; ++i)
      out.write(block.data(), static_cast<std::streamsize>(block.size()));
  }
  CgroupRunOptions o = Limit(48 * kMiB);
  o.drop_cache_paths = {file};
  auto r = RunFunctionInMemoryCgroup(o, [&file] {
    std::ifstream in(file, std::ios::binary);
    std::vector<char> buf(kMiB);
    size_t total = 0;
    while (in.read(buf.data(), static_cast<std::streamsize>(buf.size())) || in.gcount() > 0) {
      total += static_cast<size_t>(in.gcount());
    }
    return total == 128 * kMiB ? 0 : 3;
  });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::printf("%s\n", r->ToString().c_str());
  EXPECT_TRUE(r->exited) << r->ToString();
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_FALSE(r->oom_killed);
  EXPECT_LE(r->peak_bytes, 48 * kMiB);
  EXPECT_GE(r->peak_bytes, 8 * kMiB) << "the page cache was not charged to the run";
}

TEST(CgroupRunnerTest, ExitCodeAndCommandsAreReported) {
  DB_CGROUP_RUNNER_OR_SKIP();
  auto fn = RunFunctionInMemoryCgroup(Limit(64 * kMiB), [] { return 7; });
  ASSERT_TRUE(fn.ok()) << fn.status().ToString();
  EXPECT_EQ(fn->exit_code, 7);
  auto cmd = RunCommandInMemoryCgroup(Limit(64 * kMiB), {"/bin/sh", "-c", "exit 3"});
  ASSERT_TRUE(cmd.ok()) << cmd.status().ToString();
  EXPECT_TRUE(cmd->exited);
  EXPECT_EQ(cmd->exit_code, 3);
  EXPECT_FALSE(DirExists(cmd->cgroup_dir));
}

TEST(CgroupRunnerTest, TheCommandRunsInsideTheNewCgroup) {
  DB_CGROUP_RUNNER_OR_SKIP();
  testing::TempDir dir;
  const std::string out = dir.File("cgroup");
  auto r = RunCommandInMemoryCgroup(Limit(64 * kMiB),
                                    {"/bin/sh", "-c", "cat /proc/self/cgroup > " + out});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->exit_code, 0);
  std::ifstream in(out);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string leaf = r->cgroup_dir.substr(r->cgroup_dir.rfind('/'));
  EXPECT_NE(text.find(leaf), std::string::npos) << text;
}

TEST(CgroupRunnerTest, MissingProgramIsAClearError) {
  DB_CGROUP_RUNNER_OR_SKIP();
  auto r = RunCommandInMemoryCgroup(Limit(64 * kMiB), {"/nonexistent/dualblade-no-such-program"});
  ASSERT_TRUE(r.status().IsNotFound()) << r.status().ToString();
  EXPECT_NE(r.status().message().find("dualblade-no-such-program"), std::string::npos);
}

TEST(CgroupRunnerTest, TimeoutKillsTheRunAndLeftoverProcessesDoNotBlockRemoval) {
  DB_CGROUP_RUNNER_OR_SKIP();
  CgroupRunOptions o = Limit(64 * kMiB);
  o.timeout_ms = 200;
  auto r = RunFunctionInMemoryCgroup(o, [] {
    if (::fork() == 0) ::pause();  // a grandchild left behind in the cgroup
    ::pause();
    return 0;
  });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->timed_out);
  EXPECT_EQ(r->term_signal, SIGKILL);
  EXPECT_FALSE(r->oom_killed);
  EXPECT_FALSE(DirExists(r->cgroup_dir));

  // Without a timeout: the child exits, its grandchild keeps running until the cleanup.
  auto g = RunFunctionInMemoryCgroup(Limit(64 * kMiB), [] {
    if (::fork() == 0) ::pause();
    return 0;
  });
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(g->exit_code, 0);
  EXPECT_FALSE(DirExists(g->cgroup_dir));
}

TEST(CgroupRunnerTest, DropCachePathsStartTheRunCold) {
  DB_CGROUP_RUNNER_OR_SKIP();
  testing::TempDir dir;
  const std::string file = dir.File("store");
  {
    std::vector<char> block(kMiB, 's');
    std::ofstream out(file, std::ios::binary);
    for (int i = 0; i < 8; ++i) out.write(block.data(), static_cast<std::streamsize>(block.size()));
  }
  {
    std::ifstream in(file, std::ios::binary);  // warm it
    std::vector<char> buf(8 * kMiB);
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
  }
  auto probe = ResidencyProbe::Open(file);
  ASSERT_TRUE(probe.ok()) << probe.status().ToString();
  ASSERT_GT(probe->Probe(0, 0)->resident_bytes, 0u);
  CgroupRunOptions o = Limit(64 * kMiB);
  o.drop_cache_paths = {file};
  auto r = RunFunctionInMemoryCgroup(o, [] { return 0; });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(probe->Probe(0, 0)->resident_bytes, 0u);
}

TEST(CgroupRunnerTest, MemoryMonitorInsideTheRunSeesTheRunsLimit) {
  // End to end: the monitor's cgroup discovery finds the cgroup the runner made.
  DB_CGROUP_RUNNER_OR_SKIP();
  auto r = RunFunctionInMemoryCgroup(Limit(96 * kMiB), [] {
    auto m = MemoryMonitor::OpenSystem(MemoryMonitorOptions{});
    if (!m.ok()) return 10;
    auto reading = (*m)->Sample();
    if (!reading.ok()) return 11;
    if (!reading->has_cgroup || reading->limit_source != LimitSource::kCgroup) return 12;
    if (reading->limit_bytes != 96 * kMiB) return 13;
    if (reading->kv_headroom_bytes >= 96 * kMiB) return 14;
    return 0;
  });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->exit_code, 0) << r->ToString();
}

TEST(CgroupRunnerTest, ReportsReachTheParentWhateverTheirSize) {
  DB_CGROUP_RUNNER_OR_SKIP();
  for (size_t bytes : {size_t{0}, size_t{100}, size_t{1} << 20}) {  // 1 MiB: many pipe buffers
    auto r = RunFunctionInMemoryCgroupWithReport(Limit(64 * kMiB), [bytes](std::string* report) {
      for (size_t i = 0; i < bytes; ++i) report->push_back(static_cast<char>('a' + i % 26));
      return 0;
    });
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->exit_code, 0);
    ASSERT_EQ(r->child_report.size(), bytes);
    for (size_t i = 0; i < bytes; i += 4099) ASSERT_EQ(r->child_report[i], 'a' + i % 26);
  }
  // An OOM-killed child reports nothing, and the parent does not wait for it.
  auto oom = RunFunctionInMemoryCgroupWithReport(Limit(32 * kMiB), [](std::string* report) {
    *report = "never sent";
    return TouchAnon(256 * kMiB);
  });
  ASSERT_TRUE(oom.ok()) << oom.status().ToString();
  EXPECT_TRUE(oom->oom_killed);
  EXPECT_TRUE(oom->child_report.empty());
}

TEST(CgroupRunnerTest, BadOptionsAreRejected) {
  auto r = RunFunctionInMemoryCgroup(Limit(0), [] { return 0; });
  EXPECT_TRUE(r.status().IsInvalidArgument());
  auto e = RunCommandInMemoryCgroup(Limit(kMiB), {});
  EXPECT_TRUE(e.status().IsInvalidArgument());
  testing::TempDir dir;
  CgroupRunOptions o = Limit(64 * kMiB);
  o.parent_dir = dir.path();
  auto p = RunFunctionInMemoryCgroup(o, [] { return 0; });
  ASSERT_TRUE(p.status().IsInvalidArgument());
  EXPECT_NE(p.status().message().find(dir.path()), std::string::npos);
  o.parent_dir = "";
  o.drop_cache_paths = {dir.File("missing")};
  auto d = RunFunctionInMemoryCgroup(o, [] { return 0; });
  ASSERT_TRUE(d.status().IsNotFound());
  EXPECT_NE(d.status().message().find(dir.File("missing")), std::string::npos);
}

}  // namespace
}  // namespace dualblade
