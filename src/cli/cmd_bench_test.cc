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
  EXPECT_FALSE(j["device"].get<std::string>().empty());
  ASSERT_EQ(j["points"].size(), 6u);
  for (const auto& p : j["points"]) {
    ASSERT_FALSE(p["oom"].get<bool>()) << p.dump();
    for (const char* f : {"policy", "budget_bytes", "prefill_ms", "decode_step_ms_p50",
                          "decode_step_ms_p99", "read_bytes_page", "read_bytes_direct",
                          "device_read_bytes", "device_busy_ms", "ssd_bw_fraction",
                          "pagecache_hit_ratio", "peak_mem_bytes", "overlap_efficiency",
                          "stall_ms", "prefetch_depth"})
      EXPECT_TRUE(p.contains(f)) << f << " missing in " << p.dump();
    EXPECT_LE(p["peak_mem_bytes"].get<uint64_t>(), p["budget_bytes"].get<uint64_t>());
  }
  for (const char* r : {"decode_dual_vs_pagecache_best", "prefill_dual_vs_pagecache_best",
                        "ssd_util_dual_vs_pagecache_tightest", "dual_vs_best_single_worst"})
    EXPECT_TRUE(j["ratios"].contains(r)) << r;
  EXPECT_TRUE(j["ratios"]["decode_dual_vs_pagecache_best"].is_number());
  std::ifstream min(md);
  std::string table(std::istreambuf_iterator<char>(min), {});
  EXPECT_NE(table.find("| dual | 48.0 MiB |"), std::string::npos) << table;
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
}

}  // namespace
}  // namespace dualblade
