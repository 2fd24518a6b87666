// The KV-trace benchmark: for every (policy, budget) pair, RunTraceReplay in a fresh child
// process confined to a new memory cgroup limited to the budget (the store's pages dropped
// first, so every point starts cold), with the device's own peak bandwidth as the yardstick for
// SSD utilization: measured before each budget's runs over the whole data area, and right after
// each run that read from the device over the blocks it read. Produces the points and the ratios
// that docs/performance.md and the `bench --json` contract (DESIGN.md) report.
//
// Thread-safety: RunTraceBench forks; call it from a process with no other threads.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "bench/trace_replay.h"
#include "common/status.h"

namespace dualblade {

struct TraceBenchOptions {
  TraceReplayOptions replay;  // shape, store, compute, prefetch; policy and budget set per point
  std::vector<KvPolicy> policies;
  std::vector<uint64_t> budgets_bytes;
  // The device's sequential O_DIRECT read peak in bytes/s; 0 = measure it with IOBENCH_ARGV.
  double iobench_peak_bytes_per_s = 0;
  // `dualblade iobench STORE --json ...` as argv (the store path is appended); its bytes_per_s
  // is the peak.
  std::vector<std::string> iobench_argv;
  uint64_t point_timeout_ms = 15 * 60 * 1000;
  // Runs per (policy, budget) point, policies interleaved within each round; the point reports
  // the run with the median p50 (see MedianRun). Where two policies make the same plan their
  // step times differ by noise only, and one run per point turns that noise into the ratios.
  uint32_t repeat = 1;
  std::string cgroup_parent_dir;  // "" = the caller's own memory cgroup
};

struct TracePoint {
  KvPolicy policy = KvPolicy::kDual;
  uint64_t budget_bytes = 0;
  bool oom = false;
  std::string error;  // the child's own failure (not an OOM kill); empty when it succeeded
  TraceReplayResult r;  // valid when !oom && error.empty()
  uint64_t peak_mem_bytes = 0;
  double ssd_bw_fraction = 0;  // decode-phase device read bandwidth / iobench peak
  // The same bandwidth over the iobench peak of the blocks the run read (its KV region),
  // measured right after the run: the fair yardstick on a device whose speed depends on where
  // and when it is read. For a point of several runs, the median of the runs' fractions (each
  // against its own measurement, listed in run_kv_region_fractions). 0 = not measured (a given
  // peak, or a run that read nothing from the device).
  double ssd_bw_fraction_kv_region = 0;
  std::vector<double> run_kv_region_fractions;
  double wall_ms = 0;
  // p50 step time of each successful run of the point (one entry without --repeat).
  std::vector<double> run_p50_ms;
  // Of the runs behind this point (MedianRun): how many there were, and how many the OOM killer
  // ended, so a median of the survivors does not hide a baseline that was killed.
  uint32_t runs = 1;
  uint32_t oom_runs = 0;
  bool ok() const { return !oom && error.empty(); }
};

// One point from several runs of it: the successful run whose p50 is the median (nearest rank,
// the lower middle for an even count), with run_p50_ms listing every successful run's p50; the
// first failed run when none succeeded. runs and oom_runs count all of them. REQUIRES: runs not
// empty.
TracePoint MedianRun(std::vector<TracePoint> runs);

// Runs one (policy, budget) point once, in its own memory cgroup, as RunTraceBench does. PEAK
// (bytes/s, 0 = unknown) is the yardstick of ssd_bw_fraction. A point that fails or is
// OOM-killed is returned as such; *FATAL is set when the runner itself fails.
TracePoint RunTracePoint(const TraceBenchOptions& opts, KvPolicy policy, uint64_t budget,
                         double peak, Status* fatal);

// Ratios of step times (p50) and prefill times between policies, over budgets where both ran.
// Absent (nullopt) when no budget had both.
struct TraceRatios {
  // min over budgets of dual / pagecache: dual at its best against the file-based baseline.
  std::optional<double> decode_dual_vs_pagecache_best;
  std::optional<double> prefill_dual_vs_pagecache_best;
  // ssd_bw_fraction of dual / of pagecache at the smallest budget.
  std::optional<double> ssd_util_dual_vs_pagecache_tightest;
  // max over budgets of dual / min(pagecache, direct): dual at its worst against the better
  // single path (an OOM'd single path does not count as better).
  std::optional<double> dual_vs_best_single_worst;
  // min over budgets of direct's ssd_bw_fraction_kv_region: how close DIRECT reads come to the
  // device's peak on the same blocks, at its worst budget.
  std::optional<double> direct_bw_vs_kv_region_peak_worst;
};

struct TraceBenchReport {
  double iobench_peak_bytes_per_s = 0;  // the median of the measurements (or the one given)
  std::vector<double> iobench_peak_runs_bytes_per_s;  // one per budget when measured
  // iobench over each run's KV region (the span of its segments), right after every run that
  // read from the device; empty when the peak was given rather than measured.
  double iobench_kv_region_peak_bytes_per_s = 0;  // the median
  std::vector<double> iobench_kv_region_peak_runs_bytes_per_s;
  uint64_t kv_region_offset_bytes = 0;
  uint64_t kv_region_len_bytes = 0;
  std::string device;
  std::string store_path;
  std::vector<TracePoint> points;
  TraceRatios ratios;
};

TraceRatios ComputeTraceRatios(const std::vector<TracePoint>& points);
// Decode-phase device read bandwidth of R over PEAK (0 when either is unknown).
double SsdBwFraction(const TraceReplayResult& r, double peak);

// Runs every point; PROGRESS (optional) sees each as it finishes. Errors: the store cannot be
// opened, the iobench peak cannot be measured, or a cgroup cannot be created (the reason from
// the runner). A point whose child fails or is OOM-killed is recorded, not an error.
Result<TraceBenchReport> RunTraceBench(const TraceBenchOptions& opts,
                                       const std::function<void(const TracePoint&)>& progress);

// Creates a store file at PATH of SIZE_BYTES (directories included) and writes its whole data
// area once, so later reads (the iobench peak among them) hit real blocks rather than
// unwritten extents that the filesystem answers with zeros. Returns false in *CREATED when PATH
// already existed (then it is left alone).
Status PrepareTraceStore(const std::string& path, uint64_t size_bytes, bool* created);

// The `bench --json` object and a Markdown table of the points.
std::string TraceBenchJson(const TraceBenchReport& report, const TraceShape& shape);
std::string TraceBenchMarkdown(const TraceBenchReport& report, const TraceShape& shape);

}  // namespace dualblade
