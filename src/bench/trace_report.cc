// The KV-trace benchmark's reports: the `bench --json` object (fields as DESIGN.md lists them,
// plus extras) and a Markdown table.
#include <algorithm>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "bench/trace_bench.h"
#include "common/units.h"

namespace dualblade {

namespace {

nlohmann::json OptJson(const std::optional<double>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

std::string Fmt(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), fmt, v);
  return buf;
}

std::string OptFmt(const std::optional<double>& v) {
  return v ? Fmt("%.3f", *v) : "n/a";
}

}  // namespace

std::string TraceBenchJson(const TraceBenchReport& rep, const TraceShape& shape) {
  nlohmann::json j;
  j["iobench_peak_bytes_per_s"] = rep.iobench_peak_bytes_per_s;
  j["iobench_peak_runs_bytes_per_s"] = rep.iobench_peak_runs_bytes_per_s;
  j["iobench_kv_region_peak_bytes_per_s"] = rep.iobench_kv_region_peak_bytes_per_s;
  j["iobench_kv_region_peak_runs_bytes_per_s"] = rep.iobench_kv_region_peak_runs_bytes_per_s;
  j["kv_region_offset_bytes"] = rep.kv_region_offset_bytes;
  j["kv_region_len_bytes"] = rep.kv_region_len_bytes;
  j["device"] = rep.device;
  j["store"] = rep.store_path;
  j["shape"] = {{"n_layer", shape.n_layer},         {"n_head_kv", shape.n_head_kv},
                {"head_dim", shape.n_embd_head},     {"n_ctx", shape.n_ctx},
                {"n_gen", shape.n_gen},              {"chunk_tokens", shape.chunk_tokens},
                {"kv_type", "f16"},                  {"kv_bytes", shape.kv_bytes()}};
  nlohmann::json points = nlohmann::json::array();
  for (const TracePoint& p : rep.points) {
    nlohmann::json o;
    o["policy"] = KvPolicyName(p.policy);
    o["budget_bytes"] = p.budget_bytes;
    o["oom"] = p.oom;
    o["runs"] = p.runs;
    o["oom_runs"] = p.oom_runs;
    o["peak_mem_bytes"] = p.peak_mem_bytes;
    o["wall_ms"] = p.wall_ms;
    if (!p.error.empty()) o["error"] = p.error;
    if (p.ok()) {
      const TraceReplayResult& r = p.r;
      o["prefill_ms"] = r.prefill_ms;
      o["decode_step_ms_p50"] = r.decode_step_ms_p50;
      o["decode_step_ms_p50_runs"] = p.run_p50_ms;
      o["decode_step_ms_p99"] = r.decode_step_ms_p99;
      o["decode_step_ms"] = r.decode_step_ms;
      o["read_bytes_page"] = r.read_bytes_page;
      o["read_bytes_direct"] = r.read_bytes_direct;
      o["read_bytes_memory"] = r.read_bytes_memory;
      o["write_bytes_page"] = r.write_bytes_page;
      o["write_bytes_direct"] = r.write_bytes_direct;
      o["device_read_bytes"] = r.device_read_bytes;
      o["device_busy_ms"] = r.device_busy_ms;
      o["decode_total_ms"] = r.decode_total_ms;
      o["ssd_bw_fraction"] = p.ssd_bw_fraction;
      o["ssd_bw_fraction_kv_region"] = p.ssd_bw_fraction_kv_region;
      o["ssd_bw_fraction_kv_region_runs"] = p.run_kv_region_fractions;
      o["pagecache_hit_ratio"] = r.pagecache_hit_ratio;
      o["page_set_bytes_max"] = r.page_set_bytes_max;
      o["page_set_bytes_last"] = r.page_set_bytes_last;
      o["page_rate_bytes_per_s"] = r.page_rate_bytes_per_s;
      o["direct_rate_bytes_per_s"] = r.direct_rate_bytes_per_s;
      o["kv_headroom_bytes_min"] = r.kv_headroom_bytes_min;
      o["page_within_headroom"] = r.page_within_headroom;
      o["path_transitions"] = r.path_transitions;
      o["overlap_efficiency"] = r.overlap_efficiency;
      o["stall_ms"] = r.stall_ms;
      o["prefetch_depth"] = r.prefetch_depth;
      o["io_busy_ms"] = r.io_busy_ms;
      o["compute_busy_ms"] = r.compute_busy_ms;
      o["compute_run_ms"] = r.compute_run_ms;
      o["staging_resizes"] = r.staging_resizes;
      o["checksum_ms"] = r.checksum_ms;
      o["decode_cpu_ms_per_step"] = r.decode_cpu_ms_per_step;
      o["cpus"] = r.cpus;
      o["cpu_busy_fraction"] = r.cpu_busy_fraction;
      o["cpu_steal_fraction"] = r.cpu_steal_fraction;
      o["engine"] = r.engine;
    }
    points.push_back(std::move(o));
  }
  j["points"] = std::move(points);
  j["ratios"] = {
      {"decode_dual_vs_pagecache_best", OptJson(rep.ratios.decode_dual_vs_pagecache_best)},
      {"prefill_dual_vs_pagecache_best", OptJson(rep.ratios.prefill_dual_vs_pagecache_best)},
      {"ssd_util_dual_vs_pagecache_tightest",
       OptJson(rep.ratios.ssd_util_dual_vs_pagecache_tightest)},
      {"dual_vs_best_single_worst", OptJson(rep.ratios.dual_vs_best_single_worst)},
      {"direct_bw_vs_kv_region_peak_worst",
       OptJson(rep.ratios.direct_bw_vs_kv_region_peak_worst)}};
  return j.dump(2);
}

