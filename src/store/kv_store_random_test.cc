// Seeded random operations on several sequences against an in-memory reference: appends, reads of
// random ranges, every path transition (whole ranges and chunk by chunk, so segments mix paths),
// commits, restarts (uncommitted work disappears, committed work survives) and drops. A failing
// seed replays exactly.
#include <gtest/gtest.h>

#include <map>
#include <optional>

#include "common/units.h"
#include "store/kv_store.h"
#include "store/kv_test_util.h"
#include "testing/test_env.h"

namespace dualblade::store {
namespace {

using dualblade::testing::TempDir;
using testing::AppendRandom;
using testing::ExpectAll;
using testing::ExpectRange;
using testing::KvFixture;
using testing::RefSequence;

KvGeometry RandomGeometry(std::mt19937_64& rng) {
  KvGeometry g;
  g.n_layer = 1 + rng() % 3;
  g.n_head_kv = 1 + rng() % 4;
  g.head_dim = 32 * (1 + rng() % 2);
  g.type = rng() % 2 ? KvType::kF16 : KvType::kQ8_0;
  g.chunk_tokens = std::vector<uint32_t>{8, 16, 64}[rng() % 3];
  g.capacity_tokens = 1 + rng() % 200;
  return g;
}

struct Model {
  std::map<SeqId, RefSequence> live;       // what the KvStore holds now
  std::map<SeqId, RefSequence> committed;  // what a restart must find
};

void RunRandomOps(KvFixture& f, uint64_t seed, int n_ops) {
  std::mt19937_64 rng(seed);
  Model m;
  for (int op = 0; op < n_ops; ++op) {
    SCOPED_TRACE("seed " + std::to_string(seed) + " op " + std::to_string(op));
    KvStore& kv = f.kv();
    const int what = static_cast<int>(rng() % 100);
    std::optional<SeqId> pick;
    if (!m.live.empty()) {
      auto it = m.live.begin();
      std::advance(it, static_cast<long>(rng() % m.live.size()));
      pick = it->first;
    }
    if (!pick || (what < 5 && m.live.size() < 4)) {
      KvGeometry g = RandomGeometry(rng);
      Result<SeqId> id = kv.CreateSequence(g, "model-" + std::to_string(op));
      ASSERT_TRUE(id.ok()) << id.status().ToString();
      m.live.emplace(*id, RefSequence(g));
      continue;
    }
    RefSequence& ref = m.live.at(*pick);
    const uint32_t layer = static_cast<uint32_t>(rng() % ref.geometry.n_layer);
    const uint64_t n = ref.n_tokens(layer);
    const uint64_t ct = ref.geometry.chunk_tokens;
    if (what < 45) {
      const uint64_t add = rng() % 3 == 0 ? 1 : 1 + rng() % (3 * ct);
      ASSERT_TRUE(AppendRandom(kv, *pick, ref, layer, add, rng).ok());
    } else if (what < 70) {
      if (n == 0) continue;
      const uint64_t t0 = rng() % n;
      const uint64_t t1 = t0 + 1 + rng() % (n - t0);
      ExpectRange(kv, *pick, ref, layer, t0, t1);
    } else if (what < 85) {
      Result<KvSequenceInfo> info = kv.Describe(*pick);
      ASSERT_TRUE(info.ok());
      const uint64_t cap = info->capacity_tokens[layer] / ct;
      const uint64_t c0 = rng() % cap;
      const uint64_t c1 = c0 + 1 + rng() % std::min<uint64_t>(cap - c0, 4);
      const KvPath p = rng() % 2 ? KvPath::kPage : KvPath::kDirect;
      ASSERT_TRUE(kv.SetChunkPath(*pick, layer, c0, c1, p).ok());
      for (uint64_t c = c0; c < c1; ++c) ASSERT_EQ(kv.ChunkPath(*pick, layer, c).value(), p);
    } else if (what < 91) {
      ASSERT_TRUE(kv.Commit().ok());
      m.committed = m.live;
    } else if (what < 95) {
      ASSERT_TRUE(kv.Drop(*pick).ok());  // commits: the rest of the live state too
      m.live.erase(*pick);
      m.committed = m.live;
    } else {
      Status st = f.Reopen();
      ASSERT_TRUE(st.ok()) << st.ToString();
      m.live = m.committed;
      std::vector<SeqId> ids;
      for (const auto& [id, r] : m.live) ids.push_back(id);
      ASSERT_EQ(f.kv().Sequences(), ids);
    }
  }
  for (const auto& [id, ref] : m.live) ExpectAll(f.kv(), id, ref);
  ASSERT_TRUE(f.kv().Commit().ok());
  ASSERT_TRUE(f.Reopen().ok());
  for (const auto& [id, ref] : m.live) ExpectAll(f.kv(), id, ref);
  for (const auto& [id, ref] : m.live) ASSERT_TRUE(f.kv().Drop(id).ok());
  EXPECT_EQ(f.store().allocator().stats().used_blocks, 0u);
}

TEST(KvStoreRandomTest, FileStoreIoUring) {
  TempDir dir;
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    auto f = KvFixture::Create(dir.File("s.img"), 64 * kMiB);
    ASSERT_TRUE(f);
    RunRandomOps(*f, seed, 300);
    if (HasFatalFailure()) return;
  }
}

TEST(KvStoreRandomTest, FileStoreThreadPoolSmallStaging) {
  TempDir dir;
  // One request per chunk and staging for one run at a time: the submit-as-consumed path.
  KvStoreOptions opts{.queue_depth = 2, .max_request_bytes = 4096, .read_staging_bytes = 8192,
                      .write_inflight_bytes = 16384, .force_threadpool = true};
  for (uint64_t seed = 100; seed <= 103; ++seed) {
    auto f = KvFixture::Create(dir.File("s.img"), 64 * kMiB, opts);
    ASSERT_TRUE(f);
    RunRandomOps(*f, seed, 300);
    if (HasFatalFailure()) return;
  }
}

TEST(KvStoreRandomTest, LoopDevice) {
  DB_LOOP_DEVICE_OR_SKIP(loop, 64 * kMiB);
  for (uint64_t seed = 200; seed <= 202; ++seed) {
    auto f = KvFixture::Create(loop.device(), 0);
    ASSERT_TRUE(f);
    RunRandomOps(*f, seed, 300);
    if (HasFatalFailure()) return;
  }
}

}  // namespace
}  // namespace dualblade::store
