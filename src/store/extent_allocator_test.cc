#include "store/extent_allocator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

namespace dualblade::store {
namespace {

TEST(ExtentAllocatorTest, AllocatesFromTheLowEdge) {
  ExtentAllocator a(100, 50);
  EXPECT_EQ(*a.Allocate(10), (Extent{100, 10}));
  EXPECT_EQ(*a.Allocate(5), (Extent{110, 5}));
  AllocatorStats s = a.stats();
  EXPECT_EQ(s.used_blocks, 15u);
  EXPECT_EQ(s.free_blocks, 35u);
  EXPECT_EQ(s.largest_free_blocks, 35u);
  EXPECT_EQ(s.fragmentation(), 0.0);
}

TEST(ExtentAllocatorTest, BestFitKeepsLargeRunsLarge) {
  ExtentAllocator a(0, 100);
  Extent x = *a.Allocate(10), y = *a.Allocate(4), z = *a.Allocate(20);
  ASSERT_TRUE(a.Free(x).ok());  // free runs: [0,10) and [34,100)
  (void)y;
  (void)z;
  // 8 blocks fit both runs; the smaller one is taken, the 66-block run stays whole.
  EXPECT_EQ(*a.Allocate(8), (Extent{0, 8}));
  EXPECT_EQ(a.stats().largest_free_blocks, 66u);
  // Exact fit beats a larger run.
  EXPECT_EQ(*a.Allocate(2), (Extent{8, 2}));
  EXPECT_EQ(a.stats().free_extents, 1u);
}

TEST(ExtentAllocatorTest, EqualFitsTakeTheLowestAddress) {
  ExtentAllocator a(0, 30);
  Extent e[6];
  for (auto& x : e) x = *a.Allocate(5);
  ASSERT_TRUE(a.Free(e[3]).ok());
  ASSERT_TRUE(a.Free(e[1]).ok());
  EXPECT_EQ(*a.Allocate(5), (Extent{5, 5}));
}

TEST(ExtentAllocatorTest, FreeCoalescesNeighbors) {
  ExtentAllocator a(0, 30);
  Extent e0 = *a.Allocate(10), e1 = *a.Allocate(10), e2 = *a.Allocate(10);
  ASSERT_TRUE(a.Free(e0).ok());
  ASSERT_TRUE(a.Free(e2).ok());
  EXPECT_EQ(a.stats().free_extents, 2u);
  EXPECT_NEAR(a.stats().fragmentation(), 0.5, 1e-12);
  ASSERT_TRUE(a.Free(e1).ok());
  ASSERT_EQ(a.FreeExtents(), (std::vector<Extent>{{0, 30}}));
}

TEST(ExtentAllocatorTest, PartialFreeIsAllowed) {
  ExtentAllocator a(0, 30);
  Extent e = *a.Allocate(30);
  ASSERT_TRUE(a.Free({10, 5}).ok());
  EXPECT_TRUE(a.IsAllocated({0, 10}));
  EXPECT_FALSE(a.IsAllocated({9, 2}));
  EXPECT_TRUE(a.IsAllocated({15, 15}));
  (void)e;
}

TEST(ExtentAllocatorTest, BadFreesAreErrorsAndChangeNothing) {
  ExtentAllocator a(100, 50);
  Extent e = *a.Allocate(10);
  ASSERT_TRUE(a.Free(e).ok());
  Extent g = *a.Allocate(30);  // [100, 130) in use, [130, 150) free
  const auto before = a.FreeExtents();
  EXPECT_TRUE(a.Free(g).ok());
  EXPECT_TRUE(a.Free(g).IsInvalidArgument());  // double free
  g = *a.Allocate(30);
  EXPECT_TRUE(a.Free({99, 2}).IsInvalidArgument());
  EXPECT_TRUE(a.Free({129, 2}).IsInvalidArgument());  // runs into free space
  EXPECT_TRUE(a.Free({149, 2}).IsInvalidArgument());
  EXPECT_TRUE(a.Free({150, 1}).IsInvalidArgument());
  EXPECT_TRUE(a.Free({120, 0}).IsInvalidArgument());
  EXPECT_TRUE(a.Free({~uint64_t{0} - 1, 5}).IsInvalidArgument());  // wraps
  EXPECT_EQ(a.FreeExtents(), before);
  ASSERT_TRUE(a.Free(g).ok());
  Extent f = *a.Allocate(20);
  ASSERT_TRUE(a.Free({f.start_block + 5, 5}).ok());
  EXPECT_TRUE(a.Free(f).IsInvalidArgument());  // overlaps the hole just freed
  EXPECT_TRUE(a.Free({f.start_block + 9, 2}).IsInvalidArgument());  // straddles its end
  EXPECT_EQ(a.stats().free_blocks, 35u);
}

TEST(ExtentAllocatorTest, NoSpaceLeavesStateUnchanged) {
  ExtentAllocator a(0, 10);
  Extent e = *a.Allocate(4);
  Result<Extent> r = a.Allocate(7);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsNoSpace());
  EXPECT_EQ(a.stats().free_blocks, 6u);
  EXPECT_TRUE(a.Allocate(0).status().IsInvalidArgument());
  (void)e;
}

TEST(ExtentAllocatorTest, SerializeRoundTrips) {
  ExtentAllocator a(7, 1000);
  std::vector<Extent> keep;
  for (int i = 0; i < 20; ++i) keep.push_back(*a.Allocate(1 + i % 7));
  for (int i = 0; i < 20; i += 3) ASSERT_TRUE(a.Free(keep[i]).ok());
  Result<ExtentAllocator> b =
      ExtentAllocator::Deserialize(ExtentAllocator::kRecordVersion, a.Serialize(), 7, 1000);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(b->FreeExtents(), a.FreeExtents());
  EXPECT_EQ(b->stats().used_blocks, a.stats().used_blocks);
}

TEST(ExtentAllocatorTest, DeserializeRejectsBadTables) {
  ExtentAllocator a(0, 100);
  Extent e = *a.Allocate(10);
  (void)*a.Allocate(10);
  ASSERT_TRUE(a.Free(e).ok());  // free: [0,10) [20,100)
  const std::vector<uint8_t> good = a.Serialize();
  auto with = [&](size_t off, uint64_t v) {
    std::vector<uint8_t> b = good;
    for (int i = 0; i < 8; ++i) b[off + i] = static_cast<uint8_t>(v >> (8 * i));
    return b;
  };
  auto bad = [&](const std::vector<uint8_t>& b, uint32_t version = 1) {
    return ExtentAllocator::Deserialize(version, b, 0, 100).status();
  };
  EXPECT_TRUE(bad(good, 2).IsNotSupported());
  EXPECT_TRUE(bad(good, 0).IsCorruption());
  EXPECT_TRUE(bad({1, 2, 3}).IsCorruption());
  EXPECT_TRUE(bad(with(0, 1)).IsCorruption());             // other first block
  EXPECT_TRUE(bad(with(8, 99)).IsCorruption());            // other size
  EXPECT_TRUE(bad(with(16, 3)).IsCorruption());            // count vs length
  EXPECT_TRUE(bad(with(16, ~uint64_t{0})).IsCorruption());  // absurd count
  EXPECT_TRUE(bad(with(32, 0)).IsCorruption());            // empty run
  EXPECT_TRUE(bad(with(32, 21)).IsCorruption());           // overlaps the next run
  EXPECT_TRUE(bad(with(32, 20)).IsCorruption());           // touches the next run: not merged
  EXPECT_TRUE(bad(with(40, 5)).IsCorruption());            // before the previous run ends
  EXPECT_TRUE(bad(with(48, 81)).IsCorruption());           // past the end
  EXPECT_TRUE(bad(with(48, ~uint64_t{0})).IsCorruption());  // wraps
  std::vector<uint8_t> longer = good;
  longer.push_back(0);
  EXPECT_TRUE(bad(longer).IsCorruption());
}

// Seeded model check against a bitmap: random allocate/free (whole, partial, and invalid), with
// every invariant checked after every step. A failing seed replays exactly.
class Model {
 public:
  Model(uint64_t first, uint64_t n) : first_(first), used_(n, false) {}

