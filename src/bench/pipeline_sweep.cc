#include "bench/pipeline_sweep.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "bench/cgroup_runner.h"
#include "common/units.h"

namespace dualblade {

namespace {

std::string Fmt(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), fmt, v);
  return buf;
}

std::string OptFmt(const std::optional<double>& v) { return v ? Fmt("%.3f", *v) : "n/a"; }

nlohmann::json OptJson(const std::optional<double>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

std::string DepthName(int32_t depth) {
  return depth == TraceReplayOptions::kAutoPrefetch ? "auto" : std::to_string(depth);
}

std::string RunLine(const TracePoint& p, int32_t depth, uint64_t compute_us) {
  std::string s = FormatBytes(p.budget_bytes) + " depth " + DepthName(depth) + " compute " +
                  std::to_string(compute_us) + " us/layer: ";
  if (!p.ok()) return s + (p.oom ? "OOM-killed" : "failed: " + p.error);
  return s + "step p50 " + Fmt("%.1f", p.r.decode_step_ms_p50) + " ms, io " +
         Fmt("%.1f", p.r.io_busy_ms) + " ms, compute " + Fmt("%.1f", p.r.compute_busy_ms) +
         " ms (running " + Fmt("%.1f", p.r.compute_run_ms) + " ms), stall " +
         Fmt("%.1f", p.r.stall_ms) + " ms, overlap " +
         Fmt("%.3f", p.r.overlap_efficiency) + ", depth used " +
         std::to_string(p.r.prefetch_depth) + ", CPU " + Fmt("%.1f", p.r.decode_cpu_ms_per_step) +
         " ms/step, CPUs busy " + Fmt("%.2f", p.r.cpu_busy_fraction) + " (steal " +
         Fmt("%.2f", p.r.cpu_steal_fraction) + ")";
}

void MaxOpt(std::optional<double>& acc, const std::optional<double>& v) {
  if (v) acc = acc ? std::max(*acc, *v) : *v;
}

nlohmann::json PointJson(const TracePoint& p, int32_t depth) {
  nlohmann::json o;
  o["prefetch_depth_option"] = DepthName(depth);
  o["oom"] = p.oom;
  if (!p.error.empty()) o["error"] = p.error;
  o["peak_mem_bytes"] = p.peak_mem_bytes;
  if (p.ok()) {
    o["decode_step_ms_p50"] = p.r.decode_step_ms_p50;
    o["decode_step_ms_p50_runs"] = p.run_p50_ms;
    o["decode_step_ms_p99"] = p.r.decode_step_ms_p99;
    o["overlap_efficiency"] = p.r.overlap_efficiency;
    o["stall_ms"] = p.r.stall_ms;
    o["prefetch_depth"] = p.r.prefetch_depth;
    o["io_busy_ms"] = p.r.io_busy_ms;
    o["compute_busy_ms"] = p.r.compute_busy_ms;
    o["compute_run_ms"] = p.r.compute_run_ms;
    o["staging_resizes"] = p.r.staging_resizes;
    o["read_bytes_page"] = p.r.read_bytes_page;
    o["read_bytes_direct"] = p.r.read_bytes_direct;
    o["pagecache_hit_ratio"] = p.r.pagecache_hit_ratio;
    o["decode_cpu_ms_per_step"] = p.r.decode_cpu_ms_per_step;
    o["cpus"] = p.r.cpus;
    o["cpu_busy_fraction"] = p.r.cpu_busy_fraction;
    o["cpu_steal_fraction"] = p.r.cpu_steal_fraction;
  }
  return o;
}

}  // namespace

