// Cost of one memory-monitor sample on the live system. The placement policy samples once per
// decode step (milliseconds), so a sample must stay in the tens of microseconds.
//
//   build-*/bench/memory_monitor_bench --benchmark_min_time=0.2
#include <benchmark/benchmark.h>

#include "residency/cgroup.h"
#include "residency/cgroup_memory.h"
#include "residency/meminfo.h"
#include "residency/memory_monitor.h"
#include "residency/pressure.h"

namespace dualblade {
namespace {

void SkipOnError(benchmark::State& state, const Status& st) {
  state.SkipWithError(st.ToString().c_str());
}

// MemoryMonitor::Sample() as the placement policy calls it once per decode step. Arg 0: every
// sample reads everything (cgroup limit, usage, memory.stat, peak, OOM counters, meminfo, PSI,
// statm through descriptors kept open). Arg 100: the default, everything at most every 100 ms
// and the limit and usage counters in between.
void BM_MonitorSample(benchmark::State& state) {
  MemoryMonitorOptions opts;
  opts.budget_bytes = 1ull << 30;
  opts.full_sample_interval_ns = static_cast<uint64_t>(state.range(0)) * 1'000'000;
  auto src = SystemMemorySource::Open();
  if (!src.ok()) return SkipOnError(state, src.status());
  state.SetLabel((*src)->Describe());
  MemoryMonitor m(std::move(src).value(), opts);
  m.Reserve("weights", 256ull << 20);
  for (auto _ : state) {
    auto r = m.Sample();
    if (!r.ok()) return SkipOnError(state, r.status());
    benchmark::DoNotOptimize(r->kv_headroom_bytes);
  }
  state.counters["full_samples"] = static_cast<double>(m.full_samples());
  state.counters["fast_samples"] = static_cast<double>(m.fast_samples());
}
BENCHMARK(BM_MonitorSample)
    ->Arg(0)
    ->Arg(100)
    ->ArgName("full_interval_ms")
    ->Unit(benchmark::kMicrosecond);

// The parts on their own, to see where the time goes.
void BM_CgroupSample(benchmark::State& state) {
  auto cg = FindMemoryCgroup();
  if (!cg.ok()) return SkipOnError(state, cg.status());
  auto reader = CgroupMemoryReader::Open(*cg);
  if (!reader.ok()) return SkipOnError(state, reader.status());
  state.SetLabel(std::string(CgroupVersionName(cg->version)) + " " + cg->dir);
  CgroupMemoryState st;
  for (auto _ : state) {
    Status s = state.range(0) == 2 ? reader->SampleCounters(&st)
                                   : reader->Sample(&st, state.range(0) != 0);
    if (!s.ok()) return SkipOnError(state, s);
    benchmark::DoNotOptimize(st.usage_bytes);
  }
}
// Arg 1: with peak and OOM files; 0: limit, usage, stat; 2: limit and usage counters only.
BENCHMARK(BM_CgroupSample)->Arg(1)->Arg(0)->Arg(2)->ArgName("mode")->Unit(benchmark::kMicrosecond);

void BM_MeminfoPersistentFd(benchmark::State& state) {
  auto f = ProcFile::Open("/proc/meminfo");
  if (!f.ok()) return SkipOnError(state, f.status());
  for (auto _ : state) {
    auto text = f->Read();
    if (!text.ok()) return SkipOnError(state, text.status());
    auto m = ParseMeminfo(*text, f->path());
    benchmark::DoNotOptimize(m);
  }
}
BENCHMARK(BM_MeminfoPersistentFd)->Unit(benchmark::kMicrosecond);

void BM_PressurePersistentFd(benchmark::State& state) {
  auto f = ProcFile::Open("/proc/pressure/memory");
  if (!f.ok()) return SkipOnError(state, f.status());
  for (auto _ : state) {
    auto text = f->Read();
    if (!text.ok()) return SkipOnError(state, text.status());
    auto p = ParseMemoryPressure(*text, f->path());
    benchmark::DoNotOptimize(p);
  }
}
BENCHMARK(BM_PressurePersistentFd)->Unit(benchmark::kMicrosecond);

// The naive way, opening every file each time: what the persistent descriptors save.
void BM_OneShotReopenEverything(benchmark::State& state) {
  auto cg = FindMemoryCgroup();
  for (auto _ : state) {
    if (cg.ok()) benchmark::DoNotOptimize(ReadCgroupMemory(*cg));
    benchmark::DoNotOptimize(ReadMeminfo());
    benchmark::DoNotOptimize(ReadMemoryPressure());
  }
}
BENCHMARK(BM_OneShotReopenEverything)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace dualblade

BENCHMARK_MAIN();