std::string TraceBenchMarkdown(const TraceBenchReport& rep, const TraceShape& shape) {
  std::string md;
  md += "Shape: " + std::to_string(shape.n_layer) + " layers, " + std::to_string(shape.n_head_kv) +
        " KV heads of " + std::to_string(shape.n_embd_head) + ", f16, " +
        std::to_string(shape.n_ctx) + " tokens (" + FormatBytes(shape.kv_bytes()) +
        " of KV), " + std::to_string(shape.n_gen) + " decode steps, " +
        std::to_string(shape.chunk_tokens) + "-token chunks. Device " + rep.device +
        ", iobench peak " + FormatBandwidth(rep.iobench_peak_bytes_per_s);
  if (rep.iobench_peak_runs_bytes_per_s.size() > 1) {
    const auto [lo, hi] = std::minmax_element(rep.iobench_peak_runs_bytes_per_s.begin(),
                                              rep.iobench_peak_runs_bytes_per_s.end());
    md += " (median of " + std::to_string(rep.iobench_peak_runs_bytes_per_s.size()) +
          " measurements, " + FormatBandwidth(*lo) + " to " + FormatBandwidth(*hi) + ")";
  }
  if (!rep.iobench_kv_region_peak_runs_bytes_per_s.empty()) {
    const auto [lo, hi] = std::minmax_element(rep.iobench_kv_region_peak_runs_bytes_per_s.begin(),
                                              rep.iobench_kv_region_peak_runs_bytes_per_s.end());
    md += "; over the KV region (" + FormatBytes(rep.kv_region_len_bytes) + " from byte " +
          std::to_string(rep.kv_region_offset_bytes) + "), right after each run that read from "
          "the device, " + FormatBandwidth(rep.iobench_kv_region_peak_bytes_per_s) + " (median of " +
          std::to_string(rep.iobench_kv_region_peak_runs_bytes_per_s.size()) + ", " +
          FormatBandwidth(*lo) + " to " + FormatBandwidth(*hi) + ")";
  }
  md += ".\n\n";
  md += "| policy | budget | prefill ms | step p50 ms | step p99 ms | read page | read direct | "
        "device read | busy ms | SSD bw / peak | SSD bw / KV-region peak | hit ratio | "
        "PAGE set max / last | peak mem | OOM |\n";
  md += "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | --- |\n";
  for (const TracePoint& p : rep.points) {
    md += "| " + std::string(KvPolicyName(p.policy)) + " | " + FormatBytes(p.budget_bytes) + " | ";
    if (p.ok()) {
      const TraceReplayResult& r = p.r;
      md += Fmt("%.1f", r.prefill_ms) + " | " + Fmt("%.1f", r.decode_step_ms_p50) + " | " +
            Fmt("%.1f", r.decode_step_ms_p99) + " | " + FormatBytes(r.read_bytes_page) + " | " +
            FormatBytes(r.read_bytes_direct) + " | " + FormatBytes(r.device_read_bytes) + " | " +
            std::to_string(r.device_busy_ms) + " | " + Fmt("%.2f", p.ssd_bw_fraction) + " | " +
            Fmt("%.2f", p.ssd_bw_fraction_kv_region) + " | " +
            Fmt("%.2f", r.pagecache_hit_ratio) + " | " + FormatBytes(r.page_set_bytes_max) +
            " / " + FormatBytes(r.page_set_bytes_last) + " | " +
            FormatBytes(p.peak_mem_bytes) + " | " +
            (p.oom_runs == 0 ? std::string("no")
                             : std::to_string(p.oom_runs) + " of " + std::to_string(p.runs) +
                                   " runs") +
            " |\n";
    } else {
      const std::string why = p.oom ? "yes" : "failed: " + p.error;
      md += "- | - | - | - | - | - | - | - | - | - | - | " + FormatBytes(p.peak_mem_bytes) + " | " +
            why + " |\n";
    }
  }
  md += "\n| ratio | value |\n| --- | ---: |\n";
  md += "| decode_dual_vs_pagecache_best | " + OptFmt(rep.ratios.decode_dual_vs_pagecache_best) + " |\n";
  md += "| prefill_dual_vs_pagecache_best | " + OptFmt(rep.ratios.prefill_dual_vs_pagecache_best) +
        " |\n";
  md += "| ssd_util_dual_vs_pagecache_tightest | " +
        OptFmt(rep.ratios.ssd_util_dual_vs_pagecache_tightest) + " |\n";
  md += "| dual_vs_best_single_worst | " + OptFmt(rep.ratios.dual_vs_best_single_worst) + " |\n";
  md += "| direct_bw_vs_kv_region_peak_worst | " +
        OptFmt(rep.ratios.direct_bw_vs_kv_region_peak_worst) + " |\n";
  return md;
}

}  // namespace dualblade