  void Check(const ExtentAllocator& a) const {
    std::vector<Extent> free_runs = a.FreeExtents();
    std::vector<bool> seen_free(used_.size(), false);
    uint64_t free_blocks = 0, largest = 0;
    for (size_t i = 0; i < free_runs.size(); ++i) {
      const Extent& f = free_runs[i];
      ASSERT_GT(f.len_blocks, 0u);
      ASSERT_GE(f.start_block, first_);
      ASSERT_LE(f.end_block(), first_ + used_.size());
      if (i > 0) {
        ASSERT_GT(f.start_block, free_runs[i - 1].end_block()) << "not coalesced";
      }
      for (uint64_t b = f.start_block; b < f.end_block(); ++b) seen_free[b - first_] = true;
      free_blocks += f.len_blocks;
      largest = std::max(largest, f.len_blocks);
    }
    for (size_t b = 0; b < used_.size(); ++b) {
      ASSERT_EQ(seen_free[b], !used_[b]) << "block " << b + first_;
    }
    AllocatorStats s = a.stats();
    ASSERT_EQ(s.free_blocks, free_blocks);
    ASSERT_EQ(s.free_blocks + s.used_blocks, s.total_blocks);
    ASSERT_EQ(s.total_blocks, used_.size());
    ASSERT_EQ(s.largest_free_blocks, largest);
    ASSERT_EQ(s.free_extents, free_runs.size());
  }

