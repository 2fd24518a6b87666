// The KV-trace benchmark: for every (policy, budget) pair, RunTraceReplay in a fresh child
// process confined to a new memory cgroup limited to the budget (the store's pages dropped
// first, so every point starts cold), with the device's own peak bandwidth measured once at
// the start as the yardstick for SSD utilization. Produces the points and the ratios that
// docs/performance.md and the `bench --json` contract (DESIGN.md) report.
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
  double wall_ms = 0;
  bool ok() const { return !oom && error.empty(); }
};

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
};

struct TraceBenchReport {
  double iobench_peak_bytes_per_s = 0;
  std::string device;
  std::string store_path;
  std::vector<TracePoint> points;
  TraceRatios ratios;
};

TraceRatios ComputeTraceRatios(const std::vector<TracePoint>& points);

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
