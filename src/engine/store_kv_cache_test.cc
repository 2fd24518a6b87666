#include "engine/store_kv_cache.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "common/units.h"
#include "residency/residency_probe.h"
#include "testing/test_env.h"

namespace dualblade::engine {
namespace {

// Rows [token_begin, token_end) of a layer gathered from ReadChunks, K then V, in token order.
std::pair<std::vector<uint8_t>, std::vector<uint8_t>> Gather(KvCache& kv, int layer, int64_t t0,
                                                             int64_t t1) {
  const size_t row = kv.geometry().row_bytes();
  std::vector<uint8_t> k((t1 - t0) * row, 0xee), v((t1 - t0) * row, 0xee);
  std::vector<int> seen(t1 - t0, 0);
  Status st = kv.ReadChunks(layer, t0, t1, [&](int64_t chunk, int64_t begin, int n,
                                               const void* kp, const void* vp) {
    EXPECT_EQ(begin / kv.geometry().chunk_tokens, chunk);
    std::memcpy(k.data() + (begin - t0) * row, kp, n * row);
    std::memcpy(v.data() + (begin - t0) * row, vp, n * row);
    for (int i = 0; i < n; ++i) ++seen[begin - t0 + i];
  });
  EXPECT_TRUE(st.ok()) << st.ToString();
  for (int s : seen) EXPECT_EQ(s, 1);
  return {k, v};
}

void SameAsMemory(const std::string& policy, compute::KvElemType type, uint64_t seed) {
  SCOPED_TRACE(policy + " seed " + std::to_string(seed));
  testing::TempDir dir;
  const std::string path = dir.File("kv.img");
  ASSERT_TRUE(store::Store::Format(path, {.size_bytes = 64 * kMiB}).ok());
  KvGeometry g;
  g.n_layer = 3;
  g.n_head_kv = 2;
  g.head_dim = 16;
  g.chunk_tokens = 32;
  g.type = type;
  g.n_ctx = 300;
  auto mem = NewMemoryKvCache(g);
  Result<std::unique_ptr<StoreKvCache>> disk =
      StoreKvCache::Open(path, g, {.policy = policy, .model_identity = "test",
                                   .drop_on_close = true, .verify_checksums = true});
  ASSERT_TRUE(disk.ok()) << disk.status().ToString();
  EXPECT_EQ((*disk)->policy_name(), policy);
  std::mt19937_64 rng(seed);
  const size_t row = g.row_bytes();
  for (int step = 0; step < 200; ++step) {
    const int layer = static_cast<int>(rng() % g.n_layer);
    const int64_t n = mem->n_tokens(layer);
    if (rng() % 2 == 0) {
      int add = 1 + static_cast<int>(rng() % 40);
      std::vector<uint8_t> k(add * row), v(add * row);
      for (auto& b : k) b = static_cast<uint8_t>(rng());
      for (auto& b : v) b = static_cast<uint8_t>(rng());
      Status a = mem->Append(layer, k.data(), v.data(), add);
      Status b = (*disk)->Append(layer, k.data(), v.data(), add);
      ASSERT_EQ(a.code(), b.code()) << b.ToString();
    } else if (n > 0) {
      const int64_t t0 = static_cast<int64_t>(rng() % n);
      const int64_t t1 = t0 + 1 + static_cast<int64_t>(rng() % (n - t0));
      ASSERT_EQ(Gather(*mem, layer, t0, t1), Gather(**disk, layer, t0, t1));
    }
    ASSERT_EQ(mem->n_tokens(layer), (*disk)->n_tokens(layer));
  }
  // Land every chunk write, then read everything once more: full chunks now come from disk.
  ASSERT_TRUE((*disk)->kv_store()->Flush().ok());
  for (int layer = 0; layer < g.n_layer; ++layer) {
    const int64_t n = mem->n_tokens(layer);
    ASSERT_EQ(Gather(*mem, layer, 0, n), Gather(**disk, layer, 0, n));
  }
  const KvStats st = (*disk)->stats();
  const uint64_t disk_reads = policy == "pagecache" ? st.read_bytes_page : st.read_bytes_direct;
  const uint64_t other = policy == "pagecache" ? st.read_bytes_direct : st.read_bytes_page;
  EXPECT_GT(disk_reads, 0u);
  EXPECT_EQ(other, 0u);
  EXPECT_GT(st.read_bytes_memory, 0u);
  EXPECT_EQ(st.read_bytes_page + st.read_bytes_direct + st.read_bytes_memory,
            mem->stats().read_bytes_memory);
  EXPECT_GT(policy == "pagecache" ? st.write_bytes_page : st.write_bytes_direct, 0u);
  // PAGE writes leave their pages cached, so page reads hit; direct chunks are never counted.
  if (policy == "pagecache" && CachestatSupported()) {
    EXPECT_GT(st.pagecache_hit_bytes, 0u);
  }
  EXPECT_LE(st.pagecache_hit_bytes, st.read_bytes_page);
}

TEST(StoreKvCacheTest, PageCachePolicyMatchesMemory) {
  SameAsMemory("pagecache", compute::KvElemType::kF16, 1);
  SameAsMemory("pagecache", compute::KvElemType::kF32, 2);
}

TEST(StoreKvCacheTest, DirectPolicyMatchesMemory) {
  SameAsMemory("direct", compute::KvElemType::kF16, 3);
  SameAsMemory("direct", compute::KvElemType::kF32, 4);
}

// Runs the dual policy under BUDGET_BYTES the way the engine drives a cache (every layer
// appended once per step, prefill-sized steps then single tokens), checks every row against the
// memory policy and returns the cache's stats; *page_chunks gets the chunks left on PAGE.
KvStats RunDual(uint64_t budget_bytes, uint64_t* page_chunks, uint64_t* full_chunks) {
  SCOPED_TRACE("budget " + FormatBytes(budget_bytes));
  testing::TempDir dir;
  const std::string path = dir.File("kv.img");
  EXPECT_TRUE(store::Store::Format(path, {.size_bytes = 64 * kMiB}).ok());
  KvGeometry g;
  g.n_layer = 3;
  g.n_head_kv = 2;
  g.head_dim = 16;
  g.chunk_tokens = 32;
  g.type = compute::KvElemType::kF16;
  g.n_ctx = 400;
  auto mem = NewMemoryKvCache(g);
  StoreKvCacheOptions opts;
  opts.policy = "dual";
  opts.model_identity = "test";
  opts.mem_budget_bytes = budget_bytes;
  opts.reserves = {{"weights", 1 * kMiB, ReserveKind::kFileBacked}};
  auto disk = StoreKvCache::Open(path, g, opts);
  EXPECT_TRUE(disk.ok()) << disk.status().ToString();
  if (!disk.ok()) return {};
  EXPECT_EQ((*disk)->policy_name(), "dual");
  EXPECT_NE((*disk)->placement(), nullptr);
  std::mt19937_64 rng(budget_bytes);
  const size_t row = g.row_bytes();
  for (int step = 0; step < 120; ++step) {
    const int add = step < 4 ? 64 : 1;  // a prefill in micro-batches, then decode
    for (int layer = 0; layer < g.n_layer; ++layer) {
      std::vector<uint8_t> k(add * row), v(add * row);
      for (auto& b : k) b = static_cast<uint8_t>(rng());
      for (auto& b : v) b = static_cast<uint8_t>(rng());
      EXPECT_TRUE(mem->Append(layer, k.data(), v.data(), add).ok());
      Status st = (*disk)->Append(layer, k.data(), v.data(), add);
      EXPECT_TRUE(st.ok()) << st.ToString();
      const int64_t n = mem->n_tokens(layer);
      EXPECT_EQ(Gather(*mem, layer, 0, n), Gather(**disk, layer, 0, n));
    }
  }
  EXPECT_TRUE((*disk)->kv_store()->Flush().ok());
  for (int layer = 0; layer < g.n_layer; ++layer) {
    const int64_t n = mem->n_tokens(layer);
    EXPECT_EQ(Gather(*mem, layer, 0, n), Gather(**disk, layer, 0, n));
  }
  EXPECT_EQ((*disk)->replans(), 1u + 120u);  // one at creation, one per step
  *page_chunks = 0;
  *full_chunks = 0;
  for (int layer = 0; layer < g.n_layer; ++layer) {
    const int64_t full = mem->n_tokens(layer) / g.chunk_tokens;
    *full_chunks += static_cast<uint64_t>(full);
    for (int64_t c = 0; c < full; ++c) {
      Result<store::KvPath> p = (*disk)->kv_store()->ChunkPath((*disk)->seq_id(), layer, c);
      EXPECT_TRUE(p.ok());
      const KvPath planned = (*disk)->placement()->path(layer, static_cast<uint64_t>(c));
      // The store holds the path the placement applied.
      EXPECT_EQ(*p == store::KvPath::kPage, planned == KvPath::kPage);
      if (planned == KvPath::kPage) ++*page_chunks;
    }
  }
  uint64_t used_chunks = 0;  // full chunks and partial tails
  for (int layer = 0; layer < g.n_layer; ++layer)
    used_chunks += static_cast<uint64_t>((mem->n_tokens(layer) + g.chunk_tokens - 1) /
                                         g.chunk_tokens);
  EXPECT_EQ((*disk)->placement()->page_chunks() + (*disk)->placement()->direct_chunks(),
            used_chunks);
  EXPECT_GE((*disk)->placement()->page_chunks(), *page_chunks);
  const KvStats st = (*disk)->stats();
  EXPECT_EQ(st.read_bytes_page + st.read_bytes_direct + st.read_bytes_memory,
            mem->stats().read_bytes_memory);
  return st;
}

TEST(StoreKvCacheTest, DualPolicyPlacesByMemoryBudget) {
  // A budget that holds the declared memory (weights, the cache's staging, buffers and tails:
  // about 7 MiB here) but not the safety margin (8 MiB) on top leaves no headroom: every chunk
  // is written and read DIRECT.
  uint64_t page = 0, full = 0;
  KvStats tiny = RunDual(12 * kMiB, &page, &full);
  EXPECT_GT(full, 0u);
  EXPECT_EQ(page, 0u);
  EXPECT_EQ(tiny.read_bytes_page, 0u);
  EXPECT_EQ(tiny.write_bytes_page, 0u);
  EXPECT_GT(tiny.read_bytes_direct, 0u);
  EXPECT_GT(tiny.write_bytes_direct, 0u);

  // A budget well above what the process pins (and what this machine can spare, else skip):
  // the whole KV (under a MiB) fits the PAGE set, so every chunk goes PAGE.
  auto monitor = MemoryMonitor::OpenSystem({});
  ASSERT_TRUE(monitor.ok());
  Result<MemoryReading> r = (*monitor)->SampleFull();
  ASSERT_TRUE(r.ok());
  if (r->kv_headroom_bytes < 512 * kMiB) GTEST_SKIP() << "less than 512 MiB of KV headroom here";
  const uint64_t generous = r->pinned_bytes * 2 + 512 * kMiB;
  KvStats big = RunDual(generous, &page, &full);
  EXPECT_EQ(page, full);
  EXPECT_GT(big.read_bytes_page, 0u);
  EXPECT_GT(big.write_bytes_page, 0u);
  EXPECT_EQ(big.read_bytes_direct, 0u);
  EXPECT_EQ(big.write_bytes_direct, 0u);
  EXPECT_LE(big.pagecache_hit_bytes, big.read_bytes_page);
}

TEST(StoreKvCacheTest, ClearErrors) {
  testing::TempDir dir;
  const std::string path = dir.File("kv.img");
  ASSERT_TRUE(store::Store::Format(path, {.size_bytes = 16 * kMiB}).ok());
  KvGeometry g;
  g.n_layer = 2;
  g.n_head_kv = 2;
  g.head_dim = 16;
  g.n_ctx = 64;
  StoreKvCacheOptions memory_policy;
  memory_policy.policy = "memory";
  EXPECT_TRUE(StoreKvCache::Open(path, g, memory_policy).status().IsInvalidArgument());
  EXPECT_TRUE(StoreKvCache::Open(dir.File("missing"), g, {}).status().IsNotFound());
  KvGeometry huge = g;
  huge.n_ctx = 1 << 24;  // far more than 16 MiB
  EXPECT_TRUE(StoreKvCache::Open(path, huge, {}).status().IsNoSpace());
  auto kv = StoreKvCache::Open(path, g, {});
  ASSERT_TRUE(kv.ok()) << kv.status().ToString();
  std::vector<float> rows(65 * g.row_elems());
  EXPECT_TRUE((*kv)->Append(0, rows.data(), rows.data(), 65).IsNoSpace());
  EXPECT_EQ((*kv)->n_tokens(0), 0);
}

}  // namespace
}  // namespace dualblade::engine