  void MarkUsed(const Extent& e) {
    for (uint64_t b = e.start_block; b < e.end_block(); ++b) {
      ASSERT_FALSE(used_[b - first_]) << "overlap at block " << b;
      used_[b - first_] = true;
    }
  }
  void MarkFree(const Extent& e) {
    for (uint64_t b = e.start_block; b < e.end_block(); ++b) used_[b - first_] = false;
  }
  bool AllUsed(const Extent& e) const {
    if (e.len_blocks == 0 || e.start_block < first_ || e.end_block() < e.start_block ||
        e.end_block() > first_ + used_.size())
      return false;
    for (uint64_t b = e.start_block; b < e.end_block(); ++b)
      if (!used_[b - first_]) return false;
    return true;
  }
  uint64_t LargestFree() const {
    uint64_t best = 0, run = 0;
    for (bool u : used_) {
      run = u ? 0 : run + 1;
      best = std::max(best, run);
    }
    return best;
  }

 private:
  uint64_t first_;
  std::vector<bool> used_;
};

TEST(ExtentAllocatorTest, RandomizedModelCheck) {
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed);
    const uint64_t first = rng() % 1000, n = 200 + rng() % 2000;
    ExtentAllocator a(first, n);
    Model m(first, n);
    std::vector<Extent> live;
    for (int step = 0; step < 3000; ++step) {
      const uint64_t op = rng() % 10;
      if (op < 5) {
        const uint64_t len = 1 + (rng() % 4 == 0 ? rng() % (n / 4) : rng() % 16);
        Result<Extent> r = a.Allocate(len);
        if (r.ok()) {
          ASSERT_EQ(r->len_blocks, len);
          ASSERT_NO_FATAL_FAILURE(m.MarkUsed(*r));
          live.push_back(*r);
        } else {
          ASSERT_TRUE(r.status().IsNoSpace());
          ASSERT_LT(m.LargestFree(), len) << "NoSpace although a run fits";
        }
      } else if (op < 8 && !live.empty()) {
        size_t i = rng() % live.size();
        Extent e = live[i];
        if (rng() % 3 == 0 && e.len_blocks > 2) {  // free the middle part, keep both ends
          Extent mid{e.start_block + 1, e.len_blocks - 2};
          ASSERT_TRUE(a.Free(mid).ok());
          m.MarkFree(mid);
          live[i] = {e.start_block, 1};
          live.push_back({e.end_block() - 1, 1});
        } else {
          ASSERT_TRUE(a.Free(e).ok());
          m.MarkFree(e);
          live[i] = live.back();
          live.pop_back();
        }
      } else if (op == 8) {  // an arbitrary range: accepted exactly when all of it is in use
        Extent e{first + rng() % (n + 10) - 5, rng() % 20};
        const bool valid = m.AllUsed(e);
        Status s = a.Free(e);
        ASSERT_EQ(s.ok(), valid) << s.ToString();
        if (valid) {
          m.MarkFree(e);
          // Drop what the arbitrary free covered from the live list, splitting as needed.
          std::vector<Extent> next;
          for (const Extent& x : live) {
            if (x.end_block() <= e.start_block || x.start_block >= e.end_block()) {
              next.push_back(x);
              continue;
            }
            if (x.start_block < e.start_block) next.push_back({x.start_block, e.start_block - x.start_block});
            if (x.end_block() > e.end_block()) next.push_back({e.end_block(), x.end_block() - e.end_block()});
          }
          live = std::move(next);
        }
      } else {  // persistence round trip mid-run
        Result<ExtentAllocator> b =
            ExtentAllocator::Deserialize(ExtentAllocator::kRecordVersion, a.Serialize(), first, n);
        ASSERT_TRUE(b.ok()) << b.status().ToString();
        a = std::move(*b);
      }
      ASSERT_NO_FATAL_FAILURE(m.Check(a)) << "step " << step;
    }
  }
}

TEST(ExtentAllocatorTest, RandomTablesNeverCrash) {
  std::mt19937_64 rng(11);
  for (int iter = 0; iter < 5000; ++iter) {
    const uint64_t count = rng() % 6;
    std::vector<uint8_t> b(24 + 16 * count);
    for (auto& x : b) x = static_cast<uint8_t>(rng());
    // Mostly-plausible values, so the checks past the header get exercised.
    auto put = [&](size_t off, uint64_t v) {
      for (int i = 0; i < 8; ++i) b[off + i] = static_cast<uint8_t>(v >> (8 * i));
    };
    put(0, 10);
    put(8, 1000);
    put(16, count);
    for (uint64_t i = 0; i < count; ++i) {
      if (rng() % 2) put(24 + 16 * i, 10 + rng() % 1000);
      if (rng() % 2) put(32 + 16 * i, rng() % 300);
    }
    Result<ExtentAllocator> a = ExtentAllocator::Deserialize(1, b, 10, 1000);
    if (a.ok()) {
      AllocatorStats s = a->stats();
      EXPECT_EQ(s.free_blocks + s.used_blocks, 1000u);
    } else {
      EXPECT_TRUE(a.status().IsCorruption());
    }
  }
}

}  // namespace
}  // namespace dualblade::store
