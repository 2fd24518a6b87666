#include "residency/placement.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <utility>

#include "common/units.h"
#include "residency/scripted_memory_source.h"

namespace dualblade {
namespace {

constexpr uint64_t kChunk = 1 * kMiB;
constexpr uint64_t kTotal = 64 * kGiB;

// Every chunk of N_LAYER segments of N_CHUNK chunks for sequence SEQ, all on PATH.
std::vector<ChunkInfo> Inventory(uint32_t n_layer, uint32_t n_chunk, KvPath path = KvPath::kDirect,
                                 uint64_t seq = 1) {
  std::vector<ChunkInfo> inv;
  for (uint32_t l = 0; l < n_layer; ++l)
    for (uint32_t c = 0; c < n_chunk; ++c) inv.push_back({seq, l, c, kChunk, path});
  return inv;
}

void Apply(const PlacementPlan& plan, std::vector<ChunkInfo>* inv) {
  for (const PathTransition& t : plan.transitions) {
    ASSERT_EQ((*inv)[t.index].path, t.from);
    (*inv)[t.index].path = t.to;
  }
  for (size_t i = 0; i < inv->size(); ++i) ASSERT_EQ((*inv)[i].path, plan.paths[i]) << i;
}

// In every segment: PAGE chunks form a prefix and DIRECT chunks the contiguous rest.
void ExpectPrefixes(const std::vector<ChunkInfo>& inv, const std::vector<KvPath>& paths) {
  std::map<std::pair<uint64_t, uint32_t>, std::vector<std::pair<uint32_t, KvPath>>> segs;
  for (size_t i = 0; i < inv.size(); ++i)
    segs[{inv[i].seq, inv[i].layer}].push_back({inv[i].chunk, paths[i]});
  for (auto& [key, chunks] : segs) {
    std::sort(chunks.begin(), chunks.end());
    bool seen_direct = false;
    for (auto& [c, p] : chunks) {
      if (p == KvPath::kDirect) seen_direct = true;
      EXPECT_FALSE(seen_direct && p == KvPath::kPage)
          << "seq " << key.first << " layer " << key.second << " chunk " << c
          << " is PAGE after a DIRECT chunk";
    }
  }
}

uint64_t PageBytes(const std::vector<ChunkInfo>& inv, const std::vector<KvPath>& paths) {
  uint64_t n = 0;
  for (size_t i = 0; i < inv.size(); ++i)
    if (paths[i] == KvPath::kPage) n += inv[i].bytes;
  return n;
}

// A monitor fed by a script of cgroup samples whose KV headroom is exactly the given figures
// (limit 4 GiB, no margin, no file-backed reserve: headroom = limit - anon).
class ScriptedHeadroom {
 public:
  explicit ScriptedHeadroom(const std::vector<uint64_t>& headrooms_bytes, double psi_some = 0) {
    auto src = std::make_unique<ScriptedMemorySource>();
    for (uint64_t h : headrooms_bytes) {
      MemorySample s = ScriptedMemorySource::CgroupSample(kLimit, kLimit - h, 0, kTotal, kTotal);
      if (psi_some > 0) {
        s.has_pressure = true;
        s.pressure.some.avg10 = psi_some;
      }
      src->Push(s);
    }
    MemoryMonitorOptions o;
    o.safety_margin_bytes = 0;
    o.full_sample_interval_ns = 0;
    monitor_ = std::make_unique<MemoryMonitor>(std::move(src), o);
  }
  MemoryReading Next() {
    auto r = monitor_->Sample();
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : MemoryReading{};
  }

