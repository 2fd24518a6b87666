// The pipeline on real I/O: a sequence written through a KvStore (PAGE, DIRECT and in-memory tail
// chunks), decode steps run by the Prefetcher over the KvStoreExecutor's I/O and compute threads,
// on a temp file and on a loop device. Every chunk must reach compute exactly once with the bytes
// written, and the chunk-order merge must come out bit-identical at every depth and pool size,
// with the staging pool registered with the store's I/O engine (fixed-buffer reads) or not.
#include "pipeline/kv_store_executor.h"

#include <gtest/gtest.h>

#include <cstring>
#include <chrono>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "common/clock.h"
#include "common/units.h"
#include "io/fault_injection.h"
#include "io/io_buffer.h"
#include "io/io_engine.h"
#include "store/kv_test_util.h"
#include "testing/test_env.h"

namespace dualblade {
namespace {

using store::KvPath;
using store::testing::AppendRandom;
using store::testing::KvFixture;
using store::testing::RefSequence;
using testing::TempDir;

constexpr uint32_t kLayers = 4;
constexpr uint64_t kChunkTokens = 16;
constexpr uint64_t kTokens = 10 * kChunkTokens + 5;  // 10 chunks on disk, a 5-token tail
constexpr uint32_t kChunksPerLayer = 11;

store::KvGeometry Geo() {
  store::KvGeometry g;
  g.n_layer = kLayers;
  g.n_head_kv = 2;
  g.head_dim = 64;
  g.type = store::KvType::kF16;
  g.chunk_tokens = kChunkTokens;
  g.capacity_tokens = 2 * kTokens;
  return g;
}

void Spin(uint64_t us) {
  Stopwatch sw;
  while (sw.ElapsedNanos() < us * 1000) {
  }
}

// Compute that checks every byte against the reference, keeps a float partial per chunk (an
// order-sensitive sum, so any merge not in chunk order would show) and merges them in chunk order
// at the layer's end.
class Model final : public ChunkConsumer {
 public:
  explicit Model(const RefSequence* ref) : ref_(ref) {}

  Status Compute(const KvComputeUnit& t, std::span<const uint8_t> data) {
    if (t.layer_tail) {
      Spin(150);
      return Status::OK();
    }
    const uint64_t row = ref_->geometry.row_bytes();
    const uint64_t part = kChunkTokens * row;
    const uint64_t t0 = uint64_t{t.chunk} * kChunkTokens;
    const uint64_t n = std::min(kChunkTokens, ref_->n_tokens(t.layer) - t0) * row;
    if (data.size() < part + n ||
        std::memcmp(data.data(), ref_->k[t.layer].data() + t0 * row, n) != 0 ||
        std::memcmp(data.data() + part, ref_->v[t.layer].data() + t0 * row, n) != 0) {
      return Status::Corruption("layer " + std::to_string(t.layer) + " chunk " +
                                std::to_string(t.chunk) + " reached compute with wrong bytes");
    }
    float sum = 0;
    for (uint64_t i = 0; i < n; ++i) sum = sum * 0.999f + static_cast<float>(data[i]) * 0.37f;
    for (uint64_t i = 0; i < n; ++i) sum = sum * 0.999f + static_cast<float>(data[part + i]);
    Spin(20);
    std::lock_guard<std::mutex> lock(mu_);
    partials_[{t.layer, t.chunk}] = sum;
    ++computed_[{t.layer, t.chunk}];
    ++computed_total_;
    if (fail_at_ != 0 && computed_total_ == fail_at_) {
      return Status::Corruption("injected compute failure");
    }
    if (cancel_at_ != 0 && computed_total_ == cancel_at_ && cancel_) cancel_();
    return Status::OK();
  }

  void OnChunk(uint64_t, uint32_t layer, uint32_t chunk, std::span<const uint8_t>) override {
    ++delivered_[{layer, chunk}];
  }
  void OnLayerEnd(uint64_t, uint32_t layer) override {
    std::lock_guard<std::mutex> lock(mu_);
    float merged = 0;
    for (uint32_t c = 0; c < kChunksPerLayer; ++c) merged = merged * 0.5f + partials_[{layer, c}];
    merged_.push_back(merged);
  }

