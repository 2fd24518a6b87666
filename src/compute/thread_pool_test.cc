#include "compute/thread_pool.h"

#include <atomic>
#include <vector>

#include <gtest/gtest.h>

namespace dualblade::compute {
namespace {

TEST(ThreadPoolTest, CoversRangeExactlyOnce) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    for (int64_t n : {1, 2, 7, 100, 1001}) {
      std::vector<std::atomic<int>> hits(n);
      pool.ParallelFor(n, [&](int64_t b, int64_t e, int) {
        for (int64_t i = b; i < e; ++i) hits[i].fetch_add(1);
      });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << threads << " " << n;
    }
  }
}

TEST(ThreadPoolTest, ManyBackToBackJobsRunEachSliceOnce) {
  ThreadPool pool(2);
  std::atomic<int64_t> total{0};
  for (int round = 0; round < 2000; ++round) {
    pool.ParallelFor(9, [&](int64_t b, int64_t e, int) { total.fetch_add(e - b); });
  }
  EXPECT_EQ(total.load(), 2000 * 9);
}

TEST(ThreadPoolTest, BackToBackJobsOfDifferentSliceCountsRunEachItemOnce) {
  // Jobs alternate between 2 and 8 slices: a worker still looking at the previous job while the
  // next is published must not claim a slice against the next job's count.
  ThreadPool pool(2);
  std::vector<std::atomic<int>> hits(64);
  for (int round = 0; round < 20000; ++round) {
    const int64_t n = round % 2 ? 64 : 16;
    for (auto& h : hits) h.store(0);
    pool.ParallelFor(n, [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) hits[i].fetch_add(1);
    }, 8);
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_EQ(hits[i].load(), 1) << "round " << round << " item " << i;
    }
  }
}

TEST(ThreadPoolTest, MinPerThreadKeepsSmallJobsInline) {
  ThreadPool pool(4);
  std::atomic<int> calls{0};
  pool.ParallelFor(10, [&](int64_t, int64_t, int t) {  // 10 < 64: one slice, run inline
    EXPECT_EQ(t, 0);
    calls.fetch_add(1);
  }, 64);
  EXPECT_EQ(calls.load(), 1);
}

}  // namespace
}  // namespace dualblade::compute