 private:
  static constexpr uint64_t kLimit = 4 * kGiB;
  std::unique_ptr<MemoryMonitor> monitor_;
};

TEST(KvPolicyTest, NamesRoundTripAndBadNamesAreClearErrors) {
  for (KvPolicy p : {KvPolicy::kDual, KvPolicy::kPageCache, KvPolicy::kDirect, KvPolicy::kMemory}) {
    auto r = ParseKvPolicy(KvPolicyName(p));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(*r, p);
  }
  auto bad = ParseKvPolicy("lru");
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(bad.status().IsInvalidArgument());
  EXPECT_NE(bad.status().message().find("'lru'"), std::string::npos);
}

TEST(PlanPagePrefixesTest, SpreadsTheBudgetEvenlyAsPrefixesOfEverySegment) {
  auto inv = Inventory(4, 10);
  uint64_t page = 0;
  // 10 chunks over 4 segments: 3, 3, 2, 2 (round-robin, first segments take the remainder).
  auto paths = PlanPagePrefixes(inv, 10 * kChunk + kChunk / 2, &page);
  EXPECT_EQ(page, 10 * kChunk);
  ExpectPrefixes(inv, paths);
  std::vector<int> per_layer(4, 0);
  for (size_t i = 0; i < inv.size(); ++i)
    if (paths[i] == KvPath::kPage) ++per_layer[inv[i].layer];
  EXPECT_EQ(per_layer, (std::vector<int>{3, 3, 2, 2}));
}

TEST(PlanPagePrefixesTest, DoesNotDependOnInventoryOrder) {
  auto inv = Inventory(3, 7);
  uint64_t page_a = 0, page_b = 0;
  auto a = PlanPagePrefixes(inv, 9 * kChunk, &page_a);
  std::vector<size_t> perm(inv.size());
  for (size_t i = 0; i < perm.size(); ++i) perm[i] = i;
  std::shuffle(perm.begin(), perm.end(), std::mt19937(7));
  std::vector<ChunkInfo> shuffled;
  for (size_t i : perm) shuffled.push_back(inv[i]);
  auto b = PlanPagePrefixes(shuffled, 9 * kChunk, &page_b);
  EXPECT_EQ(page_a, page_b);
  for (size_t k = 0; k < perm.size(); ++k) EXPECT_EQ(b[k], a[perm[k]]);
}

TEST(PlanPagePrefixesTest, ShortSegmentsLeaveTheirShareToLongerOnes) {
  std::vector<ChunkInfo> inv = Inventory(1, 2);          // layer 0: 2 chunks
  for (uint32_t c = 0; c < 10; ++c) inv.push_back({1, 1, c, kChunk, KvPath::kDirect});
  uint64_t page = 0;
  auto paths = PlanPagePrefixes(inv, 8 * kChunk, &page);
  EXPECT_EQ(page, 8 * kChunk);
  ExpectPrefixes(inv, paths);
}

TEST(PlacementPolicyTest, FirstReadingSizesThePageSetToTheHeadroom) {
  ScriptedHeadroom h({100 * kMiB});
  PlacementPolicy policy({});
  auto inv = Inventory(16, 32);  // 512 MiB of KV
  PlacementPlan plan = policy.Evaluate(inv, h.Next());
  EXPECT_EQ(plan.page_budget_bytes, 100 * kMiB);
  EXPECT_LE(plan.page_bytes, 100 * kMiB);
  EXPECT_GT(plan.page_bytes, 100 * kMiB - 16 * kChunk);
  EXPECT_EQ(plan.promoted_bytes, plan.page_bytes);
  EXPECT_EQ(plan.demoted_bytes, 0u);
  ExpectPrefixes(inv, plan.paths);
  // Everything fits: every chunk PAGE.
  ScriptedHeadroom big({1 * kGiB});
  PlacementPolicy roomy({});
  EXPECT_EQ(roomy.Evaluate(inv, big.Next()).page_bytes, 512 * kMiB);
}

TEST(PlacementPolicyTest, ShrinksAtOnceUnderPressureAndDemotesOnlyPageChunks) {
  ScriptedHeadroom h({300 * kMiB, 120 * kMiB, 40 * kMiB, 0});
  PlacementPolicy policy({});
  auto inv = Inventory(16, 32);
  for (uint64_t expect : {300 * kMiB, 120 * kMiB, 40 * kMiB, uint64_t{0}}) {
    PlacementPlan plan = policy.Evaluate(inv, h.Next());
    EXPECT_EQ(plan.page_budget_bytes, expect) << plan.reason;
    EXPECT_LE(plan.page_bytes, expect);
    for (const PathTransition& t : plan.transitions)
      if (expect < 300 * kMiB) {
        EXPECT_EQ(t.from, KvPath::kPage);
      }
    Apply(plan, &inv);
    ExpectPrefixes(inv, plan.paths);
  }
  EXPECT_EQ(PageBytes(inv, std::vector<KvPath>(inv.size(), KvPath::kPage)), 512 * kMiB);
  for (const ChunkInfo& c : inv) EXPECT_EQ(c.path, KvPath::kDirect);
}

TEST(PlacementPolicyTest, HysteresisStopsAnOscillatingHeadroomFromFlapping) {
  // Small wiggles (inside the band) and large swings that never last grow_confirm_readings.
  std::vector<uint64_t> script;
  for (int i = 0; i < 20; ++i) script.push_back(i % 2 ? 204 * kMiB : 200 * kMiB);
  for (int i = 0; i < 20; ++i) script.push_back(i % 2 ? 300 * kMiB : 200 * kMiB);
  ScriptedHeadroom h(script);
  PlacementPolicy policy({});
  auto inv = Inventory(16, 32);
  uint64_t transitions = 0;
  for (size_t i = 0; i < script.size(); ++i) {
    PlacementPlan plan = policy.Evaluate(inv, h.Next());
    EXPECT_LE(plan.page_bytes, script[i]);
    if (i > 0) transitions += plan.transitions.size();
    Apply(plan, &inv);
  }
  EXPECT_EQ(policy.budget_changes(), 1u);  // the initial sizing only
  EXPECT_EQ(transitions, 0u);
}

TEST(PlacementPolicyTest, GrowsBackSlowlyAfterConfirmedRoomInBoundedSteps) {
  PlacementOptions o;
  o.grow_confirm_readings = 3;
  o.grow_step_bytes = 64 * kMiB;
  ScriptedHeadroom h({64 * kMiB, 400 * kMiB});  // the last step repeats
  PlacementPolicy policy(o);
  auto inv = Inventory(16, 32);
  std::vector<uint64_t> budgets;
  for (int i = 0; i < 16; ++i) {
    PlacementPlan plan = policy.Evaluate(inv, h.Next());
    budgets.push_back(plan.page_budget_bytes);
    for (const PathTransition& t : plan.transitions)
      if (i > 0) {
        EXPECT_EQ(t.to, KvPath::kPage);  // growing only promotes
      }
    Apply(plan, &inv);
    ExpectPrefixes(inv, plan.paths);
  }
  // Readings 1 and 2 only count towards growth; reading 3 grows one step; and so on.
  EXPECT_EQ(budgets[0], 64 * kMiB);
  EXPECT_EQ(budgets[1], 64 * kMiB);
  EXPECT_EQ(budgets[2], 64 * kMiB);
  EXPECT_EQ(budgets[3], 128 * kMiB);
  EXPECT_EQ(budgets[6], 192 * kMiB);
  for (size_t i = 1; i < budgets.size(); ++i) {
    EXPECT_GE(budgets[i], budgets[i - 1]);
    EXPECT_LE(budgets[i] - budgets[i - 1], 64 * kMiB);
    EXPECT_LE(budgets[i], 400 * kMiB);
  }
  // Stops once within the band (20 MiB = 5% of 400 MiB) of the headroom: 64 MiB steps end at
  // 384 MiB, and 400 MiB is not more than a band above that.
  EXPECT_EQ(budgets.back(), 384 * kMiB);
}

TEST(PlacementPolicyTest, MemoryPressureTrimsABandBelowTheHeadroomAndBlocksGrowth) {
  ScriptedHeadroom h({400 * kMiB}, /*psi_some=*/50.0);
  PlacementPolicy policy({});
  auto inv = Inventory(16, 32);
  for (int i = 0; i < 10; ++i) {
    PlacementPlan plan = policy.Evaluate(inv, h.Next());
    EXPECT_EQ(plan.page_budget_bytes, 400 * kMiB - 20 * kMiB) << plan.reason;
    Apply(plan, &inv);
  }
}

TEST(PlacementPolicyTest, NewChunksArePageOnlyWithinTheirSegmentsShare) {
  ScriptedHeadroom h({100 * kMiB});
  PlacementPolicy policy({});
  policy.Evaluate({}, h.Next());  // sized before prefill
  // Prefill of 16 layers x 32 chunks, each written on the path the policy gives it.
  std::vector<ChunkInfo> inv;
  for (uint32_t l = 0; l < 16; ++l)
    for (uint32_t c = 0; c < 32; ++c)
      inv.push_back({1, l, c, kChunk, policy.PathForNewChunk(c, kChunk, 16)});
  EXPECT_LE(PageBytes(inv, std::vector<KvPath>(inv.size(), KvPath::kPage)), 512 * kMiB);
  uint64_t written_page = 0;
  for (const ChunkInfo& c : inv) written_page += c.path == KvPath::kPage ? c.bytes : 0;
  EXPECT_LE(written_page, 100 * kMiB);
  // The next evaluation keeps every chunk written PAGE as PAGE: no demotion after prefill.
  PlacementPlan plan = policy.Evaluate(inv, h.Next());
  EXPECT_EQ(plan.demoted_bytes, 0u);
  EXPECT_LE(plan.promoted_bytes, 16 * kChunk);
}

TEST(PlacementPolicyTest, SingleModePoliciesPlaceEveryChunkOnOnePath) {
  auto inv = Inventory(2, 4, KvPath::kPage);
  ScriptedHeadroom h({0});
  PlacementOptions o;
  o.policy = KvPolicy::kDirect;
  PlacementPlan plan = PlacementPolicy(o).Evaluate(inv, h.Next());
  EXPECT_EQ(plan.transitions.size(), inv.size());
  EXPECT_EQ(plan.demoted_bytes, 8 * kChunk);
  o.policy = KvPolicy::kPageCache;
  plan = PlacementPolicy(o).Evaluate(inv, h.Next());
  EXPECT_TRUE(plan.transitions.empty());  // page cache whatever the headroom
  EXPECT_EQ(plan.page_bytes, 8 * kChunk);
  o.policy = KvPolicy::kMemory;
  PlacementPolicy mem(o);
  plan = mem.Evaluate(inv, h.Next());
  for (KvPath p : plan.paths) EXPECT_EQ(p, KvPath::kMemory);
  EXPECT_EQ(mem.PathForNewChunk(0, kChunk, 2), KvPath::kMemory);
}

// Seeded simulation: a random walk of the headroom while the context grows by one chunk per
// layer every few steps; invariants checked at every step. A failing seed replays exactly.
TEST(PlacementPolicyTest, RandomWalkKeepsEveryInvariant) {
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    std::mt19937_64 rng(seed);
    std::vector<uint64_t> script;
    int64_t headroom = 200 * kMiB;
    for (int i = 0; i < 300; ++i) {
      headroom += static_cast<int64_t>(rng() % (48 * kMiB)) - static_cast<int64_t>(24 * kMiB);
      headroom = std::clamp<int64_t>(headroom, 0, 1 * kGiB);
      script.push_back(static_cast<uint64_t>(headroom));
    }
    ScriptedHeadroom h(script);
    PlacementPolicy policy({});
    auto inv = Inventory(8, 16, KvPath::kDirect, seed);
    uint32_t n_chunk = 16;
    int reversals = 0, last_dir = 0;
    uint64_t last_budget = 0;
    for (size_t i = 0; i < script.size(); ++i) {
      if (i % 5 == 4) {
        for (uint32_t l = 0; l < 8; ++l)
          inv.push_back({seed, l, n_chunk, kChunk, policy.PathForNewChunk(n_chunk, kChunk, 8)});
        ++n_chunk;
      }
      PlacementPlan plan = policy.Evaluate(inv, h.Next());
      ASSERT_LE(plan.page_bytes, plan.page_budget_bytes) << "seed " << seed << " step " << i;
      ASSERT_LE(plan.page_budget_bytes, script[i]) << "seed " << seed << " step " << i;
      ASSERT_EQ(plan.page_bytes, PageBytes(inv, plan.paths));
      ExpectPrefixes(inv, plan.paths);
      Apply(plan, &inv);
      if (i > 0 && plan.page_budget_bytes != last_budget) {
        const int dir = plan.page_budget_bytes > last_budget ? 1 : -1;
        if (last_dir != 0 && dir != last_dir) ++reversals;
        last_dir = dir;
      }
      last_budget = plan.page_budget_bytes;
    }
    // Growth waits 3 readings, so the budget changes direction far less often than the walk.
    EXPECT_LT(reversals, 60) << "seed " << seed;
  }
}

// Path balance: rates in bytes per microsecond x the sample's microseconds.
PathRateSample Rates(double page_gb_s, double direct_gb_s) {
  PathRateSample s;
  s.page_us = s.direct_us = 100'000;
  s.page_bytes = static_cast<uint64_t>(page_gb_s * 1e3 * 100'000);
  s.direct_bytes = static_cast<uint64_t>(direct_gb_s * 1e3 * 100'000);
  return s;
}

// 512 MiB of KV under a 1 GiB headroom for every reading, planned once (everything PAGE).
struct RoomyPlan {
  RoomyPlan() { Apply(policy.Evaluate(inv, h.Next()), &inv); }
  ScriptedHeadroom h{std::vector<uint64_t>(8, 1 * kGiB)};
  PlacementPolicy policy{PlacementOptions{}};
  std::vector<ChunkInfo> inv = Inventory(16, 32);
};

TEST(PathBalanceTest, WithoutRatesThePageSetIsTheHeadroom) {
  ScriptedHeadroom h({1 * kGiB, 1 * kGiB});
  PlacementPolicy policy({});
  auto inv = Inventory(16, 32);  // 512 MiB, all of it fits
  PlacementPlan plan = policy.Evaluate(inv, h.Next());
  EXPECT_EQ(plan.page_bytes, 512 * kMiB);
  EXPECT_EQ(plan.balance_cap_bytes, 0u);
  // Samples too small to say anything leave the rates unmeasured, until they add up.
  PathRateSample tiny;
  tiny.page_bytes = 1 * kMiB;
  tiny.page_us = 200;
  policy.ObservePathRates(tiny);
  EXPECT_EQ(policy.page_rate_bytes_per_s(), 0);
  EXPECT_EQ(policy.Evaluate(inv, h.Next()).page_bytes, 512 * kMiB);
  for (int i = 0; i < 3; ++i) policy.ObservePathRates(tiny);
  EXPECT_DOUBLE_EQ(policy.page_rate_bytes_per_s(), 4.0 * kMiB / 800e-6);
  EXPECT_EQ(policy.direct_rate_bytes_per_s(), 0);
}

TEST(PathBalanceTest, ProbesTheDeviceThenSplitsWhereBothPathsFinishTogether) {
  RoomyPlan r;
  auto& [h, policy, inv] = r;
  // Only PAGE reads so far: a probe share (1/8) goes direct to measure the device.
  PathRateSample page_only = Rates(6, 0);
  page_only.direct_us = 0;
  policy.ObservePathRates(page_only);
  PlacementPlan probe = policy.Evaluate(inv, h.Next());
  EXPECT_EQ(probe.balance_cap_bytes, 448 * kMiB);
  EXPECT_EQ(probe.page_bytes, 448 * kMiB);
  EXPECT_EQ(probe.demoted_bytes, 64 * kMiB);
  ExpectPrefixes(inv, probe.paths);
  Apply(probe, &inv);
  // Page copies at 6 GB/s, the device at 2 GB/s (a path's first sample is taken as it is): 3/4
  // of the KV PAGE, where the copies and the device reads take equally long.
  policy.ObservePathRates(Rates(6, 2));
  PlacementPlan split = policy.Evaluate(inv, h.Next());
  EXPECT_EQ(split.balance_cap_bytes, 384 * kMiB);
  EXPECT_EQ(split.page_bytes, 384 * kMiB);
  EXPECT_EQ(split.page_budget_bytes, 384 * kMiB);
  EXPECT_NE(split.reason.find("balance"), std::string::npos) << split.reason;
  ExpectPrefixes(inv, split.paths);
  Apply(split, &inv);
  // New chunks follow the capped budget: 384 MiB over 16 segments of 1 MiB chunks = 24 each.
  EXPECT_EQ(policy.PathForNewChunk(23, kChunk, 16), KvPath::kPage);
  EXPECT_EQ(policy.PathForNewChunk(24, kChunk, 16), KvPath::kDirect);
  // A small drift of the rates (inside the 3% band) moves nothing.
  policy.ObservePathRates(Rates(6.2, 2));
  PlacementPlan hold = policy.Evaluate(inv, h.Next());
  EXPECT_EQ(hold.balance_cap_bytes, 384 * kMiB);
  EXPECT_TRUE(hold.transitions.empty());
}

TEST(PathBalanceTest, TheHeadroomStillWinsAndASlowDeviceKeepsNearlyEverythingPage) {
  ScriptedHeadroom h({200 * kMiB, 200 * kMiB, 1 * kGiB});
  PlacementPolicy policy({});
  auto inv = Inventory(16, 32);
  Apply(policy.Evaluate(inv, h.Next()), &inv);
  // The balanced split (3/4) is above a 200 MiB headroom: memory decides.
  policy.ObservePathRates(Rates(6, 2));
  PlacementPlan tight = policy.Evaluate(inv, h.Next());
  EXPECT_EQ(tight.page_budget_bytes, 200 * kMiB);
  EXPECT_LE(tight.page_bytes, 200 * kMiB);
  // A device 20x slower than the copies: the split is 20/21 PAGE, the headroom holds it all.
  PlacementPolicy slow({});
  auto inv2 = Inventory(16, 32);
  ScriptedHeadroom roomy({1 * kGiB});
  slow.ObservePathRates(Rates(6, 0.3));
  PlacementPlan plan = slow.Evaluate(inv2, roomy.Next());
  // 20/21 of 512 MiB = 487.6 MiB: 30 chunks in every segment and a 31st in seven.
  EXPECT_EQ(plan.page_bytes, 487 * kMiB);
}

TEST(PathBalanceTest, OffKeepsThePageSetAtTheHeadroom) {
  PlacementOptions o;
  o.balance_paths = false;
  PlacementPolicy policy(o);
  ScriptedHeadroom h({1 * kGiB});
  auto inv = Inventory(16, 32);
  policy.ObservePathRates(Rates(6, 2));
  PlacementPlan plan = policy.Evaluate(inv, h.Next());
  EXPECT_EQ(plan.page_bytes, 512 * kMiB);
  EXPECT_EQ(plan.balance_cap_bytes, 0u);
}

// With rates fed between plans (anything from a device 10x slower than the copies to one as
// fast), every plan still fits its headroom and the balance cap, as per-segment prefixes.
TEST(PathBalanceTest, RandomRatesKeepEveryInvariant) {
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    std::mt19937_64 rng(seed);
    std::vector<uint64_t> script;
    for (int i = 0; i < 100; ++i) script.push_back(rng() % (1 * kGiB));
    ScriptedHeadroom h(script);
    PlacementPolicy policy({});
    auto inv = Inventory(8, 32, KvPath::kDirect, seed);
    for (size_t i = 0; i < script.size(); ++i) {
      if (rng() % 4 != 0) policy.ObservePathRates(Rates(1 + rng() % 10, 1 + rng() % 10 / 10.0));
      PlacementPlan plan = policy.Evaluate(inv, h.Next());
      ASSERT_LE(plan.page_bytes, plan.page_budget_bytes) << "seed " << seed << " step " << i;
      ASSERT_LE(plan.page_budget_bytes, script[i]) << "seed " << seed << " step " << i;
      if (plan.balance_cap_bytes != 0) {
        ASSERT_LE(plan.page_bytes, plan.balance_cap_bytes);
      }
      ASSERT_EQ(plan.page_bytes, PageBytes(inv, plan.paths));
      ExpectPrefixes(inv, plan.paths);
      Apply(plan, &inv);
    }
  }
}

// The balance applies while compute waits for the reads; a compute-bound step (stall under a
// quarter of it, moving average) lifts the cap, and reads on the critical path bring it back.
TEST(PathBalanceTest, OnlyWhileComputeWaitsForTheReads) {
  RoomyPlan r;
  auto& [h, policy, inv] = r;
  PathRateSample io_bound = Rates(6, 2);
  io_bound.step_us = 100'000;
  io_bound.stall_us = 60'000;
  policy.ObservePathRates(io_bound);
  PlacementPlan capped = policy.Evaluate(inv, h.Next());
  EXPECT_EQ(capped.page_bytes, 384 * kMiB);
  Apply(capped, &inv);
  // Compute-bound: 5% stalled. The average (weight 1/2) falls to 0.325, then 0.1875.
  PathRateSample compute_bound = io_bound;
  compute_bound.stall_us = 5'000;
  policy.ObservePathRates(compute_bound);
  EXPECT_EQ(policy.Evaluate(inv, h.Next()).page_bytes, 384 * kMiB);
  policy.ObservePathRates(compute_bound);
  PlacementPlan lifted = policy.Evaluate(inv, h.Next());
  EXPECT_DOUBLE_EQ(policy.stall_fraction(), 0.1875);
  EXPECT_EQ(lifted.balance_cap_bytes, 0u);
  EXPECT_EQ(lifted.page_bytes, 512 * kMiB);
  EXPECT_NE(lifted.reason.find("compute-bound"), std::string::npos) << lifted.reason;
  Apply(lifted, &inv);
  // Stalled again: 0.39 on average, and the balanced split is back.
  policy.ObservePathRates(io_bound);
  EXPECT_EQ(policy.Evaluate(inv, h.Next()).page_bytes, 384 * kMiB);
}

}  // namespace
}  // namespace dualblade
