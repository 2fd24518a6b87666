// Faults injected under both real engines: resumable ones must be invisible to the caller,
// terminal ones must surface per request, marked as injected.
#include "io/fault_injection.h"

#include <cerrno>
#include <cstring>
#include <random>

#include <gtest/gtest.h>

#include "common/aligned_buffer.h"
#include "common/clock.h"
#include "common/units.h"
#include "testing/test_env.h"

namespace dualblade {
namespace {

constexpr uint64_t kDeviceBytes = 32 * kMiB;

class FaultInjectionTest : public ::testing::TestWithParam<bool /*threadpool*/> {
 protected:
  void SetUp() override {
    OpenOptions o;
    o.create_size_bytes = kDeviceBytes;
    auto dev = BlockDevice::Open(dir_.File("store.img"), o);
    ASSERT_TRUE(dev.ok()) << dev.status().ToString();
    dev_ = std::move(dev).value();
  }

  std::unique_ptr<FaultInjectingIoEngine> Make(const FaultOptions& faults, uint32_t qd = 8,
                                               uint64_t max_request_bytes = 0) {
    IoEngineOptions opts;
    opts.queue_depth = qd;
    opts.max_request_bytes = max_request_bytes;
    opts.force_threadpool = GetParam();
    auto e = FaultInjectingIoEngine::Create(dev_.get(), opts, faults);
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    return e.ok() ? std::move(e).value() : nullptr;
  }

  // n requests of len_bytes each, back to back from offset 0, over buf.
  static std::vector<IoRequest> Requests(IoOp op, AlignedBuffer* buf, size_t n, uint64_t len) {
    std::vector<IoRequest> reqs(n);
    for (size_t i = 0; i < n; ++i) {
      reqs[i].op = op;
      reqs[i].offset_bytes = i * len;
      reqs[i].buf = buf->data() + i * len;
      reqs[i].len_bytes = len;
      reqs[i].user_tag = i;
    }
    return reqs;
  }

