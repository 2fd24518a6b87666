// Drives the built dualblade binary: `bench --trace` end to end on a small shape and store (the
// JSON contract of DESIGN.md, the ratio lines last), and its errors for bad input.
#include <fstream>
#include <iterator>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "bench/cgroup_runner.h"
#include "testing/test_env.h"

namespace dualblade {
namespace {

using testing::DualbladeBinary;
using testing::RunCommand;
using testing::TempDir;

int Dualblade(const std::string& args, std::string* out) {
  out->clear();
  return RunCommand(DualbladeBinary() + " " + args, out);
}

TEST(BenchCommandTest, TraceWritesTheJsonContractAndPrintsTheRatiosLast) {
  if (auto why = CgroupRunnerUnavailableReason())
    GTEST_SKIP() << "cannot create memory cgroups here (needs root or a delegated cgroup): " << *why;
  TempDir dir;
  std::string out;
  ASSERT_EQ(Dualblade("format " + dir.File("s.img") + " --size 256M", &out), 0) << out;
  const std::string json = dir.File("r.json");
  const std::string md = dir.File("r.md");
  ASSERT_EQ(Dualblade("bench --trace --layers 2 --kv-heads 4 --head-dim 64 --ctx 4096 --gen 3 "
                      "--budgets 48M,96M --policies dual,pagecache,direct --kv-store " +
                          dir.File("s.img") + " --iobench-seconds 0.5 --json " + json + " --md " + md,
                      &out),
            0)
      << out;
  // The first two ratios are the last two lines.
  const size_t last = out.rfind("prefill_dual_vs_pagecache_best: ");
  const size_t before = out.rfind("decode_dual_vs_pagecache_best: ");
  ASSERT_NE(last, std::string::npos) << out;
  ASSERT_NE(before, std::string::npos) << out;
  EXPECT_LT(before, last);
  EXPECT_EQ(out.find('\n', last), out.size() - 1) << out;

  std::ifstream in(json);
  nlohmann::json j = nlohmann::json::parse(std::string(std::istreambuf_iterator<char>(in), {}));
  EXPECT_GT(j["iobench_peak_bytes_per_s"].get<double>(), 0);
  // The peak over the blocks a run read, right after each run that read from the device (every
  // direct run, at least).
  EXPECT_GT(j["iobench_kv_region_peak_bytes_per_s"].get<double>(), 0);
  EXPECT_GE(j["iobench_kv_region_peak_runs_bytes_per_s"].size(), 2u);
  EXPECT_GT(j["kv_region_offset_bytes"].get<uint64_t>(), 0u);
  // 2 layers x (K + V) x 4099 tokens of 512-byte rows, in whole 256-token chunks.
  EXPECT_GE(j["kv_region_len_bytes"].get<uint64_t>(), 2u * 2 * 17 * 256 * 512);
  EXPECT_FALSE(j["device"].get<std::string>().empty());
  ASSERT_EQ(j["points"].size(), 6u);
  for (const auto& p : j["points"]) {
    ASSERT_FALSE(p["oom"].get<bool>()) << p.dump();
    for (const char* f : {"policy", "budget_bytes", "prefill_ms", "decode_step_ms_p50",
                          "decode_step_ms_p99", "read_bytes_page", "read_bytes_direct",
                          "device_read_bytes", "device_busy_ms", "ssd_bw_fraction",
                          "ssd_bw_fraction_kv_region",
                          "pagecache_hit_ratio", "peak_mem_bytes", "overlap_efficiency",
                          "stall_ms", "prefetch_depth"})
      EXPECT_TRUE(p.contains(f)) << f << " missing in " << p.dump();
    EXPECT_LE(p["peak_mem_bytes"].get<uint64_t>(), p["budget_bytes"].get<uint64_t>());
    if (p["policy"] == "direct") {
      EXPECT_GT(p["ssd_bw_fraction_kv_region"].get<double>(), 0);
      EXPECT_EQ(p["ssd_bw_fraction_kv_region_runs"].size(), 1u) << p.dump();
    }
  }
  for (const char* r : {"decode_dual_vs_pagecache_best", "prefill_dual_vs_pagecache_best",
                        "ssd_util_dual_vs_pagecache_tightest", "dual_vs_best_single_worst",
                        "direct_bw_vs_kv_region_peak_worst"})
    EXPECT_TRUE(j["ratios"].contains(r)) << r;
  EXPECT_TRUE(j["ratios"]["direct_bw_vs_kv_region_peak_worst"].is_number());
  EXPECT_NE(out.find("direct_bw_vs_kv_region_peak_worst: "), std::string::npos) << out;
  EXPECT_TRUE(j["ratios"]["decode_dual_vs_pagecache_best"].is_number());
  std::ifstream min(md);
  std::string table(std::istreambuf_iterator<char>(min), {});
  EXPECT_NE(table.find("| dual | 48.0 MiB |"), std::string::npos) << table;
}

// --repeat runs every point that many times and reports each run's p50; --pipeline-sweep runs
// dual at depth 0, the fixed depths and auto after calibrating compute, ratios last.
TEST(BenchCommandTest, RepeatAndPipelineSweep) {
  if (auto why = CgroupRunnerUnavailableReason())
    GTEST_SKIP() << "cannot create memory cgroups here (needs root or a delegated cgroup): " << *why;
  TempDir dir;
  std::string out;
  const std::string store = dir.File("s.img");  // created by bench when absent
  const std::string shape = "bench --trace --layers 2 --kv-heads 4 --head-dim 64 --ctx 4096 "
                            "--gen 3 --iobench-peak 1e9 --store-size 256M --kv-store " + store;
  const std::string json = dir.File("r.json");
  ASSERT_EQ(Dualblade(shape + " --budgets 64M --policies dual,direct --repeat 2 "
                              "--prefetch-depth auto --compute-us-per-layer 300 --json " + json,
                      &out),
            0)
      << out;
  {
    std::ifstream in(json);
    nlohmann::json j = nlohmann::json::parse(std::string(std::istreambuf_iterator<char>(in), {}));
    ASSERT_EQ(j["points"].size(), 2u) << j.dump();
    for (const auto& p : j["points"]) {
      ASSERT_EQ(p["decode_step_ms_p50_runs"].size(), 2u) << p.dump();
      EXPECT_GE(p["overlap_efficiency"].get<double>(), 1.0) << p.dump();
      EXPECT_GE(p["prefetch_depth"].get<uint32_t>(), 1u) << p.dump();
    }
  }
  const std::string sweep = dir.File("sweep.json");
  const std::string md = dir.File("sweep.md");
  ASSERT_EQ(Dualblade(shape + " --budgets 64M --pipeline-sweep --sweep-depths 1,2 --json " +
                          sweep + " --md " + md,
                      &out),
            0)
      << out;
  const size_t last = out.rfind("auto_vs_best_fixed_worst: ");
  ASSERT_NE(last, std::string::npos) << out;
  EXPECT_EQ(out.find('\n', last), out.size() - 1) << out;
  EXPECT_NE(out.find("auto_overlap_efficiency_worst: "), std::string::npos) << out;
  EXPECT_NE(out.find("auto_vs_depth0_worst: "), std::string::npos) << out;
  std::ifstream in(sweep);
  nlohmann::json j = nlohmann::json::parse(std::string(std::istreambuf_iterator<char>(in), {}));
  ASSERT_EQ(j["budgets"].size(), 1u) << j.dump();
  const auto& b = j["budgets"][0];
  EXPECT_GT(b["compute_us_per_layer"].get<uint64_t>(), 0u) << b.dump();
  ASSERT_EQ(b["points"].size(), 4u) << b.dump();  // depth 0, 1, 2, auto
  for (const auto& p : b["points"]) EXPECT_FALSE(p["oom"].get<bool>()) << p.dump();
  // Auto's compute runs within its steps, so its share of depth 0's step is at most auto's.
  ASSERT_TRUE(b["auto_compute_vs_depth0"].is_number()) << b.dump();
  EXPECT_GT(b["auto_compute_vs_depth0"].get<double>(), 0) << b.dump();
  EXPECT_LE(b["auto_compute_vs_depth0"].get<double>(), b["auto_vs_depth0"].get<double>())
      << b.dump();
  EXPECT_TRUE(j["ratios"]["auto_vs_depth0_worst"].is_number()) << j.dump();
  EXPECT_TRUE(j["ratios"]["auto_overlap_efficiency_worst"].is_number()) << j.dump();
  EXPECT_TRUE(j["ratios"]["auto_vs_best_fixed_worst"].is_number()) << j.dump();
}

TEST(BenchCommandTest, BadInputIsOneClearSentence) {
  std::string out;
  EXPECT_NE(Dualblade("bench --ctx 16 --json /dev/null", &out), 0);
  EXPECT_NE(out.find("--trace"), std::string::npos) << out;
  EXPECT_NE(Dualblade("bench --trace --ctx 16 --policies dual,lru --json /dev/null", &out), 0);
  EXPECT_NE(out.find("'lru'"), std::string::npos) << out;
  EXPECT_NE(Dualblade("bench --trace --ctx 16 --budgets 1M --json /dev/null", &out), 0);
  EXPECT_NE(out.find("16 MiB"), std::string::npos) << out;
  EXPECT_NE(Dualblade("bench --trace --ctx 16 --prefetch-depth deep --json /dev/null", &out), 0);
  EXPECT_NE(out.find("--prefetch-depth"), std::string::npos) << out;
  EXPECT_NE(Dualblade("bench --trace --ctx 16 --layers 0 --json /dev/null", &out), 0);
  EXPECT_NE(out.find("--layers"), std::string::npos) << out;
  EXPECT_NE(Dualblade("bench --trace --ctx 16 --repeat 0 --json /dev/null", &out), 0);
  EXPECT_NE(out.find("--repeat"), std::string::npos) << out;
  EXPECT_NE(Dualblade("bench --trace --ctx 16 --pipeline-sweep --sweep-depths 0 --json /dev/null",
                      &out),
            0);
  EXPECT_NE(out.find("--sweep-depths"), std::string::npos) << out;
}

}  // namespace
}  // namespace dualblade
