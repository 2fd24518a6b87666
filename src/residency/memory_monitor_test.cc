#include "residency/memory_monitor.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/units.h"
#include "residency/scripted_memory_source.h"
#include "testing/test_env.h"

namespace dualblade {
namespace {

constexpr uint64_t kTotal = 16 * kGiB;

MemoryMonitorOptions Margin(uint64_t margin_bytes, uint64_t budget_bytes = 0) {
  MemoryMonitorOptions o;
  o.safety_margin_bytes = margin_bytes;
  o.budget_bytes = budget_bytes;
  return o;
}

TEST(ComputeMemoryReadingTest, CgroupLimitBindsAndHeadroomSubtractsPinnedMemory) {
  auto s = ScriptedMemorySource::CgroupSample(1 * kGiB, 300 * kMiB, 500 * kMiB, kTotal, 12 * kGiB,
                                              20 * kMiB);
  MemoryReading r = ComputeMemoryReading(s, {}, Margin(32 * kMiB));
  EXPECT_EQ(r.limit_bytes, 1 * kGiB);
  EXPECT_EQ(r.limit_source, LimitSource::kCgroup);
  EXPECT_EQ(r.kernel_bytes, 20 * kMiB);
  EXPECT_EQ(r.pinned_bytes, 320 * kMiB);
  // The 500 MiB of file cache is what KV may keep: it is not subtracted.
  EXPECT_EQ(r.kv_headroom_bytes, 1 * kGiB - 320 * kMiB - 32 * kMiB);
}

TEST(ComputeMemoryReadingTest, BudgetBindsWhenBelowTheCgroupLimit) {
  auto s = ScriptedMemorySource::CgroupSample(4 * kGiB, 100 * kMiB, 0, kTotal, 12 * kGiB);
  MemoryReading r = ComputeMemoryReading(s, {}, Margin(0, 512 * kMiB));
  EXPECT_EQ(r.limit_bytes, 512 * kMiB);
  EXPECT_EQ(r.limit_source, LimitSource::kBudget);
  EXPECT_EQ(r.cgroup_limit_bytes, 4 * kGiB);
  EXPECT_TRUE(r.confined_by_cgroup);
  EXPECT_EQ(r.kv_headroom_bytes, 412 * kMiB);
}

TEST(ComputeMemoryReadingTest, UnlimitedCgroupCountsTheProcessNotItsNeighbours) {
  // A shared slice with 6 GiB of other tenants' anon memory; the process itself has 300 MiB.
  auto s = ScriptedMemorySource::CgroupSample(kUnlimitedBytes, 6 * kGiB, 0, kTotal, 8 * kGiB);
  s.process_resident_bytes = 400 * kMiB;
  s.process_shared_bytes = 100 * kMiB;
  MemoryReading r = ComputeMemoryReading(s, {}, Margin(0, 1 * kGiB));
  EXPECT_FALSE(r.confined_by_cgroup);
  EXPECT_EQ(r.cgroup_limit_bytes, kUnlimitedBytes);
  EXPECT_EQ(r.anon_bytes, 300 * kMiB);
  EXPECT_EQ(r.kv_headroom_bytes, 1 * kGiB - 300 * kMiB);
}

TEST(ComputeMemoryReadingTest, MemTotalBindsWithoutCgroupOrBudgetAndMemAvailableCaps) {
  auto s = ScriptedMemorySource::ProcessSample(2 * kGiB, 1 * kGiB, 8 * kGiB, 3 * kGiB);
  MemoryReading r = ComputeMemoryReading(s, {}, Margin(0));
  EXPECT_EQ(r.limit_source, LimitSource::kMemTotal);
  EXPECT_EQ(r.anon_bytes, 1 * kGiB);  // resident - shared
  // 8 GiB - 1 GiB anon = 7 GiB by the limit, but only 3 GiB is available on the machine.
  EXPECT_EQ(r.kv_headroom_bytes, 3 * kGiB);
}

TEST(ComputeMemoryReadingTest, AnonReservesCountOnceAgainstMeasuredAnon) {
  auto s = ScriptedMemorySource::CgroupSample(2 * kGiB, 600 * kMiB, 0, kTotal, 12 * kGiB);
  // Declared 1 GiB, only 600 MiB allocated yet: the reservation wins.
  MemoryReading r = ComputeMemoryReading(s, {1 * kGiB, 0}, Margin(0));
  EXPECT_EQ(r.pinned_bytes, 1 * kGiB);
  EXPECT_EQ(r.kv_headroom_bytes, 1 * kGiB);
  // Declared 400 MiB, 600 MiB measured (allocator overhead, undeclared buffers): measured wins.
  r = ComputeMemoryReading(s, {400 * kMiB, 0}, Margin(0));
  EXPECT_EQ(r.pinned_bytes, 600 * kMiB);
}

TEST(ComputeMemoryReadingTest, FileBackedReservesAreAddedToPinned) {
  // Mapped weights live in the page cache, indistinguishable from KV pages by measurement.
  auto s = ScriptedMemorySource::CgroupSample(2 * kGiB, 200 * kMiB, 900 * kMiB, kTotal, 12 * kGiB);
  MemoryReading r = ComputeMemoryReading(s, {0, 700 * kMiB}, Margin(0));
  EXPECT_EQ(r.pinned_bytes, 900 * kMiB);
  EXPECT_EQ(r.kv_headroom_bytes, 2 * kGiB - 900 * kMiB);
}

TEST(ComputeMemoryReadingTest, HeadroomIsNeverNegative) {
  auto s = ScriptedMemorySource::CgroupSample(256 * kMiB, 300 * kMiB, 0, kTotal, 12 * kGiB);
  MemoryReading r = ComputeMemoryReading(s, {1 * kGiB, 1 * kGiB}, Margin(64 * kMiB));
  EXPECT_EQ(r.kv_headroom_bytes, 0u);
  auto tight = ScriptedMemorySource::CgroupSample(4 * kGiB, 0, 0, kTotal, 10 * kMiB);
  EXPECT_EQ(ComputeMemoryReading(tight, {}, Margin(64 * kMiB)).kv_headroom_bytes, 0u);
}

TEST(ComputeMemoryReadingTest, AutoMarginScalesWithTheLimit) {
  auto s = ScriptedMemorySource::CgroupSample(1 * kGiB, 0, 0, kTotal, 12 * kGiB);
  EXPECT_EQ(ComputeMemoryReading(s, {}, MemoryMonitorOptions{}).safety_margin_bytes, 32 * kMiB);
  auto small = ScriptedMemorySource::CgroupSample(128 * kMiB, 0, 0, kTotal, 12 * kGiB);
  EXPECT_EQ(ComputeMemoryReading(small, {}, MemoryMonitorOptions{}).safety_margin_bytes, 8 * kMiB);
}

TEST(ComputeMemoryReadingTest, PressureIsCarriedThrough) {
  auto s = ScriptedMemorySource::CgroupSample(1 * kGiB, 0, 0, kTotal, 12 * kGiB);
  s.has_pressure = true;
  s.pressure.some.avg10 = 12.5;
  s.pressure.full.avg10 = 3.25;
  s.pressure.some.total_us = 777;
  MemoryReading r = ComputeMemoryReading(s, {}, Margin(0));
  EXPECT_TRUE(r.has_pressure);
  EXPECT_DOUBLE_EQ(r.psi_some_avg10, 12.5);
  EXPECT_DOUBLE_EQ(r.psi_full_avg10, 3.25);
  EXPECT_EQ(r.psi_some_total_us, 777u);
}

TEST(MemoryMonitorTest, ReservationsChangeTheNextReading) {
  auto src = std::make_unique<ScriptedMemorySource>();
  src->Push(ScriptedMemorySource::CgroupSample(1 * kGiB, 100 * kMiB, 0, kTotal, 12 * kGiB));
  MemoryMonitor m(std::move(src), Margin(0));
  auto r = m.Sample();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->kv_headroom_bytes, 924 * kMiB);
  m.Reserve("weights", 300 * kMiB);
  m.Reserve("staging", 100 * kMiB);
  m.Reserve("weights-mmap", 50 * kMiB, ReserveKind::kFileBacked);
  EXPECT_EQ(m.reserve_totals().anon_bytes, 400 * kMiB);
  EXPECT_EQ(m.reserve_totals().file_bytes, 50 * kMiB);
  EXPECT_EQ(m.Sample()->kv_headroom_bytes, 1 * kGiB - 450 * kMiB);
  m.Reserve("staging", 200 * kMiB);  // replaces, does not add
  EXPECT_EQ(m.reserved_bytes("staging"), 200 * kMiB);
  EXPECT_EQ(m.Sample()->kv_headroom_bytes, 1 * kGiB - 550 * kMiB);
  m.Release("staging");
  m.Release("never-declared");
  EXPECT_EQ(m.Sample()->kv_headroom_bytes, 1 * kGiB - 350 * kMiB);
}

TEST(MemoryMonitorTest, ScriptedReadingsArriveInOrderAndErrorsKeepTheLastReading) {
  auto src = std::make_unique<ScriptedMemorySource>();
  ScriptedMemorySource* script = src.get();
  script->Push(ScriptedMemorySource::CgroupSample(1 * kGiB, 0, 0, kTotal, 12 * kGiB));
  script->PushError(Status::IOError("read /sys/fs/cgroup/x/memory.stat: injected"));
  script->Push(ScriptedMemorySource::CgroupSample(512 * kMiB, 0, 0, kTotal, 12 * kGiB));
  MemoryMonitor m(std::move(src), Margin(0));
  EXPECT_EQ(m.Sample()->limit_bytes, 1 * kGiB);
  auto err = m.Sample();
  EXPECT_TRUE(err.status().IsIOError());
  EXPECT_EQ(m.last().limit_bytes, 1 * kGiB);
  EXPECT_EQ(m.Sample()->limit_bytes, 512 * kMiB);
  EXPECT_EQ(m.Sample()->limit_bytes, 512 * kMiB);  // the last step repeats
  EXPECT_EQ(script->samples_taken(), 4u);
}

// Counts which kind of sample the monitor asks for.
class CountingSource final : public MemorySource {
 public:
  Status Sample(MemorySample* out) override {
    ++full;
    *out = ScriptedMemorySource::CgroupSample(1 * kGiB, 100 * kMiB, 0, kTotal, 12 * kGiB);
    return Status::OK();
  }
  Status SampleFast(MemorySample* inout) override {
    ++fast;
    inout->cgroup.limit_bytes = 512 * kMiB;  // a limit lowered between full samples
    return Status::OK();
  }
  std::string Describe() const override { return "counting"; }
  int full = 0, fast = 0;
};

TEST(MemoryMonitorTest, FullSamplesAreRateLimitedAndCountersStayFresh) {
  auto src = std::make_unique<CountingSource>();
  CountingSource* counts = src.get();
  MemoryMonitorOptions o = Margin(0);
  o.full_sample_interval_ns = 3600'000'000'000ull;  // an hour: only the first is full
  MemoryMonitor m(std::move(src), o);
  EXPECT_EQ(m.Sample()->limit_bytes, 1 * kGiB);
  EXPECT_EQ(m.Sample()->limit_bytes, 512 * kMiB);  // the fast path saw the new limit
  EXPECT_EQ(m.Sample()->kv_headroom_bytes, 412 * kMiB);
  EXPECT_EQ(counts->full, 1);
  EXPECT_EQ(counts->fast, 2);
  ASSERT_TRUE(m.SampleFull().ok());
  EXPECT_EQ(counts->full, 2);
  EXPECT_EQ(m.full_samples(), 2u);
  EXPECT_EQ(m.fast_samples(), 2u);
}

TEST(MemoryMonitorTest, ZeroIntervalMeansEverySampleIsFull) {
  auto src = std::make_unique<CountingSource>();
  CountingSource* counts = src.get();
  MemoryMonitorOptions o = Margin(0);
  o.full_sample_interval_ns = 0;
  MemoryMonitor m(std::move(src), o);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(m.Sample().ok());
  EXPECT_EQ(counts->full, 3);
  EXPECT_EQ(counts->fast, 0);
}

// A whole fake /proc and cgroup tree in a TempDir, read by the real SystemMemorySource.
TEST(SystemMemorySourceTest, ReadsAFixtureSystem) {
  testing::TempDir tmp;
  auto write = [&](const std::string& rel, const std::string& text) {
    std::string p = tmp.path() + rel;
    std::filesystem::create_directories(std::filesystem::path(p).parent_path());
    std::ofstream(p) << text;
  };
  const std::string mnt = tmp.path() + "/cg";
  write("/proc/self/cgroup", "4:memory:/job\n0::/\n");
  write("/proc/self/mountinfo", "34 30 0:31 / " + mnt + " rw - cgroup cgroup rw,memory\n");
  write("/proc/self/statm", "100000 5000 1000 10 0 3000 0\n");
  write("/proc/meminfo", "MemTotal: 8388608 kB\nMemFree: 4194304 kB\nMemAvailable: 6291456 kB\n");
  write("/proc/pressure/memory",
        "some avg10=4.00 avg60=1.00 avg300=0.00 total=99\nfull avg10=1.50 avg60=0.00 "
        "avg300=0.00 total=9\n");
  write("/cg/job/memory.limit_in_bytes", "1073741824\n");
  write("/cg/job/memory.usage_in_bytes", "524288000\n");
  write("/cg/job/memory.stat", "cache 209715200\nrss 262144000\n");
  write("/cg/job/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n");
  SystemMemorySourceOptions o;
  o.proc_root = tmp.path() + "/proc";
  auto src = SystemMemorySource::Open(o);
  ASSERT_TRUE(src.ok()) << src.status().ToString();
  MemorySample s;
  ASSERT_TRUE((*src)->Sample(&s).ok());
  EXPECT_TRUE(s.has_cgroup);
  EXPECT_EQ(s.cgroup_version, CgroupVersion::kV1);
  EXPECT_EQ(s.process_resident_bytes, 5000u * ::sysconf(_SC_PAGESIZE));
  MemoryReading r = ComputeMemoryReading(s, {}, Margin(0, 2 * kGiB));
  EXPECT_EQ(r.limit_bytes, 1 * kGiB);
  EXPECT_EQ(r.limit_source, LimitSource::kCgroup);
  EXPECT_EQ(r.kernel_bytes, 524288000u - 209715200u - 262144000u);
  // A counters-only sample sees a new usage and keeps the breakdown.
  write("/cg/job/memory.usage_in_bytes", "600000000\n");
  ASSERT_TRUE((*src)->SampleFast(&s).ok());
  EXPECT_EQ(s.cgroup.usage_bytes, 600000000u);
  EXPECT_EQ(s.cgroup.stat.non_lru_bytes, 524288000u - 209715200u - 262144000u);
  EXPECT_EQ(r.kv_headroom_bytes, 1 * kGiB - 524288000u + 209715200u);
  EXPECT_EQ(r.oom_kill_events, 2u);
  EXPECT_DOUBLE_EQ(r.psi_some_avg10, 4.0);
  EXPECT_NE((*src)->Describe().find(mnt + "/job"), std::string::npos);

  // Garbage appearing later is reported with the file's path.
  write("/proc/self/statm", "garbage\n");
  Status st = (*src)->Sample(&s);
  EXPECT_TRUE(st.IsCorruption());
  EXPECT_NE(st.message().find("statm"), std::string::npos);
}

TEST(SystemMemorySourceTest, LiveMachineSeesOwnAllocation) {
  SystemMemorySourceOptions o;
  o.use_cgroup = false;  // the process's own figures, not shared with anyone
  auto src = SystemMemorySource::Open(o);
  ASSERT_TRUE(src.ok()) << src.status().ToString();
  MemoryMonitor m(std::move(src).value(), Margin(0));
  auto before = m.Sample();
  ASSERT_TRUE(before.ok()) << before.status().ToString();
  const size_t kBytes = 64 * kMiB;
  void* p = ::mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  std::memset(p, 1, kBytes);
  auto after = m.Sample();
  ::munmap(p, kBytes);
  ASSERT_TRUE(after.ok());
  EXPECT_GE(after->anon_bytes, before->anon_bytes + 60 * kMiB);
  EXPECT_GT(after->mem_total_bytes, 0u);
  EXPECT_LE(after->kv_headroom_bytes, after->available_bytes);
}

TEST(SystemMemorySourceTest, LiveMachineWithCgroup) {
  auto m = MemoryMonitor::OpenSystem(Margin(MemoryMonitorOptions::kAutoMargin, 1 * kGiB));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  auto r = (*m)->Sample();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_LE(r->limit_bytes, 1 * kGiB);
  EXPECT_LT(r->kv_headroom_bytes, r->limit_bytes);
  std::printf("%s\n  %s\n", (*m)->source()->Describe().c_str(), r->ToString().c_str());
}

}  // namespace
}  // namespace dualblade
