// dualblade bench: benchmarks across memory budgets and KV policies. `--trace` replays the KV
// traffic of inference for a model shape (no model needed): each (policy, budget) point runs in
// a fresh child confined to a memory cgroup of that budget. Model benchmarks (-m, --preset)
// need the model engine's KV integration and are refused with a clear error until then.
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "bench/pipeline_sweep.h"
#include "bench/trace_bench.h"
#include "cli/commands.h"
#include "common/units.h"

namespace dualblade::cli {

namespace {

struct BenchArgs {
  bool trace = false;
  std::string model;
  std::string preset;
  uint32_t n_layer = 16;
  uint32_t n_head_kv = 8;
  uint32_t head_dim = 64;
  uint64_t ctx = 0;
  uint32_t gen = 8;
  uint32_t chunk_tokens = 256;
  uint64_t compute_us_per_layer = 0;
  std::string prefetch_depth = "0";
  std::string budgets = "128M,256M,512M,1G";
  std::string policies = "dual,pagecache,direct";
  std::string kv_store;
  std::string store_size;
  std::string json;
  std::string md;
  double iobench_peak = 0;
  std::string iobench_bs = "1M";
  uint32_t iobench_qd = 32;
  double iobench_seconds = 3;
  bool verify = false;
  bool no_path_balance = false;
  uint32_t repeat = 1;
  bool pipeline_sweep = false;
  std::string sweep_depths = "1,2,4,8";
};

std::vector<std::string> SplitList(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

Result<std::string> SelfExe() {
  char buf[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return ErrnoStatus("readlink /proc/self/exe", errno);
  return std::string(buf, static_cast<size_t>(n));
}

Status WriteFile(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::trunc);
  f << text;
  f.close();
  if (!f) return Status::IOError("cannot write " + path);
  return Status::OK();
}

void PrintRatio(const char* name, const std::optional<double>& v, const char* target) {
  if (v) {
    std::printf("%s: %.3f%s\n", name, *v, target);
  } else {
    std::printf("%s: n/a%s\n", name, target);
  }
}

// --pipeline-sweep: dual at every budget, compute calibrated to the I/O, depth 0, the fixed
// depths and auto (see bench/pipeline_sweep.h).
Status RunSweep(const BenchArgs& a, const TraceBenchOptions& o) {
  PipelineSweepOptions po;
  po.bench = o;
  po.fixed_depths.clear();
  for (const std::string& d : SplitList(a.sweep_depths)) {
    char* end = nullptr;
    const long v = std::strtol(d.c_str(), &end, 10);
    if (*end != '\0' || v < 1 || v > 64)
      return Status::InvalidArgument("--sweep-depths takes depths from 1 to 64, not '" + d + "'");
    po.fixed_depths.push_back(static_cast<uint32_t>(v));
  }
  const TraceShape& s = o.replay.shape;
  std::printf("pipeline sweep: dual, %u layers x %u KV heads x %u, f16, %llu tokens (%s of KV), "
              "%u decode steps, depths 0,%s,auto, %u round(s)\n",
              s.n_layer, s.n_head_kv, s.n_embd_head, static_cast<unsigned long long>(s.n_ctx),
              FormatBytes(s.kv_bytes()).c_str(), s.n_gen, a.sweep_depths.c_str(), o.repeat);
  std::fflush(stdout);
  DB_ASSIGN_OR_RETURN(PipelineSweepReport rep, RunPipelineSweep(po, [](const std::string& line) {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  }));
  DB_RETURN_IF_ERROR(WriteFile(a.json, PipelineSweepJson(rep, s) + "\n"));
  if (!a.md.empty()) DB_RETURN_IF_ERROR(WriteFile(a.md, PipelineSweepMarkdown(rep, s)));
  PrintRatio("auto_overlap_efficiency_worst", rep.auto_overlap_efficiency_worst,
             " (target <= 1.10)");
  PrintRatio("auto_vs_depth0_worst", rep.auto_vs_depth0_worst, " (target <= 0.60)");
  PrintRatio("auto_vs_best_fixed_worst", rep.auto_vs_best_fixed_worst, " (target <= 1.05)");
  return Status::OK();
}

Status RunBench(const BenchArgs& a) {
  if (!a.trace)
    return Status::NotSupported(
        "only the KV-trace benchmark (--trace) is available; model benchmarks (-m, --preset) "
        "need the engine's store-backed KV cache");
  if (a.ctx == 0) return Status::InvalidArgument("--ctx is required and must be at least 1");
  TraceBenchOptions o;
  TraceShape& s = o.replay.shape;
  s.n_layer = a.n_layer;
  s.n_head_kv = a.n_head_kv;
  s.n_embd_head = a.head_dim;
  s.n_ctx = a.ctx;
  s.n_gen = a.gen;
  s.chunk_tokens = a.chunk_tokens;
  DB_RETURN_IF_ERROR(s.Validate());
  o.replay.compute_us_per_layer = a.compute_us_per_layer;
  o.replay.verify_checksums = a.verify;
  o.replay.placement.balance_paths = !a.no_path_balance;
  if (a.prefetch_depth == "auto") {
    o.replay.prefetch_depth = TraceReplayOptions::kAutoPrefetch;
  } else {
    char* end = nullptr;
    const long d = std::strtol(a.prefetch_depth.c_str(), &end, 10);
    if (a.prefetch_depth.empty() || *end != '\0' || d < 0 || d > 64)
      return Status::InvalidArgument("--prefetch-depth must be auto or 0 to 64, not '" +
                                     a.prefetch_depth + "'");
    o.replay.prefetch_depth = static_cast<int32_t>(d);
  }
  for (const std::string& p : SplitList(a.policies)) {
    DB_ASSIGN_OR_RETURN(KvPolicy policy, ParseKvPolicy(p));
    o.policies.push_back(policy);
  }
  for (const std::string& b : SplitList(a.budgets)) {
    DB_ASSIGN_OR_RETURN(uint64_t bytes, ParseSize(b));
    if (bytes < 16 * kMiB)
      return Status::InvalidArgument("a budget below 16 MiB cannot hold the replay's buffers: " + b);
    o.budgets_bytes.push_back(bytes);
  }
  if (a.json.empty()) return Status::InvalidArgument("--json FILE is required");

  if (a.repeat == 0) return Status::InvalidArgument("--repeat must be at least 1");
  o.repeat = a.repeat;
  o.replay.store_path = a.kv_store.empty() ? "dualblade-data/trace.store" : a.kv_store;
  {
    // Created when absent (an existing store or device is used as it is): room for the context
    // and the generated tokens twice over, at least 1 GiB.
    uint64_t size = std::max<uint64_t>(kGiB, AlignUp(2 * s.kv_bytes() + 256 * kMiB, kMiB));
    if (!a.store_size.empty()) {
      DB_ASSIGN_OR_RETURN(size, ParseSize(a.store_size));
    }
    bool created = false;
    DB_RETURN_IF_ERROR(PrepareTraceStore(o.replay.store_path, size, &created));
    if (created)
      std::printf("created store %s (%s, data area written once)\n", o.replay.store_path.c_str(),
                  FormatBytes(size).c_str());
  }
  if (a.pipeline_sweep) return RunSweep(a, o);
  o.iobench_peak_bytes_per_s = a.iobench_peak;
  DB_ASSIGN_OR_RETURN(std::string self, SelfExe());
  o.iobench_argv = {self,         "iobench", "--bs",    a.iobench_bs,
                    "--qd",       std::to_string(a.iobench_qd),
                    "--seconds",  std::to_string(a.iobench_seconds), "--json"};

  std::printf("KV trace: %u layers x %u KV heads x %u, f16, %llu tokens (%s of KV), %u decode "
              "steps, compute %llu us/layer, prefetch depth %s\n",
              s.n_layer, s.n_head_kv, s.n_embd_head, static_cast<unsigned long long>(s.n_ctx),
              FormatBytes(s.kv_bytes()).c_str(), s.n_gen,
              static_cast<unsigned long long>(a.compute_us_per_layer), a.prefetch_depth.c_str());
  std::fflush(stdout);
  DB_ASSIGN_OR_RETURN(TraceBenchReport rep, RunTraceBench(o, [](const TracePoint& p) {
    if (p.ok()) {
      std::printf("%-9s %8s  prefill %8.1f ms  step p50 %8.1f ms p99 %8.1f ms  page %9s  "
                  "direct %9s  hit %.2f  ssd %.2f (KV region %.2f)  peak %s  depth %u overlap %.3f "
                  "stall %.1f ms\n",
                  KvPolicyName(p.policy), FormatBytes(p.budget_bytes).c_str(), p.r.prefill_ms,
                  p.r.decode_step_ms_p50, p.r.decode_step_ms_p99,
                  FormatBytes(p.r.read_bytes_page).c_str(),
                  FormatBytes(p.r.read_bytes_direct).c_str(), p.r.pagecache_hit_ratio,
                  p.ssd_bw_fraction, p.ssd_bw_fraction_kv_region,
                  FormatBytes(p.peak_mem_bytes).c_str(), p.r.prefetch_depth,
                  p.r.overlap_efficiency, p.r.stall_ms);
    } else {
      std::printf("%-9s %8s  %s\n", KvPolicyName(p.policy), FormatBytes(p.budget_bytes).c_str(),
                  p.oom ? "OOM-killed" : ("failed: " + p.error).c_str());
    }
    std::fflush(stdout);
  }));
  std::printf("device %s, iobench peak %s (median of %zu)", rep.device.c_str(),
              FormatBandwidth(rep.iobench_peak_bytes_per_s).c_str(),
              rep.iobench_peak_runs_bytes_per_s.size());
  if (!rep.iobench_kv_region_peak_runs_bytes_per_s.empty()) {
    std::printf(", over the KV region %s (median of %zu)",
                FormatBandwidth(rep.iobench_kv_region_peak_bytes_per_s).c_str(),
                rep.iobench_kv_region_peak_runs_bytes_per_s.size());
  }
  std::printf("\n");
  DB_RETURN_IF_ERROR(WriteFile(a.json, TraceBenchJson(rep, s) + "\n"));
  if (!a.md.empty()) DB_RETURN_IF_ERROR(WriteFile(a.md, TraceBenchMarkdown(rep, s)));
  auto line = [](const char* name, const std::optional<double>& v) {
    if (v) {
      std::printf("%s: %.3f\n", name, *v);
    } else {
      std::printf("%s: n/a\n", name);
    }
  };
  line("ssd_util_dual_vs_pagecache_tightest", rep.ratios.ssd_util_dual_vs_pagecache_tightest);
  line("direct_bw_vs_kv_region_peak_worst", rep.ratios.direct_bw_vs_kv_region_peak_worst);
  line("dual_vs_best_single_worst", rep.ratios.dual_vs_best_single_worst);
  line("decode_dual_vs_pagecache_best", rep.ratios.decode_dual_vs_pagecache_best);
  line("prefill_dual_vs_pagecache_best", rep.ratios.prefill_dual_vs_pagecache_best);
  return Status::OK();
}

}  // namespace

void AddBenchCommand(CLI::App& app, int* exit_code) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* cmd = app.add_subcommand(
      "bench", "Benchmark KV policies across memory budgets; --trace replays the KV traffic of "
               "inference for a model shape, each point in its own memory cgroup.");
  cmd->add_flag("--trace", a->trace, "Replay KV traffic for a model shape (no model needed)");
  cmd->add_option("-m,--model", a->model, "Model file (model benchmarks; not available yet)");
  cmd->add_option("--preset", a->preset, "Model preset (model benchmarks; not available yet)");
  cmd->add_option("--layers", a->n_layer, "Layers (n_layer)")->capture_default_str();
  cmd->add_option("--kv-heads", a->n_head_kv, "KV heads (n_head_kv)")->capture_default_str();
  cmd->add_option("--head-dim", a->head_dim, "Head dimension")->capture_default_str();
  cmd->add_option("--ctx", a->ctx, "Context tokens appended by the prefill")->required();
  cmd->add_option("--gen", a->gen, "Decode steps")->capture_default_str();
  cmd->add_option("--chunk-tokens", a->chunk_tokens, "Tokens per KV chunk")->capture_default_str();
  cmd->add_option("--compute-us-per-layer", a->compute_us_per_layer,
                  "Busy CPU time per layer and step, in microseconds")->capture_default_str();
  cmd->add_option("--prefetch-depth", a->prefetch_depth,
                  "Layers read ahead of the computing one: N or auto")->capture_default_str();
  cmd->add_option("--budgets", a->budgets, "Memory budgets, comma-separated (K, M, G)")
      ->capture_default_str();
  cmd->add_option("--policies", a->policies, "KV policies, comma-separated: dual, pagecache, direct")
      ->capture_default_str();
  cmd->add_option("--kv-store", a->kv_store,
                  "Store to use, created if absent (default: dualblade-data/trace.store)");
  cmd->add_option("--store-size", a->store_size, "Size of the store when it is created");
  cmd->add_option("--json", a->json, "Write the results as JSON here")->required();
  cmd->add_option("--md", a->md, "Also write a Markdown table here");
  cmd->add_option("--iobench-peak", a->iobench_peak,
                  "The device's read peak in bytes/s (default: measure it with iobench; when "
                  "given, the KV-region peak is not measured and its fractions are n/a)");
  cmd->add_option("--iobench-bs", a->iobench_bs, "Request size of the peak measurement")
      ->capture_default_str();
  cmd->add_option("--iobench-qd", a->iobench_qd, "Queue depth of the peak measurement")
      ->capture_default_str();
  cmd->add_option("--iobench-seconds", a->iobench_seconds,
                  "Length of each peak measurement (over the data area before each budget's "
                  "runs, and over the blocks a run read right after each run that read from the "
                  "device)")
      ->capture_default_str();
  cmd->add_flag("--verify-checksums", a->verify, "Verify every chunk's xxHash on read");
  cmd->add_flag("--no-path-balance", a->no_path_balance,
                "dual: keep the PAGE set at the headroom, without capping it at the split where "
                "page-cache copies and direct reads finish together");
  cmd->add_option("--repeat", a->repeat,
                  "Runs per point, policies interleaved; the median run's p50 is reported")
      ->capture_default_str();
  cmd->add_flag("--pipeline-sweep", a->pipeline_sweep,
                "Pipeline sweep for dual: compute calibrated to the I/O per budget, then depth 0, "
                "the --sweep-depths and auto");
  cmd->add_option("--sweep-depths", a->sweep_depths, "Fixed depths of --pipeline-sweep")
      ->capture_default_str();
  cmd->callback([a, exit_code] {
    Status st = RunBench(*a);
    *exit_code = st.ok() ? 0 : ReportError("bench", st);
  });
}

}  // namespace dualblade::cli
