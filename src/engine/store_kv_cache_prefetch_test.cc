// StoreKvCache's cross-layer prefetch and memory plan: reads are the memory policy's bytes under
// every depth and policy, stale or mismatched prefetches are discarded, the transformer's logits
// stay bit-identical, and the dual policy's PAGE set gives way to the cache's own memory.
#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <span>
#include <random>
#include <vector>

#include "common/units.h"
#include "compute/thread_pool.h"
#include "engine/model.h"
#include "engine/random_model.h"
#include "engine/store_kv_cache.h"
#include "engine/transformer.h"
#include "testing/test_env.h"

namespace dualblade::engine {
namespace {

constexpr int kAuto = StoreKvCacheOptions::kAutoPrefetch;

// Rows [t0, t1) of a layer from ReadChunks, K then V in token order; every row exactly once.
std::vector<uint8_t> Gather(KvCache& kv, int layer, int64_t t0, int64_t t1) {
  const size_t row = kv.geometry().row_bytes();
  const size_t n = static_cast<size_t>(t1 - t0);
  std::vector<uint8_t> out(2 * n * row, 0xee);
  std::vector<int> seen(n, 0);
  Status st = kv.ReadChunks(layer, t0, t1, [&](int64_t chunk, int64_t begin, int cnt,
                                               const void* k, const void* v) {
    EXPECT_EQ(begin / kv.geometry().chunk_tokens, chunk);
    std::memcpy(out.data() + (begin - t0) * row, k, cnt * row);
    std::memcpy(out.data() + (n + begin - t0) * row, v, cnt * row);
    for (int i = 0; i < cnt; ++i) ++seen[begin - t0 + i];
  });
  EXPECT_TRUE(st.ok()) << st.ToString();
  for (int s : seen) EXPECT_EQ(s, 1);
  return out;
}

KvGeometry SmallGeometry() {
  KvGeometry g;
  g.n_layer = 4;
  g.n_head_kv = 2;
  g.head_dim = 16;
  g.chunk_tokens = 16;
  g.type = compute::KvElemType::kF16;
  g.n_ctx = 400;
  return g;
}

// Appends ADD random rows to every layer and reads each layer whole right after its append, in
// layer order, as the transformer does; every read must equal the memory policy's.
void EngineStep(KvCache& mem, KvCache& disk, int add, std::mt19937_64& rng) {
  const size_t row = mem.geometry().row_bytes();
  for (int layer = 0; layer < mem.geometry().n_layer; ++layer) {
    std::vector<uint8_t> k(add * row), v(add * row);
    for (auto& b : k) b = static_cast<uint8_t>(rng());
    for (auto& b : v) b = static_cast<uint8_t>(rng());
    ASSERT_TRUE(mem.Append(layer, k.data(), v.data(), add).ok());
    Status st = disk.Append(layer, k.data(), v.data(), add);
    ASSERT_TRUE(st.ok()) << st.ToString();
    const int64_t n = mem.n_tokens(layer);
    ASSERT_EQ(Gather(mem, layer, 0, n), Gather(disk, layer, 0, n)) << "layer " << layer;
  }
}

TEST(StoreKvCachePrefetchTest, EngineOrderReadsMatchMemoryUnderEveryDepth) {
  for (const char* policy : {"direct", "pagecache", "dual"}) {
    for (int depth : {0, 1, 2, 3, kAuto}) {
      SCOPED_TRACE(std::string(policy) + " depth " + std::to_string(depth));
      testing::TempDir dir;
      const std::string path = dir.File("kv.img");
      ASSERT_TRUE(store::Store::Format(path, {.size_bytes = 64 * kMiB}).ok());
      const KvGeometry g = SmallGeometry();
      auto mem = NewMemoryKvCache(g);
      StoreKvCacheOptions opts;
      opts.policy = policy;
      opts.model_identity = "test";
      opts.prefetch_depth = depth;
      opts.mem_budget_bytes = 12 * kMiB;  // dual: no PAGE headroom, everything DIRECT
      auto disk = StoreKvCache::Open(path, g, opts);
      ASSERT_TRUE(disk.ok()) << disk.status().ToString();
      std::mt19937_64 rng(depth + 7);
      for (int step = 0; step < 60; ++step) {
        EngineStep(*mem, **disk, step < 3 ? 50 : 1, rng);
        if (HasFatalFailure()) return;
      }
      const KvStats st = (*disk)->stats();
      EXPECT_EQ(st.read_bytes_page + st.read_bytes_direct + st.read_bytes_memory,
                mem->stats().read_bytes_memory);
      if (depth == 0) {
        EXPECT_EQ(st.prefetch_used, 0u);
        EXPECT_EQ(st.prefetch_depth, 0u);
      } else {
        // Every layer read after the first has its prefetch (layers whose full chunks exist).
        EXPECT_GT(st.prefetch_used, 60u * 3);
        if (depth > 0) {
          EXPECT_EQ(st.prefetch_depth, static_cast<uint32_t>(depth));
        }
        EXPECT_GE(st.prefetch_depth, 1u);
      }
      EXPECT_GE(st.stall_ms, 0.0);
    }
  }
}

TEST(StoreKvCachePrefetchTest, MismatchedRequestsDiscardThePrefetch) {
  testing::TempDir dir;
  const std::string path = dir.File("kv.img");
  ASSERT_TRUE(store::Store::Format(path, {.size_bytes = 64 * kMiB}).ok());
  const KvGeometry g = SmallGeometry();
  auto mem = NewMemoryKvCache(g);
  StoreKvCacheOptions opts;
  opts.policy = "direct";
  opts.prefetch_depth = 2;
  auto disk = StoreKvCache::Open(path, g, opts);
  ASSERT_TRUE(disk.ok()) << disk.status().ToString();
  std::mt19937_64 rng(1);
  EngineStep(*mem, **disk, 100, rng);  // 6 full chunks per layer
  ASSERT_TRUE((*disk)->kv_store()->Flush().ok());
  // Reading layer 0 starts layers 1 and 2. A read of layer 1 not from token 0, and one of layer 2
  // ending inside the covered chunks, cannot use them: both are discarded and read afresh.
  EXPECT_EQ(Gather(*mem, 0, 0, 100), Gather(**disk, 0, 0, 100));
  const uint64_t discarded = (*disk)->stats().prefetch_discarded;
  EXPECT_EQ(Gather(*mem, 1, 5, 100), Gather(**disk, 1, 5, 100));
  EXPECT_EQ(Gather(*mem, 2, 0, 40), Gather(**disk, 2, 0, 40));
  EXPECT_GE((*disk)->stats().prefetch_discarded, discarded + 2);
  // In engine order they are used again.
  const uint64_t used = (*disk)->stats().prefetch_used;
  for (int layer = 0; layer < g.n_layer; ++layer)
    EXPECT_EQ(Gather(*mem, layer, 0, 100), Gather(**disk, layer, 0, 100));
  EXPECT_GE((*disk)->stats().prefetch_used, used + 3);
  EXPECT_GT((*disk)->stats().read_bytes_direct, 0u);
}

TEST(StoreKvCachePrefetchTest, PathChangesDiscardStalePrefetches) {
  auto monitor = MemoryMonitor::OpenSystem({});
  ASSERT_TRUE(monitor.ok());
  Result<MemoryReading> r = (*monitor)->SampleFull();
  ASSERT_TRUE(r.ok());
  if (r->kv_headroom_bytes < 1 * kGiB) GTEST_SKIP() << "less than 1 GiB of KV headroom here";
  testing::TempDir dir;
  const std::string path = dir.File("kv.img");
  ASSERT_TRUE(store::Store::Format(path, {.size_bytes = 64 * kMiB}).ok());
  const KvGeometry g = SmallGeometry();
  auto mem = NewMemoryKvCache(g);
  StoreKvCacheOptions opts;
  opts.policy = "dual";
  opts.prefetch_depth = 3;
  opts.mem_budget_bytes = r->pinned_bytes + 512 * kMiB;  // the whole KV fits the PAGE set
  auto disk = StoreKvCache::Open(path, g, opts);
  ASSERT_TRUE(disk.ok()) << disk.status().ToString();
  std::mt19937_64 rng(2);
  for (int step = 0; step < 3; ++step) EngineStep(*mem, **disk, 50, rng);
  ASSERT_GT((*disk)->placement()->page_chunks(), 0u);
  ASSERT_TRUE((*disk)->kv_store()->Flush().ok());
  // Layer 0's read starts layers 1..3 through the PAGE path; then memory runs out and the
  // re-plan demotes every chunk: those prefetches are stale and must be dropped, not used.
  EXPECT_EQ(Gather(*mem, 0, 0, 150), Gather(**disk, 0, 0, 150));
  const uint64_t discarded = (*disk)->stats().prefetch_discarded;
  (*disk)->monitor()->Reserve("squeeze", opts.mem_budget_bytes);
  ASSERT_TRUE((*disk)->Replan().ok());
  EXPECT_EQ((*disk)->placement()->page_chunks(), 0u);
  EXPECT_EQ((*disk)->stats().prefetch_discarded, discarded + 3);
  const uint64_t direct = (*disk)->stats().read_bytes_direct;
  for (int layer = 1; layer < g.n_layer; ++layer)
    EXPECT_EQ(Gather(*mem, layer, 0, 150), Gather(**disk, layer, 0, 150));
  EXPECT_GT((*disk)->stats().read_bytes_direct, direct);  // read again, through the new path
}

// Fails every read transfer while armed.
class FailReads final : public IoFaultHook {
 public:
  bool armed = false;
  bool OnTransfer(IoOp op, uint64_t, uint64_t, int64_t* result) override {
    if (!armed || op != IoOp::kRead) return false;
    *result = -EIO;
    return true;
  }
};

TEST(StoreKvCachePrefetchTest, ReadErrorsFailTheLayersTheyHitAndNothingHangs) {
  testing::TempDir dir;
  const std::string path = dir.File("kv.img");
  ASSERT_TRUE(store::Store::Format(path, {.size_bytes = 64 * kMiB}).ok());
  auto st = store::Store::Open(path, store::StoreOpenOptions{.read_only = false});
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  FailReads hook;
  store::KvStoreOptions ko;
  ko.fault_hook = &hook;
  auto kvs = store::KvStore::Open(st->get(), ko);
  ASSERT_TRUE(kvs.ok()) << kvs.status().ToString();
  const KvGeometry g = SmallGeometry();
  auto mem = NewMemoryKvCache(g);
  StoreKvCacheOptions opts;
  opts.policy = "direct";
  opts.prefetch_depth = 2;
  auto disk = StoreKvCache::Create(kvs->get(), g, opts);
  ASSERT_TRUE(disk.ok()) << disk.status().ToString();
  std::mt19937_64 rng(3);
  for (int step = 0; step < 2; ++step) EngineStep(*mem, **disk, 60, rng);
  ASSERT_TRUE((*disk)->kv_store()->Flush().ok());
  // Layers 0 and 1 were prefetched by the last step and may have landed before the fault; the
  // reads of layers 2 and 3 start under it (prefetched while 0 and 1 are read) and must fail:
  // an error, never rows missing from the delivery.
  const size_t row = g.row_bytes();
  // Reads every layer in engine order; a read that succeeds must have delivered the exact rows.
  auto read_all = [&](std::vector<bool>* ok) {
    for (int layer = 0; layer < g.n_layer; ++layer) {
      const int64_t n = mem->n_tokens(layer);
      std::vector<uint8_t> got(2 * n * row);
      Status s = (*disk)->ReadChunks(layer, 0, n, [&](int64_t, int64_t begin, int cnt,
                                                      const void* k, const void* v) {
        std::memcpy(got.data() + begin * row, k, cnt * row);
        std::memcpy(got.data() + (n + begin) * row, v, cnt * row);
      });
      (*ok)[layer] = s.ok();
      if (s.ok()) {
        EXPECT_EQ(got, Gather(*mem, layer, 0, n)) << "layer " << layer;
      }
    }
  };
  std::vector<bool> ok(g.n_layer);
  hook.armed = true;
  read_all(&ok);
  EXPECT_FALSE(ok[2]);
  EXPECT_FALSE(ok[3]);
  // Prefetches started under the fault (layers 0 and 1, for the next step) may still fail one
  // read each; after that every read is whole again.
  hook.armed = false;
  read_all(&ok);
  EXPECT_TRUE(ok[2]);
  EXPECT_TRUE(ok[3]);
  for (int layer = 0; layer < g.n_layer; ++layer) {
    const int64_t n = mem->n_tokens(layer);
    EXPECT_EQ(Gather(*mem, layer, 0, n), Gather(**disk, layer, 0, n)) << "layer " << layer;
  }
}

TEST(StoreKvCachePrefetchTest, MemoryPlanFollowsTheBudget) {
  const uint64_t chunk = 512 * kKiB;
  const KvMemoryPlan small = PlanKvMemory(256 * kMiB, kAuto, chunk);
  EXPECT_EQ(small.read_staging_bytes, 4 * kMiB);
  EXPECT_EQ(small.write_inflight_bytes, 4 * kMiB);
  EXPECT_EQ(small.max_request_bytes, 512 * kKiB);
  EXPECT_GE(small.max_prefetch_depth, 1u);
  // Everything the cache keeps besides the PAGE set: well under the 96 MiB of the defaults.
  EXPECT_LE(small.read_staging_reserve_bytes() + small.write_inflight_bytes, 256 * kMiB / 6);
  const KvMemoryPlan fixed = PlanKvMemory(256 * kMiB, 2, chunk);
  EXPECT_EQ(fixed.max_prefetch_depth, 2u);
  EXPECT_EQ(fixed.read_batches(), 4u);
  // Large or unknown budgets reach the store's defaults, tiny ones keep two chunks per window.
  for (uint64_t budget : {uint64_t{64} * kGiB, uint64_t{0}}) {
    const KvMemoryPlan big = PlanKvMemory(budget, kAuto, chunk);
    EXPECT_EQ(big.read_staging_bytes, 32 * kMiB);
    EXPECT_EQ(big.write_inflight_bytes, 64 * kMiB);
    EXPECT_EQ(big.max_request_bytes, 1 * kMiB);
    EXPECT_EQ(big.max_prefetch_depth, 8u);
  }
  const KvMemoryPlan tiny = PlanKvMemory(16 * kMiB, kAuto, 4 * kMiB);
  EXPECT_EQ(tiny.read_staging_bytes, 8 * kMiB);
  EXPECT_EQ(tiny.max_request_bytes, 2 * kMiB);
  EXPECT_EQ(tiny.max_prefetch_depth, 1u);
}

TEST(StoreKvCachePrefetchTest, DualReservesTheCachesOwnMemory) {
  auto probe = MemoryMonitor::OpenSystem({});
  ASSERT_TRUE(probe.ok());
  Result<MemoryReading> r = (*probe)->SampleFull();
  ASSERT_TRUE(r.ok());
  if (r->available_bytes < 2 * kGiB) GTEST_SKIP() << "less than 2 GiB available here";
  testing::TempDir dir;
  const std::string path = dir.File("kv.img");
  ASSERT_TRUE(store::Store::Format(path, {.size_bytes = 64 * kMiB}).ok());
  const KvGeometry g = SmallGeometry();
  StoreKvCacheOptions opts;
  opts.policy = "dual";
  opts.mem_budget_bytes = 1 * kGiB;
  // Declared anonymous memory above what this process really has, so the declarations decide
  // the headroom (the monitor takes the larger of the two).
  opts.reserves = {{"activations", r->anon_bytes + 128 * kMiB, ReserveKind::kAnon}};
  auto disk = StoreKvCache::Open(path, g, opts);
  ASSERT_TRUE(disk.ok()) << disk.status().ToString();
  MemoryMonitor* m = (*disk)->monitor();
  const KvMemoryPlan& mp = (*disk)->memory_plan();
  EXPECT_EQ(mp.read_staging_bytes, 16 * kMiB);  // 1 GiB / 64
  EXPECT_EQ(m->reserved_bytes("kv-read-staging"), mp.read_staging_reserve_bytes());
  EXPECT_EQ(m->reserved_bytes("kv-write-inflight"), mp.write_inflight_bytes);
  EXPECT_GT(m->reserved_bytes("kv-tails"), 0u);
  EXPECT_GT(m->reserved_bytes("kv-read-copies"), 0u);
  const uint64_t own = m->reserved_bytes("kv-read-staging") +
                       m->reserved_bytes("kv-write-inflight") + m->reserved_bytes("kv-tails") +
                       m->reserved_bytes("kv-read-copies");
  Result<MemoryReading> with = m->SampleFull();
  ASSERT_TRUE(with.ok());
  for (const char* name : {"kv-read-staging", "kv-write-inflight", "kv-tails", "kv-read-copies"})
    m->Release(name);
  Result<MemoryReading> without = m->SampleFull();
  ASSERT_TRUE(without.ok());
  // Every byte the cache declared comes out of the KV headroom, so out of the PAGE set: the
  // first plan sized it to the headroom left after them.
  EXPECT_EQ(without->kv_headroom_bytes - with->kv_headroom_bytes, own);
  const PlacementPlan& plan = (*disk)->last_plan();
  EXPECT_LE(plan.page_budget_bytes, with->kv_headroom_bytes) << plan.reason;
  if (plan.reason.find("pressure") == std::string::npos) {  // else a band below the headroom
    EXPECT_EQ(plan.reason, "initial");
    EXPECT_EQ(plan.page_budget_bytes + own, without->kv_headroom_bytes);
  }
}

TEST(StoreKvCachePrefetchTest, BudgetBelowWhatTheRunKeepsIsRefused) {
  testing::TempDir dir;
  const std::string path = dir.File("kv.img");
  ASSERT_TRUE(store::Store::Format(path, {.size_bytes = 64 * kMiB}).ok());
  StoreKvCacheOptions opts;
  opts.policy = "dual";
  opts.mem_budget_bytes = 16 * kMiB;
  opts.reserves = {{"weights", 20 * kMiB, ReserveKind::kFileBacked}};
  auto disk = StoreKvCache::Open(path, SmallGeometry(), opts);
  ASSERT_TRUE(disk.status().IsInvalidArgument()) << disk.status().ToString();
  EXPECT_NE(disk.status().message().find("weights 20.0 MiB"), std::string::npos)
      << disk.status().ToString();
  opts.prefetch_depth = -2;
  opts.mem_budget_bytes = 0;
  EXPECT_TRUE(StoreKvCache::Open(path, SmallGeometry(), opts).status().IsInvalidArgument());
}

// Prefill 60 tokens in micro-batches of 24 (later batches read back earlier chunks), then
// decode 12; every step's logits, concatenated.
std::vector<float> RunModel(const Model& m, KvCache* kv, compute::ThreadPool* pool) {
  Transformer tf(m, kv, pool);
  const int32_t n_vocab = static_cast<int32_t>(m.config().n_vocab);
  std::vector<int32_t> prompt(60);
  for (int i = 0; i < 60; ++i) prompt[i] = (i * 37 + 5) % n_vocab;
  std::vector<float> all, logits(n_vocab);
  for (int done = 0; done < 60; done += 24) {
    const int n = std::min(24, 60 - done);
    EXPECT_TRUE(tf.Forward(std::span(prompt).subspan(done, n), logits.data()).ok());
    all.insert(all.end(), logits.begin(), logits.end());
  }
  for (int s = 0; s < 12; ++s) {
    const int32_t next[1] = {(s * 11 + 3) % n_vocab};
    EXPECT_TRUE(tf.Forward(next, logits.data()).ok());
    all.insert(all.end(), logits.begin(), logits.end());
  }
  return all;
}

TEST(StoreKvCachePrefetchTest, LogitsAreBitIdenticalUnderEveryPolicyAndDepth) {
  testing::TempDir dir;
  RandomModelSpec spec;
  spec.n_layer = 4;
  spec.seed = 9;
  ASSERT_TRUE(WriteRandomModel(spec, dir.File("m.gguf")).ok());
  auto model = Model::Open(dir.File("m.gguf"));
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  const std::string path = dir.File("kv.store");
  ASSERT_TRUE(store::Store::Format(path, {.size_bytes = 64 * kMiB}).ok());
  KvGeometry g;
  g.n_layer = static_cast<int>((*model)->config().n_layer);
  g.n_head_kv = static_cast<int>((*model)->config().n_head_kv);
  g.head_dim = static_cast<int>((*model)->config().n_embd_head);
  g.chunk_tokens = 8;
  g.type = compute::KvElemType::kF16;
  g.n_ctx = 128;
  compute::ThreadPool pool(2);
  auto memory = NewMemoryKvCache(g);
  const std::vector<float> want = RunModel(**model, memory.get(), &pool);
  for (const char* policy : {"pagecache", "direct", "dual"}) {
    for (int depth : {0, 1, 3, kAuto}) {
      SCOPED_TRACE(std::string(policy) + " depth " + std::to_string(depth));
      StoreKvCacheOptions opts;
      opts.policy = policy;
      opts.model_identity = "prefetch_test";
      opts.prefetch_depth = depth;
      auto kv = StoreKvCache::Open(path, g, opts);
      ASSERT_TRUE(kv.ok()) << kv.status().ToString();
      const std::vector<float> got = RunModel(**model, kv->get(), &pool);
      ASSERT_EQ(got.size(), want.size());
      EXPECT_EQ(0, std::memcmp(got.data(), want.data(), want.size() * sizeof(float)));
      if (depth != 0) {
        EXPECT_GT((*kv)->stats().prefetch_used, 0u);
      }
    }
  }
}

}  // namespace
}  // namespace dualblade::engine