  void BeginStep() {
    delivered_.clear();
    std::lock_guard<std::mutex> lock(mu_);
    computed_.clear();
    partials_.clear();
    computed_total_ = 0;
  }
  void ExpectEveryChunkOnce() const {
    for (uint32_t l = 0; l < kLayers; ++l) {
      for (uint32_t c = 0; c < kChunksPerLayer; ++c) {
        auto d = delivered_.find({l, c});
        ASSERT_TRUE(d != delivered_.end() && d->second == 1) << "layer " << l << " chunk " << c;
        auto k = computed_.find({l, c});
        ASSERT_TRUE(k != computed_.end() && k->second == 1) << "layer " << l << " chunk " << c;
      }
    }
  }
  const std::vector<float>& merged() const { return merged_; }
  void FailAt(uint64_t n) { fail_at_ = n; }
  void CancelAt(uint64_t n, std::function<void()> fn) {
    cancel_at_ = n;
    cancel_ = std::move(fn);
  }

 private:
  const RefSequence* ref_;
  std::map<std::pair<uint32_t, uint32_t>, int> delivered_;  // scheduler thread
  std::mutex mu_;
  std::map<std::pair<uint32_t, uint32_t>, int> computed_;
  std::map<std::pair<uint32_t, uint32_t>, float> partials_;
  std::vector<float> merged_;
  uint64_t computed_total_ = 0;
  uint64_t fail_at_ = 0;
  uint64_t cancel_at_ = 0;
  std::function<void()> cancel_;
};

struct Written {
  std::unique_ptr<KvFixture> f;
  store::SeqId seq = 0;
  std::unique_ptr<RefSequence> ref;
};

// A sequence whose chunks alternate between runs of PAGE and DIRECT, plus a tail in memory.
Written Write(const std::string& path, uint64_t size_bytes, store::KvStoreOptions ko) {
  Written s;
  s.f = KvFixture::Create(path, size_bytes, ko);
  if (!s.f) return s;
  s.seq = s.f->kv().CreateSequence(Geo(), "pipe").value();
  s.ref = std::make_unique<RefSequence>(Geo());
  std::mt19937_64 rng(42);
  for (uint32_t l = 0; l < kLayers; ++l) {
    for (uint64_t c = 0; c < kChunksPerLayer; ++c) {
      KvPath p = (c + l) % 3 == 0 ? KvPath::kPage : KvPath::kDirect;
      EXPECT_TRUE(s.f->kv().SetChunkPath(s.seq, l, c, p).ok());
    }
    EXPECT_TRUE(AppendRandom(s.f->kv(), s.seq, *s.ref, l, kTokens, rng).ok());
  }
  EXPECT_TRUE(s.f->kv().Flush().ok());
  return s;
}

struct Config {
  const char* name;
  uint32_t depth;
  uint32_t pool_buffers;
  uint32_t request_chunks;
  uint32_t queue_depth;
  bool stream = true;
  bool auto_depth = false;
  uint32_t max_chunks_per_compute = 1;
  // Register the pool's arena with the KvStore, as TracePipeline does.
  bool register_pool = true;
  // Each compute unit (chunk or tail) also sleeps this long.
  uint32_t compute_sleep_us = 0;
};

// Runs STEPS steps under CFG and returns the merged result of each layer of each step.
// *registered (optional) tells whether the store took the pool's arena.
std::vector<float> RunConfig(Written& s, const Config& cfg, uint32_t steps, KvExecutorStats* xs,
                             bool* registered = nullptr) {
  Model model(s.ref.get());
  KvStoreExecutorOptions xo;
  xo.seq = s.seq;
  xo.compute = [&](const KvComputeUnit& t, std::span<const uint8_t> d) {
    if (cfg.compute_sleep_us != 0)
      std::this_thread::sleep_for(std::chrono::microseconds(cfg.compute_sleep_us));
    return model.Compute(t, d);
  };
  auto ex = KvStoreExecutor::Create(&s.f->kv(), xo);
  EXPECT_TRUE(ex.ok()) << ex.status().ToString();
  if (!ex.ok()) return {};
  const uint64_t chunk_bytes = (*ex)->chunk_staging_bytes();
  auto pool = StagingPool::Create({.buffer_bytes = chunk_bytes,
                                   .budget_bytes = cfg.pool_buffers * AlignUp(chunk_bytes, 4096)});
  EXPECT_TRUE(pool.ok());
  // The executor's threads are idle until the first step: this thread owns the KvStore now.
  const bool reg = cfg.register_pool && s.f->kv().RegisterMemory((*pool)->arena());
  if (registered != nullptr) *registered = reg;
  std::unique_ptr<AdaptiveController> controller;
  if (cfg.auto_depth) {
    AdaptiveControllerOptions co;
    co.chunk_bytes = chunk_bytes;
    co.layer_bytes = chunk_bytes * kChunksPerLayer;
    co.staging_budget_bytes = (*pool)->capacity_bytes();
    co.max_request_bytes = 3 * chunk_bytes;
    controller = std::make_unique<AdaptiveController>(co);
  }
  PrefetcherOptions po;
  po.n_layer = kLayers;
  po.chunks_per_layer = kChunksPerLayer;
  po.chunk_bytes = chunk_bytes;
  po.fixed_plan = {cfg.depth, cfg.request_chunks, cfg.queue_depth};
  po.controller = controller.get();
  po.stream_chunks = cfg.stream;
  po.max_chunks_per_compute = cfg.max_chunks_per_compute;
  Prefetcher pf(po, pool->get(), ex->get(), &model);
  for (uint32_t step = 0; step < steps; ++step) {
    model.BeginStep();
    StepStats st;
    Status status = pf.RunStep(step, &st);
    EXPECT_TRUE(status.ok()) << cfg.name << ": " << status.ToString();
    EXPECT_TRUE((*pool)->full());
    EXPECT_EQ(pf.leases_held(), 0u);
    EXPECT_EQ(st.chunks_delivered, uint64_t{kLayers} * kChunksPerLayer);
    EXPECT_LE(st.peak_staging_bytes, (*pool)->capacity_bytes());
    EXPECT_GT(st.io_busy_us, 0u);
    EXPECT_GT(st.compute_busy_us, 0u);
    model.ExpectEveryChunkOnce();
  }
  if (xs != nullptr) *xs = (*ex)->stats();
  // The executor stops first; then the pool's memory leaves the engine before it is unmapped.
  ex->reset();
  if (reg) {
    EXPECT_TRUE(s.f->kv().UnregisterMemory((*pool)->arena().data()));
  }
  return model.merged();
}

void ExpectSameResultEveryConfig(Written& s) {
  const Config configs[] = {
      {"no overlap", 0, kChunksPerLayer, 4, 3, /*stream=*/false},
      {"depth 0 streaming, pool < layer", 0, 3, 2, 2},
      {"depth 1, one buffer", 1, 1, 4, 4},
      {"depth 2", 2, 24, 3, 8},
      {"depth 4, deep pool", 4, 64, 4, 16},
      {"auto, pool < 2 layers", 1, 15, 1, 1, true, /*auto_depth=*/true},
      {"auto, deep pool", 1, 60, 1, 1, true, /*auto_depth=*/true},
      {"depth 2, 5 chunks per compute task", 2, 20, 2, 6, true, false, 5},
      {"no overlap, whole layer per compute task", 0, kChunksPerLayer, 4, 3, false, false, 64},
      {"depth 2, pool not registered", 2, 24, 3, 8, true, false, 1, /*register_pool=*/false},
  };
  // Vectored reads (targets not back to back) are fixed reads only where the kernel has
  // READV_FIXED; the engine's probe says.
  auto probe = CreateIoEngine(&s.f->store().device(), {});
  ASSERT_TRUE(probe.ok()) << probe.status().ToString();
  const bool vfixed = (*probe)->vectored_fixed_supported();
  probe->reset();
  std::vector<float> first;
  for (const Config& c : configs) {
    SCOPED_TRACE(c.name);
    KvExecutorStats xs;
    const store::KvStoreStats before = s.f->kv().stats();
    bool registered = false;
    std::vector<float> merged = RunConfig(s, c, 3, &xs, &registered);
    const store::KvStoreStats& after = s.f->kv().stats();
    const uint64_t direct = after.read_requests_direct - before.read_requests_direct;
    const uint64_t fixed = after.read_requests_registered - before.read_requests_registered;
    EXPECT_GT(direct, 0u);
    // Every DIRECT read lands in place in the pool: fixed exactly when the pool is registered.
    if (!registered) {
      EXPECT_EQ(fixed, 0u);
    } else if (vfixed) {
      EXPECT_EQ(fixed, direct);
    } else {
      EXPECT_LE(fixed, direct);
    }
    ASSERT_EQ(merged.size(), 3u * kLayers);
    EXPECT_GT(xs.chunks_page, 0u);
    EXPECT_GT(xs.chunks_direct, 0u);
    EXPECT_EQ(xs.chunks_memory, 3u * kLayers);  // the tail of every layer, every step
    EXPECT_EQ(xs.bytes_staged, 0u);  // every chunk landed in its staging buffer, none copied
    EXPECT_EQ(xs.chunks_page + xs.chunks_direct + xs.chunks_memory,
              3u * kLayers * kChunksPerLayer);
    // What the path balance is fed: bytes per path (whole chunks, one size), the PAGE path's
    // copy time, and the store's time with DIRECT reads in the device.
    ASSERT_GT(xs.chunks_page, 0u);
    EXPECT_EQ(xs.bytes_page % xs.chunks_page, 0u);
    EXPECT_EQ(xs.bytes_page / xs.chunks_page, xs.bytes_direct / xs.chunks_direct);
    EXPECT_GT(xs.page_copy_us, 0u);
    EXPECT_GT(after.read_direct_busy_ns, before.read_direct_busy_ns);
    if (first.empty()) {
      first = merged;
    } else {
      // Bit-identical: the same floats in the same order, whatever arrived first.
      EXPECT_EQ(0, std::memcmp(first.data(), merged.data(), first.size() * sizeof(float)));
    }
  }
}

TEST(KvStoreExecutorTest, EveryChunkOnceAndTheSameResultAtEveryDepthOnAFile) {
  TempDir dir;
  Written s = Write(dir.File("s.img"), 64 * kMiB, {});
  ASSERT_TRUE(s.f);
  ExpectSameResultEveryConfig(s);
}

TEST(KvStoreExecutorTest, EveryChunkOnceAndTheSameResultAtEveryDepthOnALoopDevice) {
  DB_LOOP_DEVICE_OR_SKIP(loop, 64 * kMiB);
  Written s = Write(loop.device(), 0, {});
  ASSERT_TRUE(s.f);
  ExpectSameResultEveryConfig(s);
}

TEST(KvStoreExecutorTest, ThreadPoolEngineToo) {
  TempDir dir;
  Written s = Write(dir.File("s.img"), 64 * kMiB, {.force_threadpool = true});
  ASSERT_TRUE(s.f);
  std::vector<float> a = RunConfig(s, {"depth 2", 2, 8, 2, 4}, 2, nullptr);
  std::vector<float> b = RunConfig(s, {"no overlap", 0, kChunksPerLayer, 4, 4, false}, 2, nullptr);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
}

// The compute thread's own time counts every unit's compute and nothing between steps.
TEST(KvStoreExecutorTest, ComputeRunTimeCountsTheComputeTasks) {
  TempDir dir;
  Written s = Write(dir.File("s.img"), 64 * kMiB, {});
  ASSERT_TRUE(s.f);
  Config cfg{"depth 1, 300 us a unit", 1, 8, 2, 4};
  cfg.compute_sleep_us = 300;
  constexpr uint32_t kSteps = 2;
  KvExecutorStats xs;
  Stopwatch sw;
  RunConfig(s, cfg, kSteps, &xs);
  const double wall_us = sw.ElapsedMillis() * 1000;
  // One unit per chunk (one chunk per task) and one per layer tail, every step.
  const uint64_t units = uint64_t{kSteps} * kLayers * (kChunksPerLayer + 1);
  EXPECT_GE(xs.compute_run_us, units * cfg.compute_sleep_us);
  EXPECT_LE(static_cast<double>(xs.compute_run_us), wall_us);
}

// Runs one step that is expected to fail, then checks that nothing was left behind: the pool is
// full, no lease is held, and the same executor runs a clean step afterwards.
struct FailureRun {
  Written* s;
  FaultInjector* inj = nullptr;
  uint64_t fail_compute_at = 0;
  uint64_t cancel_at = 0;
};

Status RunFailingStep(const FailureRun& fr, uint32_t depth, uint32_t pool_buffers) {
  Model model(fr.s->ref.get());
  KvStoreExecutorOptions xo;
  xo.seq = fr.s->seq;
  xo.compute = [&](const KvComputeUnit& t, std::span<const uint8_t> d) {
    return model.Compute(t, d);
  };
  auto ex = KvStoreExecutor::Create(&fr.s->f->kv(), xo);
  EXPECT_TRUE(ex.ok());
  const uint64_t chunk_bytes = (*ex)->chunk_staging_bytes();
  auto pool = StagingPool::Create(
      {.buffer_bytes = chunk_bytes, .budget_bytes = pool_buffers * AlignUp(chunk_bytes, 4096)});
  PrefetcherOptions po;
  po.n_layer = kLayers;
  po.chunks_per_layer = kChunksPerLayer;
  po.chunk_bytes = chunk_bytes;
  po.fixed_plan = {depth, 2, 6};
  Prefetcher pf(po, pool->get(), ex->get(), &model);
  model.FailAt(fr.fail_compute_at);
  model.CancelAt(fr.cancel_at, [&] { pf.Cancel(); });
  if (fr.inj != nullptr) fr.inj->set_enabled(true);
  model.BeginStep();
  Status failed = pf.RunStep(7, nullptr);
  if (fr.inj != nullptr) fr.inj->set_enabled(false);
  EXPECT_TRUE((*pool)->full());
  EXPECT_EQ(pf.leases_held(), 0u);
  // Nothing is left in flight: the same executor and store run the next step cleanly.
  model.FailAt(0);
  model.CancelAt(0, nullptr);
  model.BeginStep();
  Status next = pf.RunStep(8, nullptr);
  EXPECT_TRUE(next.ok()) << next.ToString();
  model.ExpectEveryChunkOnce();
  return failed;
}

TEST(KvStoreExecutorTest, InjectedIoErrorFailsTheStepCleanly) {
  TempDir dir;
  FaultInjector inj(FaultOptions{.seed = 9, .eio_rate = 0.3});
  inj.set_enabled(false);
  Written s = Write(dir.File("s.img"), 64 * kMiB, {.fault_hook = &inj});
  ASSERT_TRUE(s.f);
  for (uint32_t depth : {0u, 1u, 3u}) {
    for (uint32_t pool : {1u, 5u, 40u}) {
      SCOPED_TRACE("depth " + std::to_string(depth) + " pool " + std::to_string(pool));
      Status st = RunFailingStep({.s = &s, .inj = &inj}, depth, pool);
      ASSERT_FALSE(st.ok());
      EXPECT_TRUE(st.IsIOError()) << st.ToString();
      EXPECT_TRUE(st.injected()) << st.ToString();
    }
  }
}

TEST(KvStoreExecutorTest, ComputeErrorFailsTheStep) {
  TempDir dir;
  Written s = Write(dir.File("s.img"), 64 * kMiB, {});
  ASSERT_TRUE(s.f);
  Status st = RunFailingStep({.s = &s, .fail_compute_at = 17}, 2, 12);
  EXPECT_TRUE(st.IsCorruption()) << st.ToString();
  EXPECT_NE(st.ToString().find("injected compute failure"), std::string::npos) << st.ToString();
}

TEST(KvStoreExecutorTest, CancelEndsTheStepWithBusy) {
  TempDir dir;
  Written s = Write(dir.File("s.img"), 64 * kMiB, {});
  ASSERT_TRUE(s.f);
  for (uint32_t pool : {1u, 30u}) {
    Status st = RunFailingStep({.s = &s, .cancel_at = 9}, 2, pool);
    EXPECT_TRUE(st.IsBusy()) << st.ToString();
  }
}

TEST(KvStoreExecutorTest, BadReadsAreClearErrors) {
  TempDir dir;
  Written s = Write(dir.File("s.img"), 64 * kMiB, {});
  ASSERT_TRUE(s.f);
  KvStoreExecutorOptions xo;
  xo.seq = s.seq;
  EXPECT_TRUE(KvStoreExecutor::Create(&s.f->kv(), xo).status().IsInvalidArgument());
  xo.compute = [](const KvComputeUnit&, std::span<const uint8_t>) { return Status::OK(); };
  xo.seq = s.seq + 100;
  EXPECT_TRUE(KvStoreExecutor::Create(&s.f->kv(), xo).status().IsNotFound());
  xo.seq = s.seq;
  auto ex = KvStoreExecutor::Create(&s.f->kv(), xo);
  ASSERT_TRUE(ex.ok());
  std::vector<uint8_t> buf((*ex)->chunk_staging_bytes());
  ReadRequest beyond{.step = 1, .layer = 0, .first_chunk = kChunksPerLayer, .n_chunks = 1,
                     .buffers = {std::span<uint8_t>(buf)}};
  (*ex)->StartRead(1, beyond);
  PipelineEvent ev = (*ex)->WaitEvent();
  EXPECT_EQ(ev.token, 1u);
  EXPECT_TRUE(ev.status.IsInvalidArgument()) << ev.status.ToString();
  ReadRequest small{.step = 1, .layer = 0, .first_chunk = 0, .n_chunks = 1,
                    .buffers = {std::span<uint8_t>(buf).first(100)}};
  (*ex)->StartRead(2, small);
  EXPECT_TRUE((*ex)->WaitEvent().status.IsInvalidArgument());
  ReadRequest ok{.step = 1, .layer = 3, .first_chunk = 10, .n_chunks = 1,
                 .buffers = {std::span<uint8_t>(buf)}};
  (*ex)->StartRead(3, ok);
  ev = (*ex)->WaitEvent();
  EXPECT_TRUE(ev.status.ok()) << ev.status.ToString();
  const uint64_t row = Geo().row_bytes();
  EXPECT_EQ(0, std::memcmp(buf.data(), s.ref->k[3].data() + 160 * row, 5 * row));
}

// A later layer's DIRECT reads wait while the oldest layer has KvStoreExecutor's lead of its own
// in the device (8): with ten DIRECT reads of layer 0 out, no read of layer 1 may even begin before
// three of them are done, so three of their completions come before any of layer 1's.
TEST(KvStoreExecutorTest, TheOldestLayersDirectReadsLead) {
  TempDir dir;
  Written s = Write(dir.File("s.img"), 64 * kMiB, {});
  ASSERT_TRUE(s.f);
  for (uint32_t l = 0; l < 2; ++l) ASSERT_TRUE(s.f->kv().SetChunkPath(s.seq, l, 0, 10,
                                                                       KvPath::kDirect).ok());
  KvStoreExecutorOptions xo;
  xo.seq = s.seq;
  xo.compute = [](const KvComputeUnit&, std::span<const uint8_t>) { return Status::OK(); };
  auto ex = KvStoreExecutor::Create(&s.f->kv(), xo);
  ASSERT_TRUE(ex.ok());
  const uint64_t bytes = AlignUp((*ex)->chunk_staging_bytes(), 4096);
  IoBuffer arena(20 * bytes);
  auto buf = [&](uint64_t i) { return arena.span().subspan(i * bytes, bytes); };
  for (int round = 0; round < 5; ++round) {
    std::memset(arena.data(), 0, 20 * bytes);
    uint64_t token = 0;
    for (uint32_t l = 0; l < 2; ++l) {
      for (uint32_t c = 0; c < 10; ++c) {
        (*ex)->StartRead(token, {.step = static_cast<uint64_t>(round), .layer = l,
                                 .first_chunk = c, .n_chunks = 1, .buffers = {buf(token)}});
        ++token;
      }
    }
    uint32_t layer0_before_layer1 = 0;
    bool layer1_seen = false;
    for (uint32_t i = 0; i < 20; ++i) {
      PipelineEvent ev = (*ex)->WaitEvent();
      ASSERT_TRUE(ev.status.ok()) << ev.status.ToString();
      if (ev.token >= 10) layer1_seen = true;
      if (ev.token < 10 && !layer1_seen) ++layer0_before_layer1;
    }
    EXPECT_GE(layer0_before_layer1, 3u) << "round " << round;
    const uint64_t row = Geo().row_bytes();
    for (uint32_t l = 0; l < 2; ++l) {
      for (uint32_t c = 0; c < 10; ++c) {
        const uint8_t* got = buf(l * 10 + c).data();
        ASSERT_EQ(0, std::memcmp(got, s.ref->k[l].data() + c * kChunkTokens * row,
                                 kChunkTokens * row)) << "layer " << l << " chunk " << c;
      }
    }
  }
}

TEST(CpuCopyStageTest, ZeroCopyAndProtocolChecked) {
  CpuCopyStage stage;
  std::vector<uint8_t> a(64, 1), b(64, 2);
  EXPECT_TRUE(stage.Acquire(a).status().IsInvalidArgument());
  ASSERT_TRUE(stage.Start(a).ok());
  auto m = stage.Acquire(a);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->data(), a.data());  // compute reads the staging buffer itself
  stage.Release(a);
  EXPECT_TRUE(stage.Acquire(a).status().IsInvalidArgument());
  EXPECT_TRUE(stage.Start({}).IsInvalidArgument());
  EXPECT_EQ(stage.stats().chunks_started, 1u);
  EXPECT_EQ(stage.stats().bytes_copied, 0u);
  (void)b;
}

}  // namespace
}  // namespace dualblade