Result<PipelineSweepReport> RunPipelineSweep(
    const PipelineSweepOptions& opts, const std::function<void(const std::string&)>& progress) {
  const TraceBenchOptions& base = opts.bench;
  DB_RETURN_IF_ERROR(base.replay.shape.Validate());
  if (base.budgets_bytes.empty()) return Status::InvalidArgument("--budgets lists no budget");
  if (base.repeat == 0) return Status::InvalidArgument("--repeat must be at least 1");
  if (auto why = CgroupRunnerUnavailableReason(base.cgroup_parent_dir))
    return Status::NotSupported("the pipeline sweep confines each run to a memory cgroup, and "
                                "none can be created here: " + *why);
  auto say = [&](const std::string& line) {
    if (progress) progress(line);
  };
  const uint32_t n_layer = base.replay.shape.n_layer;
  PipelineSweepReport rep;
  for (uint64_t budget : base.budgets_bytes) {
    PipelineSweepBudget b;
    b.budget_bytes = budget;
    TraceBenchOptions o = base;
    o.replay.prefetch_depth = 0;
    o.replay.compute_us_per_layer = 0;
    Status fatal;
    b.calibration = RunTracePoint(o, KvPolicy::kDual, budget, 0, &fatal);
    DB_RETURN_IF_ERROR(fatal);
    say(RunLine(b.calibration, 0, 0) + " (calibration)");
    if (!b.calibration.ok()) {
      rep.budgets.push_back(std::move(b));
      continue;
    }
    b.io_ms_per_layer = b.calibration.r.io_busy_ms / n_layer;
    b.compute_us_per_layer = static_cast<uint64_t>(std::llround(b.io_ms_per_layer * 1000));
    // Reads take a different time once compute shares the CPUs with them (page-cache copies and
    // completions need a core; the page cache is warm after the first run): measure them again
    // at depth 0 with that compute, and set compute to the I/O time measured there, so that
    // "compute about equal to I/O" holds in the runs being compared rather than in an idle one.
    // One such run is noisy on a shared machine (its I/O came out 10-40% above the depth-0 runs
    // that followed), so it runs --repeat times and the median I/O time is taken.
    o.replay.compute_us_per_layer = b.compute_us_per_layer;
    std::vector<TracePoint> seconds;
    for (uint32_t round = 0; round < std::max<uint32_t>(base.repeat, 1); ++round) {
      TracePoint second = RunTracePoint(o, KvPolicy::kDual, budget, 0, &fatal);
      DB_RETURN_IF_ERROR(fatal);
      say(RunLine(second, 0, o.replay.compute_us_per_layer) + " (calibration with compute)");
      if (second.ok() && second.r.io_busy_ms > 0) seconds.push_back(std::move(second));
    }
    if (!seconds.empty()) {
      std::sort(seconds.begin(), seconds.end(), [](const TracePoint& x, const TracePoint& y) {
        return x.r.io_busy_ms < y.r.io_busy_ms;
      });
      b.calibration = std::move(seconds[(seconds.size() - 1) / 2]);
      b.io_ms_per_layer = b.calibration.r.io_busy_ms / n_layer;
      b.compute_us_per_layer = static_cast<uint64_t>(std::llround(b.io_ms_per_layer * 1000));
    }
    o.replay.compute_us_per_layer = b.compute_us_per_layer;

    std::vector<int32_t> depths = {0};
    for (uint32_t d : opts.fixed_depths) depths.push_back(static_cast<int32_t>(d));
    depths.push_back(TraceReplayOptions::kAutoPrefetch);
    std::vector<std::vector<TracePoint>> runs(depths.size());
    for (uint32_t round = 0; round < base.repeat; ++round) {
      // Each round starts one configuration later, so none always runs right after the same
      // other one (a run leaves the page cache and the device in a state the next one inherits).
      for (size_t k = 0; k < depths.size(); ++k) {
        const size_t i = (k + round) % depths.size();
        o.replay.prefetch_depth = depths[i];
        TracePoint p = RunTracePoint(o, KvPolicy::kDual, budget, 0, &fatal);
        DB_RETURN_IF_ERROR(fatal);
        say(RunLine(p, depths[i], b.compute_us_per_layer));
        runs[i].push_back(std::move(p));
      }
    }
    b.none = MedianRun(std::move(runs.front()));
    for (size_t i = 1; i + 1 < depths.size(); ++i)
      b.fixed.emplace_back(static_cast<uint32_t>(depths[i]), MedianRun(std::move(runs[i])));
    b.automatic = MedianRun(std::move(runs.back()));

    double best = b.none.ok() ? b.none.r.decode_step_ms_p50 : 0;
    for (const auto& [depth, p] : b.fixed) {
      if (p.ok() && (best == 0 || p.r.decode_step_ms_p50 < best)) {
        best = p.r.decode_step_ms_p50;
        b.best_fixed_depth = depth;
      }
    }
    if (b.automatic.ok()) {
      const double a = b.automatic.r.decode_step_ms_p50;
      b.auto_overlap_efficiency = b.automatic.r.overlap_efficiency;
      if (b.none.ok() && b.none.r.decode_step_ms_p50 > 0) {
        b.auto_vs_depth0 = a / b.none.r.decode_step_ms_p50;
        b.auto_compute_vs_depth0 = b.automatic.r.compute_run_ms / b.none.r.decode_step_ms_p50;
      }
      if (best > 0) b.auto_vs_best_fixed = a / best;
    }
    say(FormatBytes(budget) + ": auto overlap efficiency " + OptFmt(b.auto_overlap_efficiency) +
        ", auto / depth 0 " + OptFmt(b.auto_vs_depth0) + " (its compute alone " +
        OptFmt(b.auto_compute_vs_depth0) + "), auto / best fixed (depth " +
        std::to_string(b.best_fixed_depth) + ") " + OptFmt(b.auto_vs_best_fixed));
    MaxOpt(rep.auto_overlap_efficiency_worst, b.auto_overlap_efficiency);
    MaxOpt(rep.auto_vs_depth0_worst, b.auto_vs_depth0);
    MaxOpt(rep.auto_vs_best_fixed_worst, b.auto_vs_best_fixed);
    rep.budgets.push_back(std::move(b));
  }
  return rep;
}

