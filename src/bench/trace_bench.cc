#include "bench/trace_bench.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>

#include <nlohmann/json.hpp>

#include "bench/cgroup_runner.h"
#include "common/aligned_buffer.h"
#include "common/units.h"
#include "store/store.h"

namespace dualblade {

namespace {

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Runs `ARGV STORE [--offset O --length L]` and returns its bytes_per_s; LENGTH 0 = the whole
// data area.
Result<double> MeasureIobenchPeak(const std::vector<std::string>& argv, const std::string& store,
                                  uint64_t offset_bytes = 0, uint64_t length_bytes = 0) {
  if (argv.empty()) return Status::InvalidArgument("no iobench command to measure the peak with");
  std::string cmd;
  for (const std::string& a : argv) cmd += ShellQuote(a) + " ";
  if (length_bytes > 0) {
    cmd += "--offset " + std::to_string(offset_bytes) + " --length " +
           std::to_string(length_bytes) + " ";
  }
  cmd += ShellQuote(store) + " 2>&1";
  FILE* f = ::popen(cmd.c_str(), "r");
  if (f == nullptr) return ErrnoStatus("running " + argv[0], errno);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  const int rc = ::pclose(f);
  nlohmann::json j = nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false);
  if (rc != 0 || j.is_discarded() || !j.contains("bytes_per_s") || !j["bytes_per_s"].is_number())
    return Status::IOError("measuring the iobench peak of " + store + " failed: " + out);
  return j["bytes_per_s"].get<double>();
}

}  // namespace

TracePoint RunTracePoint(const TraceBenchOptions& opts, KvPolicy policy, uint64_t budget,
                         double peak, Status* fatal) {
  TracePoint p;
  p.policy = policy;
  p.budget_bytes = budget;
  TraceReplayOptions ro = opts.replay;
  ro.placement.policy = policy;
  ro.budget_bytes = budget;
  CgroupRunOptions co;
  co.memory_limit_bytes = budget;
  co.drop_cache_paths = {ro.store_path};
  co.parent_dir = opts.cgroup_parent_dir;
  co.timeout_ms = opts.point_timeout_ms;
  auto run = RunFunctionInMemoryCgroupWithReport(co, [&ro](std::string* report) {
    Result<TraceReplayResult> r = RunTraceReplay(ro);
    *report = r.ok() ? TraceReplayResultToJson(*r) : "error: " + r.status().message();
    return r.ok() ? 0 : 1;
  });
  if (!run.ok()) {
    *fatal = run.status();
    return p;
  }
  p.peak_mem_bytes = run->peak_bytes;
  p.wall_ms = run->wall_ms;
  if (run->oom_killed) {
    p.oom = true;
    return p;
  }
  if (run->timed_out) {
    p.error = "timed out after " + std::to_string(opts.point_timeout_ms / 1000) + " s";
    return p;
  }
  if (!run->exited || run->exit_code != 0) {
    p.error = run->child_report.rfind("error: ", 0) == 0 ? run->child_report.substr(7)
                                                          : "the replay died: " + run->ToString();
    return p;
  }
  Result<TraceReplayResult> r = TraceReplayResultFromJson(run->child_report);
  if (!r.ok()) {
    p.error = r.status().message();
    return p;
  }
  p.r = std::move(r).value();
  p.run_p50_ms = {p.r.decode_step_ms_p50};
  p.ssd_bw_fraction = SsdBwFraction(p.r, peak);
  return p;
}

double SsdBwFraction(const TraceReplayResult& r, double peak) {
  if (peak <= 0 || r.decode_total_ms <= 0) return 0;
  return static_cast<double>(r.device_read_bytes) / (r.decode_total_ms * 1e-3) / peak;
}

TracePoint MedianRun(std::vector<TracePoint> runs) {
  const auto n_runs = static_cast<uint32_t>(runs.size());
  uint32_t n_oom = 0;
  std::vector<TracePoint> ok;
  for (TracePoint& p : runs) {
    n_oom += p.oom ? 1 : 0;
    if (p.ok()) ok.push_back(std::move(p));  // runs.front() is only read when none moved
  }
  if (ok.empty()) {
    TracePoint first = std::move(runs.front());
    first.runs = n_runs;
    first.oom_runs = n_oom;
    return first;
  }
  std::vector<double> p50s, fractions;
  for (const TracePoint& p : ok) {
    p50s.push_back(p.r.decode_step_ms_p50);
    if (p.ssd_bw_fraction_kv_region > 0) fractions.push_back(p.ssd_bw_fraction_kv_region);
  }
  std::sort(ok.begin(), ok.end(), [](const TracePoint& a, const TracePoint& b) {
    return a.r.decode_step_ms_p50 < b.r.decode_step_ms_p50;
  });
  TracePoint m = std::move(ok[(ok.size() - 1) / 2]);
  m.run_p50_ms = std::move(p50s);
  m.ssd_bw_fraction_kv_region = fractions.empty() ? 0 : Percentile(fractions, 0.5);
  m.run_kv_region_fractions = std::move(fractions);
  m.runs = n_runs;
  m.oom_runs = n_oom;
  return m;
}

