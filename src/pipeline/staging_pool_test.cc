#include "pipeline/staging_pool.h"

#include "pipeline/pipeline_stats.h"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

namespace dualblade {
namespace {

TEST(StagingPoolTest, RejectsBudgetBelowOneBuffer) {
  EXPECT_TRUE(StagingPool::Create({.buffer_bytes = 0, .budget_bytes = 1 << 20})
                  .status().IsInvalidArgument());
  EXPECT_TRUE(StagingPool::Create({.buffer_bytes = 8192, .budget_bytes = 8191})
                  .status().IsInvalidArgument());
}

TEST(StagingPoolTest, BuffersAreAlignedAndSizeRoundsUp) {
  auto pool = StagingPool::Create({.buffer_bytes = 5000, .budget_bytes = 3 * 8192 + 100});
  ASSERT_TRUE(pool.ok());
  EXPECT_EQ((*pool)->buffer_bytes(), 8192u);
  EXPECT_EQ((*pool)->capacity_buffers(), 3u);
  EXPECT_LE((*pool)->capacity_bytes(), 3u * 8192 + 100);
  std::optional<StagingLease> lease = (*pool)->TryAcquire();
  ASSERT_TRUE(lease.has_value());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(lease->data()) % kDirectIoAlignBytes, 0u);
  EXPECT_EQ(lease->size(), 8192u);
}

TEST(StagingPoolTest, ExhaustionReturnsNothingAndLeasesComeBack) {
  auto created = StagingPool::Create({.buffer_bytes = 4096, .budget_bytes = 4 * 4096});
  ASSERT_TRUE(created.ok());
  StagingPool& pool = **created;
  std::vector<StagingLease> leases;
  for (int i = 0; i < 4; ++i) {
    std::optional<StagingLease> l = pool.TryAcquire();
    ASSERT_TRUE(l.has_value());
    leases.push_back(std::move(*l));
  }
  EXPECT_FALSE(pool.TryAcquire().has_value());
  EXPECT_EQ(pool.stats().exhausted, 1u);
  EXPECT_EQ(pool.in_use_bytes(), 4u * 4096);
  EXPECT_EQ(pool.stats().peak_in_use_bytes, 4u * 4096);
  // Distinct buffers.
  for (size_t i = 0; i < leases.size(); ++i) {
    for (size_t j = i + 1; j < leases.size(); ++j) EXPECT_NE(leases[i].data(), leases[j].data());
  }
  StagingLease moved = std::move(leases[0]);
  EXPECT_FALSE(leases[0].valid());
  moved.Release();
  EXPECT_EQ(pool.free_buffers(), 1u);
  moved.Release();  // releasing an empty lease is a no-op
  EXPECT_EQ(pool.free_buffers(), 1u);
  leases.clear();
  EXPECT_TRUE(pool.full());
  EXPECT_EQ(pool.stats().peak_in_use_bytes, 4u * 4096);
}

TEST(StagingPoolTest, MoveAssignReturnsTheOverwrittenLease) {
  auto created = StagingPool::Create({.buffer_bytes = 4096, .budget_bytes = 2 * 4096});
  ASSERT_TRUE(created.ok());
  StagingPool& pool = **created;
  StagingLease a = *pool.TryAcquire();
  StagingLease b = *pool.TryAcquire();
  EXPECT_EQ(pool.free_buffers(), 0u);
  a = std::move(b);
  EXPECT_EQ(pool.free_buffers(), 1u);
  a.Release();
  EXPECT_TRUE(pool.full());
}

TEST(StepStatsTest, OverlapEfficiencyIsStepOverTheLargerResource) {
  StepStats s;
  s.step_us = 1500;
  s.io_busy_us = 1000;
  s.compute_busy_us = 800;
  EXPECT_DOUBLE_EQ(s.overlap_efficiency(), 1.5);
  s.compute_busy_us = 1200;
  EXPECT_DOUBLE_EQ(s.overlap_efficiency(), 1.25);
  EXPECT_NE(s.ToString().find("overlap_efficiency=1.250"), std::string::npos);
  EXPECT_DOUBLE_EQ(StepStats{}.overlap_efficiency(), 1.0);
}

}  // namespace
}  // namespace dualblade