std::string PipelineSweepJson(const PipelineSweepReport& rep, const TraceShape& shape) {
  nlohmann::json j;
  j["policy"] = "dual";
  j["shape"] = {{"n_layer", shape.n_layer},     {"n_head_kv", shape.n_head_kv},
                {"head_dim", shape.n_embd_head}, {"n_ctx", shape.n_ctx},
                {"n_gen", shape.n_gen},          {"chunk_tokens", shape.chunk_tokens}};
  nlohmann::json budgets = nlohmann::json::array();
  for (const PipelineSweepBudget& b : rep.budgets) {
    nlohmann::json o;
    o["budget_bytes"] = b.budget_bytes;
    o["io_ms_per_layer"] = b.io_ms_per_layer;
    o["compute_us_per_layer"] = b.compute_us_per_layer;
    o["calibration"] = PointJson(b.calibration, 0);
    nlohmann::json pts = nlohmann::json::array();
    pts.push_back(PointJson(b.none, 0));
    for (const auto& [depth, p] : b.fixed) pts.push_back(PointJson(p, static_cast<int32_t>(depth)));
    pts.push_back(PointJson(b.automatic, TraceReplayOptions::kAutoPrefetch));
    o["points"] = std::move(pts);
    o["best_fixed_depth"] = b.best_fixed_depth;
    o["auto_overlap_efficiency"] = OptJson(b.auto_overlap_efficiency);
    o["auto_vs_depth0"] = OptJson(b.auto_vs_depth0);
    o["auto_compute_vs_depth0"] = OptJson(b.auto_compute_vs_depth0);
    o["auto_vs_best_fixed"] = OptJson(b.auto_vs_best_fixed);
    budgets.push_back(std::move(o));
  }
  j["budgets"] = std::move(budgets);
  j["ratios"] = {{"auto_overlap_efficiency_worst", OptJson(rep.auto_overlap_efficiency_worst)},
                 {"auto_vs_depth0_worst", OptJson(rep.auto_vs_depth0_worst)},
                 {"auto_vs_best_fixed_worst", OptJson(rep.auto_vs_best_fixed_worst)}};
  return j.dump(2);
}

