// The dual policy under a real memory cgroup whose limit is below the KV size: it must finish
// without an OOM kill, keep its PAGE set within the headroom the monitor reported at every
// step, and have that set really stay in the page cache (measured residency, not timings).
#include <gtest/gtest.h>

#include "bench/cgroup_runner.h"
#include "bench/trace_bench.h"
#include "common/units.h"
#include "store/store.h"
#include "testing/test_env.h"

namespace dualblade {
namespace {

TEST(TraceCgroupTest, DualFitsItsPageSetUnderALimitBelowTheKvSize) {
  if (auto why = CgroupRunnerUnavailableReason())
    GTEST_SKIP() << "cannot create memory cgroups here (needs root or a delegated cgroup): " << *why;
  testing::TempDir dir;
  const std::string path = dir.File("trace.store");
  store::FormatOptions fo;
  fo.size_bytes = 512 * kMiB;
  ASSERT_TRUE(store::Store::Format(path, fo).ok());

  TraceBenchOptions o;
  o.replay.shape.n_layer = 4;
  o.replay.shape.n_head_kv = 8;
  o.replay.shape.n_embd_head = 64;
  o.replay.shape.n_ctx = 16384;  // 4 x 16384 x 2 KiB = 128 MiB of KV
  o.replay.shape.n_gen = 4;
  o.replay.store_path = path;
  o.policies = {KvPolicy::kDual};
  constexpr uint64_t kLimit = 96 * kMiB;
  ASSERT_LT(kLimit, o.replay.shape.kv_bytes());
  o.budgets_bytes = {kLimit};
  o.iobench_peak_bytes_per_s = 1e9;  // no peak measurement: the ratio is not under test
  o.point_timeout_ms = 5 * 60 * 1000;

  auto rep = RunTraceBench(o, nullptr);
  ASSERT_TRUE(rep.ok()) << rep.status().ToString();
  ASSERT_EQ(rep->points.size(), 1u);
  const TracePoint& p = rep->points[0];
  ASSERT_FALSE(p.oom) << "dual was OOM-killed under " << FormatBytes(kLimit);
  ASSERT_TRUE(p.error.empty()) << p.error;
  std::printf("peak %s, PAGE set max %s, headroom min %s, hit ratio %.3f, page %s, direct %s\n",
              FormatBytes(p.peak_mem_bytes).c_str(), FormatBytes(p.r.page_set_bytes_max).c_str(),
              FormatBytes(p.r.kv_headroom_bytes_min).c_str(), p.r.pagecache_hit_ratio,
              FormatBytes(p.r.read_bytes_page).c_str(), FormatBytes(p.r.read_bytes_direct).c_str());
  EXPECT_LE(p.peak_mem_bytes, kLimit);
  EXPECT_TRUE(p.r.page_within_headroom);
  EXPECT_LE(p.r.page_set_bytes_max, kLimit);
  // It used the page cache for part of the KV and the direct path for the rest.
  EXPECT_GT(p.r.page_set_bytes_max, 0u);
  EXPECT_GT(p.r.read_bytes_page, 0u);
  EXPECT_GT(p.r.read_bytes_direct, 0u);
  // The PAGE set, written buffered by the prefill, stays cached: every step hits.
  EXPECT_GT(p.r.pagecache_hit_ratio, 0.9);
}

}  // namespace
}  // namespace dualblade