Status PrepareTraceStore(const std::string& path, uint64_t size_bytes, bool* created) {
  *created = false;
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) return Status::OK();
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) {
    std::filesystem::create_directories(parent, ec);
    if (ec) return Status::IOError("cannot create " + parent.string() + ": " + ec.message());
  }
  store::FormatOptions fo;
  fo.size_bytes = size_bytes;
  DB_RETURN_IF_ERROR(store::Store::Format(path, fo).status());
  *created = true;
  // Write the data area once (it holds nothing yet): fallocated extents are "unwritten", and a
  // filesystem answers reads of those with zeros without touching the device.
  store::StoreOpenOptions so;
  so.read_only = false;
  DB_ASSIGN_OR_RETURN(std::unique_ptr<store::Store> st, store::Store::Open(path, so));
  const store::DataArea area = st->data_area();
  constexpr uint64_t kStepBytes = 4 * kMiB;
  AlignedBuffer buf(kStepBytes);
  for (uint64_t i = 0; i < kStepBytes; ++i) buf.data()[i] = static_cast<uint8_t>(i * 131 + 7);
  for (uint64_t off = 0; off < area.len_bytes; off += kStepBytes) {
    const uint64_t len = std::min(kStepBytes, area.len_bytes - off);
    DB_RETURN_IF_ERROR(st->device().PwriteDirect(
        area.offset_bytes + off, std::span<const uint8_t>(buf.data(), len)));
  }
  return st->device().Sync();
}

TraceRatios ComputeTraceRatios(const std::vector<TracePoint>& points) {
  std::map<uint64_t, std::map<KvPolicy, const TracePoint*>> by_budget;
  for (const TracePoint& p : points)
    if (p.ok()) by_budget[p.budget_bytes][p.policy] = &p;
  TraceRatios r;
  auto min_opt = [](std::optional<double>& acc, double v) { acc = acc ? std::min(*acc, v) : v; };
  auto max_opt = [](std::optional<double>& acc, double v) { acc = acc ? std::max(*acc, v) : v; };
  bool tightest_done = false;
  for (auto& [budget, pol] : by_budget) {
    auto direct = pol.find(KvPolicy::kDirect);
    if (direct != pol.end() && direct->second->ssd_bw_fraction_kv_region > 0)
      min_opt(r.direct_bw_vs_kv_region_peak_worst, direct->second->ssd_bw_fraction_kv_region);
    auto dual = pol.find(KvPolicy::kDual);
    if (dual == pol.end()) continue;
    const TraceReplayResult& d = dual->second->r;
    auto pc = pol.find(KvPolicy::kPageCache);
    auto di = pol.find(KvPolicy::kDirect);
    if (pc != pol.end()) {
      const TraceReplayResult& c = pc->second->r;
      if (c.decode_step_ms_p50 > 0) min_opt(r.decode_dual_vs_pagecache_best,
                                            d.decode_step_ms_p50 / c.decode_step_ms_p50);
      if (c.prefill_ms > 0) min_opt(r.prefill_dual_vs_pagecache_best, d.prefill_ms / c.prefill_ms);
      if (!tightest_done && pc->second->ssd_bw_fraction > 0) {
        r.ssd_util_dual_vs_pagecache_tightest =
            dual->second->ssd_bw_fraction / pc->second->ssd_bw_fraction;
        tightest_done = true;
      }
    }
    double best_single = 0;
    if (pc != pol.end()) best_single = pc->second->r.decode_step_ms_p50;
    if (di != pol.end() && (best_single == 0 || di->second->r.decode_step_ms_p50 < best_single))
      best_single = di->second->r.decode_step_ms_p50;
    if (best_single > 0) max_opt(r.dual_vs_best_single_worst, d.decode_step_ms_p50 / best_single);
  }
  return r;
}

