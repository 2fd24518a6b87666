#include "bench/cpu_stats.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

namespace dualblade {
namespace {

// A 6.x kernel's /proc/stat head, two CPUs (guest fields present).
constexpr char kStat[] =
    "cpu  1000 20 300 5000 40 0 60 80 0 0\n"
    "cpu0 500 10 150 2500 20 0 30 40 0 0\n"
    "cpu1 500 10 150 2500 20 0 30 40 0 0\n"
    "intr 12345 0 0\n"
    "ctxt 99\n";

TEST(CpuStatsTest, ParsesTheAggregateLineAndCountsTheCpus) {
  auto s = ParseProcStatCpu(kStat, "/proc/stat");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->user, 1000u);
  EXPECT_EQ(s->nice, 20u);
  EXPECT_EQ(s->system, 300u);
  EXPECT_EQ(s->idle, 5000u);
  EXPECT_EQ(s->iowait, 40u);
  EXPECT_EQ(s->softirq, 60u);
  EXPECT_EQ(s->steal, 80u);
  EXPECT_EQ(s->cpus, 2u);
  EXPECT_EQ(s->busy(), 1000u + 20 + 300 + 60);
  EXPECT_EQ(s->total(), 1000u + 20 + 300 + 5000 + 40 + 60 + 80);
}

TEST(CpuStatsTest, MalformedTextIsCorruptionNamingTheFile) {
  auto none = ParseProcStatCpu("intr 1 2\n", "/x/stat");
  ASSERT_FALSE(none.ok());
  EXPECT_TRUE(none.status().IsCorruption());
  EXPECT_NE(none.status().message().find("/x/stat"), std::string::npos);
  auto short_line = ParseProcStatCpu("cpu 1 2 3 4\n", "/x/stat");
  ASSERT_FALSE(short_line.ok());
  EXPECT_NE(short_line.status().message().find("4 numbers"), std::string::npos);
  auto word = ParseProcStatCpu("cpu 1 2 x 4 5 6 7 8\n", "/x/stat");
  ASSERT_FALSE(word.ok());
  EXPECT_NE(word.status().message().find("'x'"), std::string::npos);
}

TEST(CpuStatsTest, DiffTakesFractionsOfTheTimeTheCpusWereThere) {
  CpuSample a, b;
  a.wall_ns = 1'000'000'000;
  b.wall_ns = 1'500'000'000;
  a.process_cpu_ns = 100'000'000;
  b.process_cpu_ns = 350'000'000;
  ProcStatCpu m0, m1;
  m1.cpus = 2;
  m1.user = 60;   // busy 60 + 15 = 75
  m1.softirq = 15;
  m1.idle = 15;
  m1.steal = 10;  // total 100
  a.machine = m0;
  b.machine = m1;
  CpuUsage u = DiffCpu(a, b);
  EXPECT_DOUBLE_EQ(u.wall_ms, 500);
  EXPECT_DOUBLE_EQ(u.process_cpu_ms, 250);
  ASSERT_TRUE(u.has_machine);
  EXPECT_EQ(u.cpus, 2u);
  EXPECT_DOUBLE_EQ(u.steal_fraction, 0.10);
  EXPECT_DOUBLE_EQ(u.busy_fraction, 75.0 / 90.0);
  // A counter that went backwards (or a sample without /proc/stat) gives no machine figures.
  b.machine.reset();
  EXPECT_FALSE(DiffCpu(a, b).has_machine);
  EXPECT_DOUBLE_EQ(DiffCpu(b, a).process_cpu_ms, 0);
}

TEST(CpuStatsTest, ALiveSampleSeesThisProcessSpin) {
  const CpuSample a = SampleCpu();
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(60);
  volatile uint64_t x = 0;
  while (std::chrono::steady_clock::now() < until) x = x + 1;
  const CpuUsage u = DiffCpu(a, SampleCpu());
  EXPECT_GE(u.wall_ms, 60);
  // A descheduled spin loses some of its wall time; most of it is the process's CPU time.
  EXPECT_GE(u.process_cpu_ms, 20);
  EXPECT_LE(u.process_cpu_ms, u.wall_ms * 4);
  ASSERT_TRUE(u.has_machine) << "/proc/stat is readable on every Linux this runs on";
  EXPECT_GE(u.cpus, 1u);
  EXPECT_GT(u.busy_fraction, 0);
  EXPECT_LE(u.busy_fraction, 1);
}

}  // namespace
}  // namespace dualblade