  testing::TempDir dir_;
  std::unique_ptr<BlockDevice> dev_;
};

TEST_P(FaultInjectionTest, ShortTransfersAndEagainAreResumedInvisibly) {
  FaultOptions f;
  f.seed = 7;
  f.short_rate = 0.4;
  f.eagain_rate = 0.2;
  auto engine = Make(f, 8, 128 * 1024);
  ASSERT_NE(engine, nullptr);
  const size_t kN = 64, kLen = 256 * 1024;  // two pieces each
  AlignedBuffer w(kN * kLen), r(kN * kLen);
  std::mt19937_64 rng(1);
  for (size_t i = 0; i + 8 <= w.size(); i += 8) {
    uint64_t v = rng();
    std::memcpy(w.data() + i, &v, 8);
  }
  auto writes = Requests(IoOp::kWrite, &w, kN, kLen);
  ASSERT_TRUE(engine->RunBatch(writes).ok());
  auto reads = Requests(IoOp::kRead, &r, kN, kLen);
  ASSERT_TRUE(engine->RunBatch(reads).ok());
  for (const IoRequest& q : reads) EXPECT_EQ(q.done_bytes, kLen);
  EXPECT_EQ(std::memcmp(w.data(), r.data(), w.size()), 0);
  FaultCounts c = engine->injector().counts();
  EXPECT_GT(c.short_transfers, 10u);
  EXPECT_GT(c.eagain, 5u);
  // Every fault costs one extra transfer at least: the engine really went back for the rest.
  EXPECT_GE(c.transfers, 2 * 2 * kN + c.short_transfers + c.eagain);
}

TEST_P(FaultInjectionTest, EioSurfacesPerRequestMarkedInjected) {
  FaultOptions f;
  f.seed = 11;
  f.eio_rate = 0.3;
  auto engine = Make(f);
  ASSERT_NE(engine, nullptr);
  const size_t kN = 200, kLen = 16 * 1024;
  AlignedBuffer buf(kN * kLen);
  auto reads = Requests(IoOp::kRead, &buf, kN, kLen);
  Status first = engine->RunBatch(reads);
  EXPECT_TRUE(first.IsIOError()) << first.ToString();
  size_t failed = 0;
  for (const IoRequest& q : reads) {
    if (q.status.ok()) {
      EXPECT_EQ(q.done_bytes, kLen);
      continue;
    }
    ++failed;
    EXPECT_TRUE(q.status.IsIOError()) << q.status.ToString();
    EXPECT_TRUE(q.status.injected());
    EXPECT_EQ(q.status.sys_errno(), EIO);
    EXPECT_NE(q.status.message().find("offset " + std::to_string(q.offset_bytes)),
              std::string::npos)
        << q.status.message();
    EXPECT_NE(q.status.message().find(dev_->info().path), std::string::npos);
  }
  // One piece per request, so each injected EIO fails exactly one request.
  EXPECT_EQ(failed, engine->injector().counts().eio);
  EXPECT_GT(failed, 20u);
  EXPECT_LT(failed, 120u);
}

TEST_P(FaultInjectionTest, EnospcHitsWritesOnly) {
  FaultOptions f;
  f.enospc_rate = 1.0;
  auto engine = Make(f);
  ASSERT_NE(engine, nullptr);
  AlignedBuffer buf(8 * 4096);
  auto writes = Requests(IoOp::kWrite, &buf, 8, 4096);
  Status st = engine->RunBatch(writes);
  EXPECT_TRUE(st.IsNoSpace()) << st.ToString();
  for (const IoRequest& q : writes) {
    EXPECT_TRUE(q.status.IsNoSpace());
    EXPECT_TRUE(q.status.injected());
  }
  auto reads = Requests(IoOp::kRead, &buf, 8, 4096);
  EXPECT_TRUE(engine->RunBatch(reads).ok());
}

TEST_P(FaultInjectionTest, ValidationErrorsAreNotInjected) {
  FaultOptions f;
  f.eio_rate = 1.0;
  auto engine = Make(f);
  ASSERT_NE(engine, nullptr);
  AlignedBuffer buf(4096);
  IoRequest q;
  q.offset_bytes = 512 + 1;
  q.buf = buf.data();
  q.len_bytes = 4096;
  EXPECT_TRUE(engine->RunBatch({&q, 1}).IsInvalidArgument());
  EXPECT_FALSE(q.status.injected());
  engine->injector().set_enabled(false);
  q.offset_bytes = 0;
  EXPECT_TRUE(engine->RunBatch({&q, 1}).ok());
}

// With one transfer in flight at a time the order of transfers is fixed, so a seed replays the
// same faults exactly.
TEST_P(FaultInjectionTest, SameSeedSameFaults) {
  auto pattern = [&](uint64_t seed) {
    FaultOptions f;
    f.seed = seed;
    f.eio_rate = 0.25;
    f.short_rate = 0.25;
    auto engine = Make(f, /*qd=*/1);
    std::vector<bool> failed;
    if (engine == nullptr) return failed;
    AlignedBuffer buf(100 * 8192);
    auto reads = Requests(IoOp::kRead, &buf, 100, 8192);
    (void)engine->RunBatch(reads);
    for (const IoRequest& q : reads) failed.push_back(!q.status.ok());
    return failed;
  };
  std::vector<bool> a = pattern(42), b = pattern(42), c = pattern(43);
  ASSERT_EQ(a.size(), 100u);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST_P(FaultInjectionTest, AddsLatency) {
  FaultOptions f;
  f.latency_rate = 1.0;
  f.latency_us = 3000;
  auto engine = Make(f, /*qd=*/1);
  ASSERT_NE(engine, nullptr);
  AlignedBuffer buf(10 * 4096);
  auto reads = Requests(IoOp::kRead, &buf, 10, 4096);
  Stopwatch sw;
  ASSERT_TRUE(engine->RunBatch(reads).ok());
  EXPECT_GE(sw.ElapsedMillis(), 30.0);
  EXPECT_EQ(engine->injector().counts().delayed, 10u);
}

INSTANTIATE_TEST_SUITE_P(Engines, FaultInjectionTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return std::string(info.param ? "ThreadPool" : "IoUring");
                         });

}  // namespace
}  // namespace dualblade