Result<TraceBenchReport> RunTraceBench(const TraceBenchOptions& opts,
                                       const std::function<void(const TracePoint&)>& progress) {
  DB_RETURN_IF_ERROR(opts.replay.shape.Validate());
  if (opts.policies.empty()) return Status::InvalidArgument("--policies lists no policy");
  if (opts.budgets_bytes.empty()) return Status::InvalidArgument("--budgets lists no budget");
  if (auto why = CgroupRunnerUnavailableReason(opts.cgroup_parent_dir))
    return Status::NotSupported("the trace benchmark confines each run to a memory cgroup, and "
                                "none can be created here: " + *why);
  TraceBenchReport rep;
  rep.store_path = opts.replay.store_path;
  {
    DB_ASSIGN_OR_RETURN(std::unique_ptr<store::Store> st,
                        store::Store::Open(rep.store_path, store::StoreOpenOptions{}));
    rep.device = st->device().info().disk_name;
  }
  // The yardstick moves on a shared machine (3.0 to 5.4 GB/s between runs here: the host caches
  // the disk), so unless it is given it is measured before each budget's runs, and every point's
  // fraction uses the median of those measurements.
  const bool measure_peak = opts.iobench_peak_bytes_per_s <= 0;
  std::vector<double>& peaks = rep.iobench_peak_runs_bytes_per_s;
  auto median_peak = [&] { return Percentile(peaks, 0.5); };
  if (!measure_peak) peaks.push_back(opts.iobench_peak_bytes_per_s);
  if (opts.repeat == 0) return Status::InvalidArgument("--repeat must be at least 1");
  // Budgets outer, then rounds, policies inner: drift of a shared machine over the run then
  // spreads over every policy alike instead of favouring whichever ran first.
  for (uint64_t budget : opts.budgets_bytes) {
    if (measure_peak) {
      DB_ASSIGN_OR_RETURN(double peak, MeasureIobenchPeak(opts.iobench_argv, rep.store_path));
      peaks.push_back(peak);
    }
    std::vector<std::vector<TracePoint>> runs(opts.policies.size());
    for (uint32_t round = 0; round < opts.repeat; ++round) {
      for (size_t i = 0; i < opts.policies.size(); ++i) {
        Status fatal;
        TracePoint p = RunTracePoint(opts, opts.policies[i], budget, median_peak(), &fatal);
        DB_RETURN_IF_ERROR(fatal);
        // The yardstick on the blocks this run read, at once: on a virtual disk their speed
        // moved between runs, and reads of the often rewritten KV region ran at 0.8x those of the
        // rest of the store (see iobench --offset).
        // Runs that read next to nothing from the device (an all-page-cache plan's few misses)
        // are skipped: their fraction would be about 0 whatever the yardstick.
        const bool reads_device =
            p.ok() && p.r.device_read_bytes * 100 >= p.r.read_bytes_page + p.r.read_bytes_direct;
        if (measure_peak && reads_device && p.r.kv_region_len_bytes > 0) {
          const uint64_t off = p.r.kv_region_offset_bytes, len = p.r.kv_region_len_bytes;
          DB_ASSIGN_OR_RETURN(double region_peak,
                              MeasureIobenchPeak(opts.iobench_argv, rep.store_path, off, len));
          p.ssd_bw_fraction_kv_region = SsdBwFraction(p.r, region_peak);
          rep.iobench_kv_region_peak_runs_bytes_per_s.push_back(region_peak);
          // The report names the span every measured run lies in.
          const uint64_t begin = rep.kv_region_len_bytes == 0
                                     ? off
                                     : std::min(rep.kv_region_offset_bytes, off);
          const uint64_t end =
              std::max(rep.kv_region_offset_bytes + rep.kv_region_len_bytes, off + len);
          rep.kv_region_offset_bytes = begin;
          rep.kv_region_len_bytes = end - begin;
        }
        if (progress) progress(p);
        runs[i].push_back(std::move(p));
      }
    }
    for (std::vector<TracePoint>& r : runs) rep.points.push_back(MedianRun(std::move(r)));
  }
  rep.iobench_peak_bytes_per_s = median_peak();
  if (!rep.iobench_kv_region_peak_runs_bytes_per_s.empty()) {
    rep.iobench_kv_region_peak_bytes_per_s =
        Percentile(rep.iobench_kv_region_peak_runs_bytes_per_s, 0.5);
  }
  for (TracePoint& p : rep.points) {
    if (!p.ok()) continue;
    p.ssd_bw_fraction = SsdBwFraction(p.r, rep.iobench_peak_bytes_per_s);
  }
  rep.ratios = ComputeTraceRatios(rep.points);
  return rep;
}

}  // namespace dualblade
