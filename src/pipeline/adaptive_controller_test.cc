#include "pipeline/adaptive_controller.h"

#include <algorithm>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace dualblade {
namespace {

constexpr uint64_t kChunk = 256 * 1024;
constexpr uint64_t kLayer = 8 * kChunk;  // 2 MiB

AdaptiveControllerOptions Opts(uint64_t budget) {
  AdaptiveControllerOptions o;
  o.layer_bytes = kLayer;
  o.chunk_bytes = kChunk;
  o.staging_budget_bytes = budget;
  o.warmup_steps = 0;  // scripted readings have no warm-up; see WarmUpStepsAreNotJudged
  return o;
}

// Runs N steps of IO_US of I/O and COMPUTE_US of compute a layer, step I stalling by
// STALL(depth, I) at the depth it ran; returns the depth of every step, in order.
std::vector<uint32_t> RunSteps(AdaptiveController& c, int n, double io_us, double compute_us,
                               const std::function<double(uint32_t depth, int i)>& stall) {
  std::vector<uint32_t> depths;
  for (int i = 0; i < n; ++i) {
    const uint32_t d = c.plan().depth;
    depths.push_back(d);
    c.Observe(io_us, compute_us, stall(d, i));
  }
  return depths;
}

// One step's readings where the reads take IO_US a layer and depth d gives them d compute windows:
// the step stalls by io / d - compute a layer (all of the I/O with no overlap at depth 0).
void ObserveIoBound(AdaptiveController& c, double io_us, double compute_us) {
  const double d = c.plan().depth;
  c.Observe(io_us, compute_us, d == 0 ? io_us : std::max(0.0, io_us / d - compute_us));
}

TEST(AdaptiveControllerTest, StartsOneLayerAheadBeforeMeasuring) {
  AdaptiveController c(Opts(16 * kLayer));
  EXPECT_EQ(c.plan().depth, 1u);
  EXPECT_EQ(c.plan().request_chunks, 4u);  // 1 MiB requests
  EXPECT_EQ(c.plan().queue_depth, 4u);     // 2 requests per layer, 2 layers
}

TEST(AdaptiveControllerTest, DepthFollowsIoOverComputeAfterHysteresis) {
  AdaptiveController c(Opts(16 * kLayer));
  // I/O 2.5x compute: ceil(2.5 * 1.2) = 3 layers ahead; growth waits for 3 agreeing decisions.
  ObserveIoBound(c, 2500, 1000);
  EXPECT_EQ(c.plan().depth, 1u);
  EXPECT_TRUE(c.last_decision().held_by_hysteresis);
  ObserveIoBound(c, 2500, 1000);
  EXPECT_EQ(c.plan().depth, 1u);
  ObserveIoBound(c, 2500, 1000);
  EXPECT_EQ(c.plan().depth, 3u);
  EXPECT_EQ(c.last_decision().wanted_depth, 3u);
  // I/O cheaper than compute: one layer ahead is enough, and shrinking is immediate.
  for (int i = 0; i < 10; ++i) c.Observe(500, 1000, 0);
  EXPECT_EQ(c.plan().depth, 1u);
}

TEST(AdaptiveControllerTest, StallFeedbackAddsOneLayer) {
  AdaptiveController c(Opts(16 * kLayer));
  // 20% stall > 5% tolerance: after the hysteresis, one layer more than the model's depth 1.
  for (int i = 0; i < 4; ++i) c.Observe(500, 1000, 200);
  EXPECT_EQ(c.plan().depth, 2u);
}

// A deeper depth can at best remove the stall: while the stall is within the gain that would make
// a deeper depth worth its staging (5% of the critical path), the controller does not grow the
// pool to measure one, whatever the model asks for. A larger stall is measured as before.
TEST(AdaptiveControllerTest, NoGrowthToMeasureWhatCouldNotBeFaster) {
  // I/O about equal to compute: the model asks for ceil(1.05 * 1.2) = 2 layers.
  AdaptiveController small(Opts(16 * kLayer));
  std::vector<uint32_t> depths = RunSteps(small, 12, 1050, 1000, [](uint32_t, int) { return 40; });
  EXPECT_EQ(std::count(depths.begin(), depths.end(), 1u), 12);
  EXPECT_EQ(small.last_decision().wanted_depth, 2u);
  EXPECT_TRUE(small.last_decision().held_by_hysteresis);

  AdaptiveController large(Opts(16 * kLayer));
  depths = RunSteps(large, 12, 1050, 1000, [](uint32_t d, int) { return d == 1 ? 150 : 10; });
  EXPECT_NE(std::find(depths.begin(), depths.end(), 2u), depths.end());
  EXPECT_EQ(large.plan().depth, 2u);  // measured 13% faster: kept
}

// Where the model's depth's staging is memory reported free, a shallower depth saves nothing: the
// model's depth is kept while a shallower one is no more than 5% faster. Without a report, or
// where memory binds, the least staging that is as fast still wins.
TEST(AdaptiveControllerTest, FreeMemoryKeepsTheModelsDepthOnATie) {
  // I/O about equal to compute: the model asks for 2. Depth 1 stalls 150 us a layer (critical
  // path 1150), depth 2 100 (1100): within 5% of each other.
  auto run = [](std::optional<uint64_t> free_bytes) {
    AdaptiveController c(Opts(16 * kLayer));
    if (free_bytes) c.SetGrowthCost(*free_bytes, 50);
    RunSteps(c, 14, 1050, 1000, [](uint32_t d, int) { return d == 1 ? 150 : 100; });
    return c.plan().depth;
  };
  EXPECT_EQ(run(64 * kLayer), 2u);     // free: the model's depth stays
  EXPECT_EQ(run(std::nullopt), 1u);    // no report: the least staging as fast
  EXPECT_EQ(run(0), 1u);               // memory binds (and growth held by its cost)
  // A shallower depth measured clearly faster is still taken where memory is free.
  AdaptiveController c(Opts(16 * kLayer));
  c.SetGrowthCost(64 * kLayer, 50);
  RunSteps(c, 14, 1050, 1000, [](uint32_t d, int) { return d == 1 ? 150 : 400; });
  EXPECT_EQ(c.plan().depth, 1u);
}

// Where reading further ahead does not shorten the step (the stall comes from something depth
// cannot fix, e.g. page-cache copies competing with compute for the CPUs), the controller tries
// the deeper depth, measures it, and goes back to the shallower one, and stays there.
TEST(AdaptiveControllerTest, MeasuredGuardReturnsToADepthThatWasAsFast) {
  AdaptiveController c(Opts(16 * kLayer));
  // The same stall whatever the depth.
  std::vector<uint32_t> depths = RunSteps(c, 12, 500, 1000, [](uint32_t, int) { return 200; });
  EXPECT_NE(std::find(depths.begin(), depths.end(), 2u), depths.end());  // depth 2 was tried
  EXPECT_EQ(c.plan().depth, 1u);
  EXPECT_EQ(c.last_decision().wanted_depth, 1u);
  // A depth that really is faster is kept: depth 2 halves the stall.
  AdaptiveController d(Opts(16 * kLayer));
  for (int i = 0; i < 12; ++i) d.Observe(500, 1000, d.plan().depth == 1 ? 200 : 100);
  EXPECT_EQ(d.plan().depth, 2u);
}

// I/O about equal to compute: the model asks for 2 layers (its jitter margin), but depth 1 is
// measured to be as fast, so the controller keeps the smaller staging footprint. One slow step
// at depth 1 (a hiccup of the shared machine) does not condemn it.
TEST(AdaptiveControllerTest, MeasurementTakesTheShallowestDepthAsFastAsTheModels) {
  AdaptiveController c(Opts(16 * kLayer));
  std::vector<uint32_t> depths = RunSteps(c, 12, 1000, 1000, [](uint32_t d, int i) {
    return d == 1 ? (i == 1 ? 800 : 20) : 10;  // within 5% of each other
  });
  EXPECT_NE(std::find(depths.begin(), depths.end(), 2u), depths.end());  // the model's depth
  EXPECT_EQ(c.plan().depth, 1u);
  EXPECT_EQ(c.last_decision().wanted_depth, 1u);

  // Really I/O bound (I/O 2.5x compute): depth d stalls by io / d - compute, so depth 1 and 2 are
  // measured slower and the model's depth 3 is kept.
  AdaptiveController io_bound(Opts(16 * kLayer));
  for (int i = 0; i < 16; ++i) ObserveIoBound(io_bound, 2500, 1000);
  EXPECT_EQ(io_bound.plan().depth, 3u);  // ceil(2.5 * 1.2)
}

// I/O busy time grows with the reads in flight: at depth 2 it reads above the floor's
// ceil(io / compute / 1.2) = 2, though depth 1 was measured faster. The step times decide: back to
// depth 1, and it stays there.
TEST(AdaptiveControllerTest, MeasuredDepthBelowTheModelsFloorIsTaken) {
  AdaptiveController c(Opts(16 * kLayer));
  std::vector<uint32_t> depths;
  for (int i = 0; i < 14; ++i) {
    const uint32_t d = c.plan().depth;
    depths.push_back(d);
    if (d == 1) {
      c.Observe(1070, 1000, 80);
    } else {
      c.Observe(1500, 1000, 300);  // io / compute 1.5: the floor alone would keep depth 2
    }
  }
  EXPECT_NE(std::find(depths.begin(), depths.end(), 2u), depths.end());  // depth 2 was tried
  EXPECT_EQ(depths.back(), 1u);
  EXPECT_EQ(c.plan().depth, 1u);
  EXPECT_EQ(std::count(depths.end() - 4, depths.end(), 1u), 4);

  // But a depth below the floor is never tried unmeasured: I/O 2.5x compute from the start, and
  // depth 1 (the start) measured before the first growth; depth 2 was never run.
  AdaptiveController never(Opts(16 * kLayer));
  std::vector<uint32_t> seen =
      RunSteps(never, 20, 2500, 1000, [](uint32_t d, int) { return d == 1 ? 1500 : 0; });
  EXPECT_EQ(std::count(seen.begin(), seen.end(), 2u), 0);
  EXPECT_EQ(never.plan().depth, 3u);
}

// A deeper depth kept because it was faster is not kept for good: once the shallower depth's
// cost has gone stale it is measured again, and taken when it has become as fast.
TEST(AdaptiveControllerTest, StaleShallowerDepthIsMeasuredAgain) {
  AdaptiveControllerOptions o = Opts(16 * kLayer);
  o.rejudge_after_steps = 6;
  AdaptiveController c(o);
  RunSteps(c, 9, 1000, 1000, [](uint32_t d, int) { return d == 1 ? 330 : 10; });
  ASSERT_EQ(c.plan().depth, 2u);  // depth 1 stalls a third of a layer; depth 2 does not
  // Now depth 1 is as fast as depth 2: once its cost is stale it is measured again, and kept
  // (but for the model's depth, measured again in turn).
  std::vector<uint32_t> depths = RunSteps(c, 16, 1000, 1000, [](uint32_t, int) { return 10; });
  EXPECT_GE(std::count(depths.begin(), depths.end(), 1u), 12);
  EXPECT_EQ(c.plan().depth, 1u);
}

// A cost measured long ago describes another moment: after rejudge_after_steps the model's depth
// is tried again, and kept when it has become faster.
TEST(AdaptiveControllerTest, StaleMeasurementsAreTakenAgain) {
  AdaptiveControllerOptions o = Opts(16 * kLayer);
  o.rejudge_after_steps = 6;
  AdaptiveController c(o);
  RunSteps(c, 10, 1000, 1000, [](uint32_t d, int) { return d == 1 ? 20 : 10; });
  ASSERT_EQ(c.plan().depth, 1u);
  // Depth 1 now stalls a third of a layer; depth 2 would not.
  std::vector<uint32_t> depths =
      RunSteps(c, 16, 1000, 1000, [](uint32_t d, int) { return d == 1 ? 330 : 10; });
  EXPECT_NE(std::find(depths.begin(), depths.end(), 2u), depths.end());
  EXPECT_EQ(c.plan().depth, 2u);
}

// The first steps of a run are slow at any depth. They must not make depth 1 look worse than a
// deeper depth measured after them: no cost is taken from them, and the depth grows only once
// depth 1 has been measured after them.
TEST(AdaptiveControllerTest, WarmUpStepsAreNotJudged) {
  AdaptiveControllerOptions o = Opts(16 * kLayer);
  o.warmup_steps = 3;
  AdaptiveController c(o);
  // Warm-up: three slow steps. After it, depth 2 is no faster than depth 1.
  std::vector<uint32_t> depths = RunSteps(c, 14, 1000, 1000, [](uint32_t d, int i) {
    return i < 3 ? 1500 : (d == 1 ? 20 : 10);
  });
  // Depth 1 through the warm-up and for two measured steps after it, then the model's depth 2.
  EXPECT_EQ(std::count(depths.begin(), depths.begin() + 5, 1u), 5);
  EXPECT_NE(std::find(depths.begin(), depths.end(), 2u), depths.end());
  EXPECT_EQ(c.plan().depth, 1u);
}

TEST(AdaptiveControllerTest, NoIoMeansNoPrefetch) {
  AdaptiveController c(Opts(16 * kLayer));
  c.Observe(0, 1000, 0);
  EXPECT_EQ(c.plan().depth, 0u);
}

TEST(AdaptiveControllerTest, BudgetCapsDepth) {
  AdaptiveController c(Opts(2 * kLayer + kChunk));
  for (int i = 0; i < 10; ++i) ObserveIoBound(c, 8000, 1000);
  EXPECT_EQ(c.last_decision().memory_cap_depth, 2u);
  EXPECT_EQ(c.plan().depth, 2u);
}

// A pool shorter than a layer with no pressure: depth 1 costs nothing beyond the pool and keeps
// the device reading through the layer's tail; pressure below a layer still means depth 0.
TEST(AdaptiveControllerTest, PoolShorterThanALayerStillReadsOneLayerAhead) {
  AdaptiveController c(Opts(kLayer / 2));
  for (int i = 0; i < 10; ++i) c.Observe(3000, 1000, 0);
  EXPECT_EQ(c.last_decision().memory_cap_depth, 1u);
  EXPECT_EQ(c.plan().depth, 1u);
  c.SetHeadroom(kLayer / 4);
  EXPECT_EQ(c.plan().depth, 0u);
}

// Where memory binds, a larger pool comes out of the page cache's KV, and those bytes are read
// from the device every step after: the controller grows only while the stall it could remove is
// larger than that, and grows as before where the memory is free.
TEST(AdaptiveControllerTest, GrowthIntoThePageCacheMustPayForItself) {
  // I/O about equal to compute: the model asks for 2 layers. A stall of 200 us a layer at
  // depth 1, 20 at depth 2.
  auto run = [](uint64_t free_bytes, double cost_us, std::vector<uint32_t>* depths) {
    AdaptiveController c(Opts(16 * kLayer));
    c.SetGrowthCost(free_bytes, cost_us);
    *depths = RunSteps(c, 12, 1000, 1000, [](uint32_t d, int) { return d == 1 ? 200 : 20; });
    return c.last_decision();
  };
  // Nothing free, and each layer taken costs 300 us a layer: held at depth 1, and said so.
  std::vector<uint32_t> held;
  ControllerDecision d = run(0, 300, &held);
  EXPECT_EQ(std::count(held.begin(), held.end(), 1u), 12);
  EXPECT_EQ(d.plan.depth, 1u);
  EXPECT_EQ(d.wanted_depth, 2u);
  EXPECT_TRUE(d.held_for_page_cache);
  EXPECT_NE(d.ToString().find("page cache"), std::string::npos);
  // Cheaper than the stall (100 us): it grows, and keeps the faster depth.
  std::vector<uint32_t> cheap;
  d = run(0, 100, &cheap);
  EXPECT_NE(std::find(cheap.begin(), cheap.end(), 2u), cheap.end());
  EXPECT_EQ(d.plan.depth, 2u);
  EXPECT_FALSE(d.held_for_page_cache);
  // The layer the growth needs is free: no cost, whatever the page cache would pay.
  std::vector<uint32_t> free_room;
  d = run(kLayer, 300, &free_room);
  EXPECT_EQ(d.plan.depth, 2u);
  // Half of it free: half a layer taken, 150 us, below the stall.
  std::vector<uint32_t> half;
  d = run(kLayer / 2, 300, &half);
  EXPECT_EQ(d.plan.depth, 2u);
  // A pool already at the staging budget does not grow with the depth: nothing is taken.
  AdaptiveController capped(Opts(2 * kLayer));
  capped.SetGrowthCost(0, 1e9);
  for (int i = 0; i < 12; ++i) capped.Observe(1000, 1000, capped.plan().depth == 1 ? 200 : 20);
  EXPECT_EQ(capped.plan().depth, 2u);
}

// The headroom a pipeline reports after each memory reading: nothing under no pressure; under
// pressure a layer less than the pool holds, so pressure that lasts walks the depth down a layer
// per reading, and the depth grows back once it clears.
TEST(AdaptiveControllerTest, StagingHeadroomFollowsPressure) {
  EXPECT_EQ(StagingHeadroom(false, 4, kLayer), UINT64_MAX);
  EXPECT_EQ(StagingHeadroom(true, 4, kLayer), 3 * kLayer);
  EXPECT_EQ(StagingHeadroom(true, 1, kLayer), 0u);
  EXPECT_EQ(StagingHeadroom(true, 0, kLayer), 0u);

  AdaptiveController c(Opts(16 * kLayer));
  for (int i = 0; i < 10; ++i) ObserveIoBound(c, 3000, 1000);
  ASSERT_EQ(c.plan().depth, 3u);
  std::vector<uint32_t> depths;
  for (int i = 0; i < 4; ++i) {
    c.SetHeadroom(StagingHeadroom(true, c.plan().depth, kLayer));
    depths.push_back(c.plan().depth);
  }
  EXPECT_EQ(depths, (std::vector<uint32_t>{2, 1, 0, 0}));
  c.SetHeadroom(StagingHeadroom(false, c.plan().depth, kLayer));
  for (int i = 0; i < 6; ++i) ObserveIoBound(c, 3000, 1000);
  EXPECT_GE(c.plan().depth, 3u);
}

TEST(AdaptiveControllerTest, PressureShrinksAtOnceAndGrowsBackWithHysteresis) {
  AdaptiveController c(Opts(16 * kLayer));
  for (int i = 0; i < 10; ++i) ObserveIoBound(c, 3000, 1000);
  // Depth 3 reads as fast as the model's ceil(3 * 1.2) = 4 and the one it measured above that.
  ASSERT_EQ(c.plan().depth, 3u);
  c.SetHeadroom(kLayer + kLayer / 2);
  EXPECT_EQ(c.plan().depth, 1u);
  c.SetHeadroom(kLayer / 2);  // less than a layer: stream chunk by chunk
  EXPECT_EQ(c.plan().depth, 0u);
  EXPECT_EQ(c.plan().request_chunks, 1u);
  // Headroom back, but only just enough for 3 layers: no slack, so the depth stays put.
  c.SetHeadroom(3 * kLayer);
  for (int i = 0; i < 5; ++i) ObserveIoBound(c, 3000, 1000);
  EXPECT_EQ(c.plan().depth, 0u);
  EXPECT_TRUE(c.last_decision().held_by_hysteresis);
  // Clear pressure: back to the depth measured as the fastest, without waiting for votes.
  c.SetHeadroom(UINT64_MAX);
  EXPECT_EQ(c.plan().depth, 3u);
  EXPECT_FALSE(c.last_decision().ToString().empty());
}

}  // namespace
}  // namespace dualblade
