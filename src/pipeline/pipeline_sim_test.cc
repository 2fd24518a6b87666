// Deterministic simulation of the prefetcher (TigerBeetle VOPR style): one seed drives the I/O
// latencies, compute times, pool size, plan, injected read errors and cancellation; invariants are
// checked between every two events. A failing seed is printed and replays exactly with
// DUALBLADE_SIM_SEED=<seed>.
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "pipeline/sim_executor.h"

namespace dualblade {
namespace {

struct Scenario {
  SimConfig sim;
  uint64_t budget_bytes = 0;
  PipelinePlan plan;
  bool auto_depth = false;
  uint32_t steps = 3;
};

Scenario RandomScenario(uint64_t seed) {
  SimRng rng(seed * 0x9E3779B97F4A7C15ull + 1);
  Scenario s;
  SimConfig& c = s.sim;
  c.seed = seed;
  c.n_layer = 1 + static_cast<uint32_t>(rng.Below(8));
  c.chunks_per_layer = 1 + static_cast<uint32_t>(rng.Below(12));
  c.chunk_bytes = 4096;
  c.io_us_per_chunk = 10 + rng.Below(200);
  c.io_latency_us_max = rng.Below(300);
  c.compute_us_per_layer = 10 + rng.Below(3000);
  c.attention_fraction = rng.Uniform();
  c.read_error_rate = rng.Below(3) == 0 ? rng.Uniform() * 0.05 : 0;
  c.cancel_at_event = rng.Below(4) == 0 ? 1 + rng.Below(200) : 0;
  // Pool sizes from a single buffer (smaller than any multi-chunk layer) to three layers.
  uint64_t buffers = 1 + rng.Below(3 * c.chunks_per_layer);
  s.budget_bytes = buffers * c.chunk_bytes;
  s.auto_depth = rng.Below(3) == 0;
  s.plan.depth = static_cast<uint32_t>(rng.Below(5));
  s.plan.request_chunks = 1 + static_cast<uint32_t>(rng.Below(4));
  s.plan.queue_depth = 1 + static_cast<uint32_t>(rng.Below(8));
  c.compute_queue = 1 + static_cast<uint32_t>(rng.Below(3));
  c.compute_wake_us = rng.Below(100);
  c.issue_start_shift = rng.Below(2) == 0 ? 0 : 1 + static_cast<uint32_t>(rng.Below(16));
  return s;
}

// Runs a scenario, checking invariants at every event; returns a trace digest for replay checks.
uint64_t RunScenario(const Scenario& s) {
  SimHarness h(s.sim, s.budget_bytes, s.plan, s.auto_depth);
  const uint64_t chunks = uint64_t{s.sim.n_layer} * s.sim.chunks_per_layer;
  uint64_t digest = 0;
  uint32_t busy_steps = 0;
  SimRng pressure(s.sim.seed ^ 0x5EEDull);
  for (uint32_t step = 0; step < s.steps; ++step) {
    if (h.controller() != nullptr && pressure.Below(2) == 0) {
      // Memory pressure comes and goes between steps: anywhere from none to a fraction of a layer.
      uint64_t layer_bytes = s.sim.chunk_bytes * s.sim.chunks_per_layer;
      h.controller()->SetHeadroom(pressure.Below(4) == 0 ? UINT64_MAX
                                                         : pressure.Below(4 * layer_bytes));
    }
    StepStats stats;
    uint64_t events_before = h.executor().events();
    Status st = h.RunStep(step, &stats);
    // Progress: every event retires a read (of at least one chunk) or a compute task.
    EXPECT_LE(h.executor().events() - events_before, 2 * chunks + s.sim.n_layer);
    // After every step, failed or not: nothing in flight, the pool full again.
    EXPECT_TRUE(h.pool().full()) << "step " << step;
    EXPECT_EQ(h.prefetcher().leases_held(), 0u);
    EXPECT_EQ(h.executor().outstanding(), 0u);
    if (st.ok()) {
      EXPECT_TRUE(h.consumer().StepComplete()) << "step " << step;
      EXPECT_EQ(stats.chunks_delivered, uint64_t{s.sim.n_layer} * s.sim.chunks_per_layer);
    } else {
      EXPECT_TRUE((st.IsIOError() && st.injected()) || st.IsBusy()) << st.ToString();
      // A cancel fails the step it lands in (or the next, when it lands on the last event),
      // once; a read error that came first wins.
      if (st.IsBusy()) {
        EXPECT_TRUE(h.executor().cancel_fired());
        EXPECT_EQ(++busy_steps, 1u);
      }
    }
    EXPECT_LE(stats.peak_staging_bytes, s.budget_bytes);
    EXPECT_LE(stats.compute_busy_us, stats.step_us);
    EXPECT_LE(stats.io_busy_us, stats.step_us);
    digest = digest * 1000003 + stats.step_us * 31 + (st.ok() ? 1 : 2);
  }
  return digest ^ h.executor().trace_digest();
}

uint64_t SeedCount() {
  const char* n = std::getenv("DUALBLADE_SIM_SEEDS");
  return n != nullptr ? std::strtoull(n, nullptr, 10) : 2000;
}

// A broken invariant inside the library aborts (DB_CHECK) before gtest can print its trace, so
// the seed being run is announced from the abort signal too.
volatile uint64_t g_running_seed = 0;
void PrintSeedOnAbort(int) {
  char buf[64];
  int n = std::snprintf(buf, sizeof(buf), "failing seed: %llu\n",
                        static_cast<unsigned long long>(g_running_seed));
  if (n > 0) (void)!write(STDERR_FILENO, buf, static_cast<size_t>(n));
  std::signal(SIGABRT, SIG_DFL);
}

TEST(PipelineSimTest, RandomSeedsKeepInvariants) {
  std::signal(SIGABRT, PrintSeedOnAbort);
  const char* one = std::getenv("DUALBLADE_SIM_SEED");
  uint64_t first = one != nullptr ? std::strtoull(one, nullptr, 10) : 1;
  uint64_t last = one != nullptr ? first : SeedCount();
  for (uint64_t seed = first; seed <= last; ++seed) {
    g_running_seed = seed;
    SCOPED_TRACE("replay with DUALBLADE_SIM_SEED=" + std::to_string(seed));
    RunScenario(RandomScenario(seed));
    if (HasFailure()) {
      std::fprintf(stderr, "failing seed: %llu\n", static_cast<unsigned long long>(seed));
      break;
    }
  }
  std::signal(SIGABRT, SIG_DFL);
}

TEST(PipelineSimTest, SeedReplaysExactly) {
  for (uint64_t seed : {7ull, 42ull, 1234ull}) {
    Scenario s = RandomScenario(seed);
    EXPECT_EQ(RunScenario(s), RunScenario(s)) << "seed " << seed;
  }
}

// With a compute thread that must be woken for every task it finds idle, queueing the next task
// while one runs (the default, 2) saves the wake-ups: every step is faster than with one task at
// a time, and the results are the same chunks, each once.
TEST(PipelineSimTest, QueuedComputeSkipsTheWakeUps) {
  for (uint32_t depth : {0u, 1u, 3u}) {
    SCOPED_TRACE("depth " + std::to_string(depth));
    uint64_t step_us[2] = {0, 0};
    for (uint32_t queue : {1u, 2u}) {
      SimConfig c;
      c.seed = 99;
      c.n_layer = 6;
      c.chunks_per_layer = 8;
      c.io_us_per_chunk = 80;
      c.compute_us_per_layer = 700;
      c.attention_fraction = 0.5;
      c.compute_wake_us = 60;
      c.compute_queue = queue;
      PipelinePlan plan{.depth = depth, .request_chunks = 2, .queue_depth = 8};
      SimHarness h(c, uint64_t{4} * c.chunks_per_layer * c.chunk_bytes, plan, false);
      StepStats st;
      ASSERT_TRUE(h.RunStep(0, &st).ok());
      EXPECT_TRUE(h.consumer().StepComplete());
      step_us[queue - 1] = st.step_us;
    }
    EXPECT_LT(step_us[1], step_us[0]) << "queued " << step_us[1] << " us, one at a time "
                                      << step_us[0] << " us";
  }
}

TEST(PipelineSimTest, PoolOfOneBufferStreamsEveryLayer) {
  Scenario s;
  s.sim.n_layer = 4;
  s.sim.chunks_per_layer = 16;
  s.budget_bytes = s.sim.chunk_bytes;  // one buffer: a sixteenth of a layer
  s.plan = {.depth = 3, .request_chunks = 4, .queue_depth = 8};
  RunScenario(s);
}

TEST(PipelineSimTest, ReadErrorFailsStepCleanlyAndNextStepRuns) {
  Scenario s;
  s.sim.n_layer = 6;
  s.sim.chunks_per_layer = 8;
  s.budget_bytes = 24 * s.sim.chunk_bytes;
  s.plan = {.depth = 2, .request_chunks = 2, .queue_depth = 6};
  SimHarness h(s.sim, s.budget_bytes, s.plan, false);
  h.executor().FailReadOfLayer(0, 3);
  Status st = h.RunStep(0, nullptr);
  EXPECT_TRUE(st.IsIOError()) << st.ToString();
  EXPECT_TRUE(st.injected());
  EXPECT_NE(st.message().find("layer 3"), std::string::npos) << st.message();
  EXPECT_TRUE(h.pool().full());
  EXPECT_FALSE(h.consumer().StepComplete());
  EXPECT_TRUE(h.RunStep(1, nullptr).ok());
  EXPECT_TRUE(h.consumer().StepComplete());
}

TEST(PipelineSimTest, CancelDrainsAndReturnsBusy) {
  Scenario s;
  s.sim.n_layer = 6;
  s.sim.chunks_per_layer = 8;
  s.sim.cancel_at_event = 20;
  s.budget_bytes = 24 * s.sim.chunk_bytes;
  s.plan = {.depth = 2, .request_chunks = 1, .queue_depth = 8};
  SimHarness h(s.sim, s.budget_bytes, s.plan, false);
  Status st = h.RunStep(0, nullptr);
  EXPECT_TRUE(st.IsBusy()) << st.ToString();
  EXPECT_TRUE(h.pool().full());
  EXPECT_EQ(h.executor().outstanding(), 0u);
  EXPECT_TRUE(h.RunStep(1, nullptr).ok());  // a cancel applies to one step only
}

// A layer's reads start at the chunk issue_start_chunk names, run to the layer's end without a
// request crossing it, then wrap to chunk 0; a start past the layer counts as 0. Every chunk is
// still read once and the step completes.
TEST(PipelineSimTest, ReadsStartAtTheChunkEachLayerNames) {
  SimConfig c;
  c.n_layer = 3;
  c.chunks_per_layer = 8;
  c.issue_start_shift = 5;  // layers start at chunks 5, 6, 7
  PipelinePlan plan;
  plan.depth = 1;
  plan.request_chunks = 2;
  plan.queue_depth = 4;
  SimHarness h(c, 64 * c.chunk_bytes, plan, /*auto_depth=*/false);
  StepStats stats;
  ASSERT_TRUE(h.RunStep(0, &stats).ok());
  EXPECT_TRUE(h.consumer().StepComplete());
  std::vector<std::vector<SimExecutor::Issued>> by_layer(c.n_layer);
  for (const SimExecutor::Issued& r : h.executor().issued()) by_layer.at(r.layer).push_back(r);
  for (uint32_t l = 0; l < c.n_layer; ++l) {
    SCOPED_TRACE("layer " + std::to_string(l));
    ASSERT_FALSE(by_layer[l].empty());
    EXPECT_EQ(by_layer[l].front().first_chunk, 5 + l);
    std::vector<int> seen(c.chunks_per_layer, 0);
    for (const SimExecutor::Issued& r : by_layer[l]) {
      EXPECT_LE(r.first_chunk + r.n_chunks, c.chunks_per_layer);  // no request wraps
      for (uint32_t i = 0; i < r.n_chunks; ++i) ++seen.at(r.first_chunk + i);
    }
    for (uint32_t k = 0; k < c.chunks_per_layer; ++k) EXPECT_EQ(seen[k], 1) << "chunk " << k;
  }
  // Layer 0 in issue order: 5-6, 7 (cut at the end), then 0-1, 2-3, 4.
  ASSERT_EQ(by_layer[0].size(), 5u);
  EXPECT_EQ(by_layer[0][1].first_chunk, 7u);
  EXPECT_EQ(by_layer[0][1].n_chunks, 1u);
  EXPECT_EQ(by_layer[0][2].first_chunk, 0u);
  EXPECT_EQ(by_layer[0][4].first_chunk, 4u);
  EXPECT_EQ(by_layer[0][4].n_chunks, 1u);
}

}  // namespace
}  // namespace dualblade
