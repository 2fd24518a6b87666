// Simulated step times under fixed and adaptive prefetch depths, with compute about equal to I/O
// per layer (the regime where overlap matters most): the adaptive depth must beat no overlap
// (depth 0) by a wide margin and come within 5% of the best depth a sweep finds.
#include <algorithm>
#include <cstdio>

#include <gtest/gtest.h>

#include "pipeline/sim_executor.h"

namespace dualblade {
namespace {

constexpr uint32_t kSteps = 24;
constexpr uint32_t kWarmupSteps = 6;  // the controller's EWMA and hysteresis settle first

SimConfig BalancedConfig(uint64_t seed) {
  SimConfig c;
  c.seed = seed;
  c.n_layer = 32;
  c.chunks_per_layer = 8;
  c.chunk_bytes = 256 * 1024;
  c.io_us_per_chunk = 100;   // ~800 us of device time per layer
  c.io_latency_us_max = 60;
  c.compute_us_per_layer = 820;
  c.attention_fraction = 0.15;  // the rest (projections, MLP) needs the whole attention output
  return c;
}

struct SimRun {
  double mean_step_us = 0;
  double overlap_efficiency = 0;
  uint32_t depth = 0;
};

SimRun MeanStep(const SimConfig& cfg, uint64_t budget_bytes, bool auto_depth, uint32_t depth) {
  // The same request size and queue depth rule the controller uses, so only depth differs.
  PipelinePlan plan{.depth = depth, .request_chunks = 4, .queue_depth = 2 * (depth + 1)};
  SimHarness h(cfg, budget_bytes, plan, auto_depth);
  SimRun r;
  for (uint32_t step = 0; step < kSteps; ++step) {
    StepStats stats;
    Status st = h.RunStep(step, &stats);
    EXPECT_TRUE(st.ok()) << st.ToString();
    if (step < kWarmupSteps) continue;
    r.mean_step_us += static_cast<double>(stats.step_us) / (kSteps - kWarmupSteps);
    r.overlap_efficiency += stats.overlap_efficiency() / (kSteps - kWarmupSteps);
    r.depth = stats.depth;
  }
  return r;
}

TEST(PipelineDepthTest, AutoDepthOverlapsAndMatchesBestFixedDepth) {
  for (uint64_t seed : {1ull, 2ull, 3ull}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    SimConfig cfg = BalancedConfig(seed);
    uint64_t layer_bytes = cfg.chunk_bytes * cfg.chunks_per_layer;
    for (uint64_t budget_layers : {2ull, 4ull, 8ull}) {
      uint64_t budget = budget_layers * layer_bytes;
      SimRun none = MeanStep(cfg, budget, false, 0);
      SimRun best{1e300, 0, 0};
      for (uint32_t d = 1; d <= 6; ++d) {
        SimRun r = MeanStep(cfg, budget, false, d);
        if (r.mean_step_us < best.mean_step_us) best = r;
      }
      SimRun adaptive = MeanStep(cfg, budget, true, 0);
      std::printf("seed %llu budget %llu layers: depth0 %.0f us, auto %.0f us (depth %u, overlap "
                  "efficiency %.3f) = %.3fx depth0; best fixed depth %u %.0f us, auto/best %.3f\n",
                  static_cast<unsigned long long>(seed),
                  static_cast<unsigned long long>(budget_layers), none.mean_step_us,
                  adaptive.mean_step_us, adaptive.depth, adaptive.overlap_efficiency,
                  adaptive.mean_step_us / none.mean_step_us, best.depth, best.mean_step_us,
                  adaptive.mean_step_us / best.mean_step_us);
      EXPECT_LE(adaptive.mean_step_us, 0.6 * none.mean_step_us);
      EXPECT_LE(adaptive.mean_step_us, 1.05 * best.mean_step_us);
      EXPECT_LE(adaptive.overlap_efficiency, 1.10);
    }
  }
}

TEST(PipelineDepthTest, PressureShrinksDepthAndClearingGrowsItBack) {
  SimConfig cfg = BalancedConfig(9);
  // Reads that take long to come back but leave the device free meanwhile (a deep device queue):
  // only several layers in flight hide the latency.
  cfg.io_us_per_chunk = 40;
  cfg.io_latency_us_max = 4000;
  uint64_t layer_bytes = cfg.chunk_bytes * cfg.chunks_per_layer;
  SimHarness h(cfg, 8 * layer_bytes, {}, true);
  StepStats stats;
  for (uint64_t step = 0; step < 8; ++step) ASSERT_TRUE(h.RunStep(step, &stats).ok());
  // Several layers ahead (depth 1 stalls on the latency; the controller grows, then measures the
  // depths around its choice now and then).
  EXPECT_GE(stats.depth, 3u);
  h.controller()->SetHeadroom(layer_bytes + layer_bytes / 2);
  ASSERT_TRUE(h.RunStep(8, &stats).ok());
  EXPECT_EQ(stats.depth, 1u);
  EXPECT_TRUE(h.pool().full());
  h.controller()->SetHeadroom(UINT64_MAX);
  for (uint64_t step = 9; step < 14; ++step) ASSERT_TRUE(h.RunStep(step, &stats).ok());
  EXPECT_GE(stats.depth, 3u);  // grown back
}

}  // namespace
}  // namespace dualblade
