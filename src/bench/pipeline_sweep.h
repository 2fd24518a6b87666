// The adaptive pipeline's benchmark: for the dual policy at each budget, calibrate the compute to
// the I/O (one run with depth 0 and no compute: the median I/O busy time per layer becomes the
// busy compute per layer), then run no overlap (depth 0), every fixed depth of the sweep and
// auto, each point in its own memory cgroup as RunTraceBench runs them, rounds interleaved when
// repeated. Reports, per budget and at the worst budget: the overlap efficiency of auto, auto's
// step time over depth 0's, and auto's over the best fixed depth's (p50 step times).
//
// Thread-safety: forks, like RunTraceBench.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "bench/trace_bench.h"

namespace dualblade {

struct PipelineSweepOptions {
  // Shape, store, budgets, cgroup parent, repeat; policies, prefetch depth and compute are set
  // by the sweep.
  TraceBenchOptions bench;
  std::vector<uint32_t> fixed_depths = {1, 2, 4, 8};
};

struct PipelineSweepBudget {
  uint64_t budget_bytes = 0;
  TracePoint calibration;           // depth 0 with compute = the I/O time of a run without
  double io_ms_per_layer = 0;       // from the calibration
  uint64_t compute_us_per_layer = 0;
  TracePoint none;                  // depth 0 with that compute
  std::vector<std::pair<uint32_t, TracePoint>> fixed;  // (depth, point)
  TracePoint automatic;
  // Absent when a point the ratio needs failed.
  std::optional<double> auto_overlap_efficiency;
  std::optional<double> auto_vs_depth0;
  std::optional<double> auto_vs_best_fixed;
  // Auto's compute thread alone (its compute running time) against depth 0's step: what
  // auto / depth 0 cannot go below on this machine whatever the reads do. Near or above 0.5 it
  // says the compute itself ran slower overlapped (on a VM, the host's steal while the disk is
  // read), not that the reads were not hidden.
  std::optional<double> auto_compute_vs_depth0;
  uint32_t best_fixed_depth = 0;    // among depth 0 and the fixed depths
};

struct PipelineSweepReport {
  std::vector<PipelineSweepBudget> budgets;
  // The worst (largest) of each ratio over the budgets.
  std::optional<double> auto_overlap_efficiency_worst;
  std::optional<double> auto_vs_depth0_worst;
  std::optional<double> auto_vs_best_fixed_worst;
};

// PROGRESS (optional) sees one line per run. Errors: as RunTraceBench.
Result<PipelineSweepReport> RunPipelineSweep(
    const PipelineSweepOptions& opts, const std::function<void(const std::string&)>& progress);

std::string PipelineSweepJson(const PipelineSweepReport& rep, const TraceShape& shape);
std::string PipelineSweepMarkdown(const PipelineSweepReport& rep, const TraceShape& shape);

}  // namespace dualblade