std::string PipelineSweepMarkdown(const PipelineSweepReport& rep, const TraceShape& shape) {
  std::string md = "Shape: " + std::to_string(shape.n_layer) + " layers, " +
                   std::to_string(shape.n_head_kv) + " KV heads of " +
                   std::to_string(shape.n_embd_head) + ", f16, " + std::to_string(shape.n_ctx) +
                   " tokens (" + FormatBytes(shape.kv_bytes()) + " of KV), " +
                   std::to_string(shape.n_gen) + " decode steps, policy dual.\n\n";
  // Four columns name the point, the rest are its figures (empty for a failed run).
  constexpr int kPointColumns = 4, kFigureColumns = 10;
  md += "| budget | I/O ms/layer | compute us/layer | depth | step p50 ms | I/O busy ms | "
        "compute busy ms | compute running ms | stall ms | overlap eff. | depth used | "
        "CPU ms/step | CPUs busy | steal |\n";
  for (int i = 0; i < kPointColumns + kFigureColumns; ++i) md += "| ---: ";
  md += "|\n";
  auto row = [&](const PipelineSweepBudget& b, const TracePoint& p, const std::string& depth) {
    md += "| " + FormatBytes(b.budget_bytes) + " | " + Fmt("%.2f", b.io_ms_per_layer) + " | " +
          std::to_string(b.compute_us_per_layer) + " | " + depth + " | ";
    if (!p.ok()) {
      md += p.oom ? std::string("OOM") : "failed: " + p.error;
      for (int i = 1; i < kFigureColumns; ++i) md += " |";
      md += " |\n";
      return;
    }
    md += Fmt("%.1f", p.r.decode_step_ms_p50) + " | " + Fmt("%.1f", p.r.io_busy_ms) + " | " +
          Fmt("%.1f", p.r.compute_busy_ms) + " | " + Fmt("%.1f", p.r.compute_run_ms) + " | " +
          Fmt("%.1f", p.r.stall_ms) + " | " +
          Fmt("%.3f", p.r.overlap_efficiency) + " | " + std::to_string(p.r.prefetch_depth) +
          " | " + Fmt("%.1f", p.r.decode_cpu_ms_per_step) + " | " +
          Fmt("%.2f", p.r.cpu_busy_fraction) + " | " + Fmt("%.2f", p.r.cpu_steal_fraction) + " |\n";
  };
  for (const PipelineSweepBudget& b : rep.budgets) {
    row(b, b.none, "0 (no overlap)");
    for (const auto& [depth, p] : b.fixed) row(b, p, std::to_string(depth));
    row(b, b.automatic, "auto");
  }
  md += "\n| budget | auto overlap eff. | auto / depth 0 | auto's compute running / depth 0 | "
        "best fixed depth | auto / best fixed |\n";
  md += "| ---: | ---: | ---: | ---: | ---: | ---: |\n";
  for (const PipelineSweepBudget& b : rep.budgets) {
    md += "| " + FormatBytes(b.budget_bytes) + " | " + OptFmt(b.auto_overlap_efficiency) + " | " +
          OptFmt(b.auto_vs_depth0) + " | " + OptFmt(b.auto_compute_vs_depth0) + " | " +
          std::to_string(b.best_fixed_depth) + " | " +
          OptFmt(b.auto_vs_best_fixed) + " |\n";
  }
  md += "\n| ratio (worst budget) | value | target |\n| --- | ---: | --- |\n";
  md += "| auto_overlap_efficiency_worst | " + OptFmt(rep.auto_overlap_efficiency_worst) +
        " | <= 1.10 |\n";
  md += "| auto_vs_depth0_worst | " + OptFmt(rep.auto_vs_depth0_worst) + " | <= 0.60 |\n";
  md += "| auto_vs_best_fixed_worst | " + OptFmt(rep.auto_vs_best_fixed_worst) + " | <= 1.05 |\n";
  return md;
}

}  // namespace dualblade
