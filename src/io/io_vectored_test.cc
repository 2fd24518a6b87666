// Vectored (scatter/gather) requests on both engines: pieces that cross iovec boundaries, resumed
// short transfers, and the checks on bad iovecs; on io_uring also vectored requests into a
// registered buffer (READV_FIXED / WRITEV_FIXED where the kernel has them), their fallback to plain
// readv/writev for iovecs outside it, and unregistering.
#include <gtest/gtest.h>
#include <sys/uio.h>

#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "common/aligned_buffer.h"
#include "common/units.h"
#include "io/fault_injection.h"
#include "io/io_buffer.h"
#include "io/io_engine.h"
#include "testing/test_env.h"

namespace dualblade {
namespace {

void CheckVectored(const std::string& path, bool threadpool) {
  auto dev = BlockDevice::Open(path, {});
  ASSERT_TRUE(dev.ok()) << dev.status().ToString();
  // Short transfers (resumed mid-iovec) on a third of the transfers; pieces of 12 KiB cut the
  // iovecs of 8, 20 and 4 KiB at other places than their ends.
  FaultInjector faults({.seed = 7, .short_rate = 0.3});
  IoEngineOptions eo;
  eo.max_request_bytes = 12 * 1024;
  eo.force_threadpool = threadpool;
  eo.fault_hook = &faults;
  auto engine = CreateIoEngine(dev->get(), eo);
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  if (!threadpool && (*engine)->name() != "io_uring") GTEST_SKIP() << "io_uring is refused here";

  std::mt19937_64 rng(3);
  const uint64_t sizes[] = {8192, 20480, 4096};
  std::vector<AlignedBuffer> parts;
  std::vector<iovec> iov;
  std::vector<uint8_t> whole;
  for (uint64_t n : sizes) {
    parts.emplace_back(n);
    for (uint64_t i = 0; i < n; ++i) parts.back().data()[i] = static_cast<uint8_t>(rng());
    iov.push_back({parts.back().data(), n});
    whole.insert(whole.end(), parts.back().data(), parts.back().data() + n);
  }
  for (IoPath path : {IoPath::kDirect, IoPath::kBuffered}) {
    SCOPED_TRACE(path == IoPath::kDirect ? "direct" : "buffered");
    const uint64_t offset = path == IoPath::kDirect ? kMiB : 2 * kMiB;
    IoRequest w;
    w.op = IoOp::kWrite;
    w.path = path;
    w.offset_bytes = offset;
    w.iov = iov.data();
    w.iov_count = static_cast<uint32_t>(iov.size());
    w.len_bytes = whole.size();
    ASSERT_TRUE((*engine)->RunBatch({&w, 1}).ok()) << w.status.ToString();
    ASSERT_TRUE((*dev)->Sync().ok());

    AlignedBuffer plain(whole.size());
    ASSERT_TRUE((*dev)->PreadDirect(offset, plain.span()).ok());
    EXPECT_EQ(0, std::memcmp(plain.data(), whole.data(), whole.size()));

    AlignedBuffer a(16384), b(16384);
    iovec back[2] = {{a.data(), 16384}, {b.data(), 16384}};
    IoRequest r;
    r.op = IoOp::kRead;
    r.path = path;
    r.offset_bytes = offset;
    r.iov = back;
    r.iov_count = 2;
    r.len_bytes = 32768;
    ASSERT_TRUE((*engine)->RunBatch({&r, 1}).ok()) << r.status.ToString();
    EXPECT_EQ(r.done_bytes, 32768u);
    EXPECT_EQ(0, std::memcmp(a.data(), whole.data(), 16384));
    EXPECT_EQ(0, std::memcmp(b.data(), whole.data() + 16384, 16384));
  }
  EXPECT_GT(faults.counts().short_transfers, 0u);

  // Bad iovecs complete at once with InvalidArgument.
  AlignedBuffer c(8192);
  iovec misaligned[1] = {{c.data() + 512, 4096}};
  iovec short_total[1] = {{c.data(), 4096}};
  for (auto [vec, len] : {std::pair{misaligned, 4096u}, std::pair{short_total, 8192u}}) {
    IoRequest bad;
    bad.op = IoOp::kRead;
    bad.path = IoPath::kDirect;
    bad.offset_bytes = kMiB;
    bad.iov = vec;
    bad.iov_count = 1;
    bad.len_bytes = len;
    (void)(*engine)->RunBatch({&bad, 1});
    EXPECT_TRUE(bad.status.IsInvalidArgument()) << bad.status.ToString();
  }
}

// REQUIRES: iov outlives the request.
IoRequest Vectored(IoOp op, IoPath path, uint64_t offset, const std::vector<iovec>& iov) {
  IoRequest r;
  r.op = op;
  r.path = path;
  r.offset_bytes = offset;
  r.iov = iov.data();
  r.iov_count = static_cast<uint32_t>(iov.size());
  for (const iovec& v : iov) r.len_bytes += v.iov_len;
  return r;
}

// Vectored writes and reads whose iovecs lie in a registered buffer go out as fixed-buffer
// requests (where the kernel has them) and move the right bytes, split into 12 KiB pieces and
// resumed after short transfers; iovecs reaching past the registered region fall back to plain
// readv/writev; after UnregisterBuffer the same memory is read with plain readv.
void CheckVectoredFixed(const std::string& path) {
  auto dev = BlockDevice::Open(path, {});
  ASSERT_TRUE(dev.ok()) << dev.status().ToString();
  FaultInjector faults({.seed = 11, .short_rate = 0.3});
  IoEngineOptions eo;
  eo.max_request_bytes = 12 * 1024;
  eo.fault_hook = &faults;
  auto created = CreateIoEngine(dev->get(), eo);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  IoEngine& engine = **created;
  if (engine.name() != "io_uring") GTEST_SKIP() << "io_uring is refused here";
  // Only the first 3 MiB are registered: the last MiB is mapped memory outside every registered
  // buffer, so an iovec can straddle the registered region's end without leaving the mapping.
  IoBuffer mem(4 * kMiB);
  const uint64_t reg_bytes = 3 * kMiB;
  if (!engine.RegisterBuffer(mem.data(), reg_bytes))
    GTEST_SKIP() << "the kernel refused buffer registration";
  // The kernel probe decides; the development kernel (6.18) has READV_FIXED.
  const bool vfixed = engine.vectored_fixed_supported();
  if (!vfixed) std::fprintf(stderr, "note: no READV_FIXED here; checking the plain fallback\n");

  std::mt19937_64 rng(9);
  for (uint64_t i = 0; i < mem.size(); ++i) mem.data()[i] = static_cast<uint8_t>(rng());
  // Out of order and apart in the buffer, of 8, 20 and 4 KiB.
  const std::vector<iovec> in_reg = {{mem.data() + kMiB, 8192},
                                     {mem.data() + 64 * 1024, 20480},
                                     {mem.data() + 2 * kMiB + 4096, 4096}};
  std::vector<uint8_t> whole;
  for (const iovec& v : in_reg) {
    const auto* p = static_cast<const uint8_t*>(v.iov_base);
    whole.insert(whole.end(), p, p + v.iov_len);
  }
  uint8_t* const back_a = mem.data() + 2 * kMiB + 64 * 1024;  // read targets, also registered
  uint8_t* const back_b = mem.data() + 512 * 1024;
  uint8_t* const cross = mem.data() + reg_bytes - 8192;      // 16 KiB: half in, half out
  auto expect_back = [&](const uint8_t* a, const uint8_t* b, const char* what) {
    EXPECT_EQ(0, std::memcmp(a, whole.data(), 16384)) << what;
    EXPECT_EQ(0, std::memcmp(b, whole.data() + 16384, 16384)) << what;
  };

  for (IoPath io_path : {IoPath::kDirect, IoPath::kBuffered}) {
    SCOPED_TRACE(io_path == IoPath::kDirect ? "direct" : "buffered");
    const uint64_t offset = io_path == IoPath::kDirect ? kMiB : 4 * kMiB;

    IoRequest w = Vectored(IoOp::kWrite, io_path, offset, in_reg);
    EXPECT_EQ(engine.UsesRegisteredBuffer(w), vfixed);
    uint64_t before = engine.fixed_requests();
    ASSERT_TRUE(engine.RunBatch({&w, 1}).ok()) << w.status.ToString();
    // 32 KiB in 12 KiB pieces: at least three kernel requests, all fixed.
    if (vfixed) {
      EXPECT_GE(engine.fixed_requests() - before, 3u);
    } else {
      EXPECT_EQ(engine.fixed_requests(), before);
    }
    ASSERT_TRUE((*dev)->Sync().ok());
    AlignedBuffer plain(whole.size());
    ASSERT_TRUE((*dev)->PreadDirect(offset, plain.span()).ok());
    EXPECT_EQ(0, std::memcmp(plain.data(), whole.data(), whole.size()));

    std::memset(back_a, 0, 16384);
    std::memset(back_b, 0, 16384);
    const std::vector<iovec> back = {{back_a, 16384}, {back_b, 16384}};
    IoRequest r = Vectored(IoOp::kRead, io_path, offset, back);
    EXPECT_EQ(engine.UsesRegisteredBuffer(r), vfixed);
    before = engine.fixed_requests();
    ASSERT_TRUE(engine.RunBatch({&r, 1}).ok()) << r.status.ToString();
    EXPECT_EQ(r.done_bytes, 32768u);
    if (vfixed) {
      EXPECT_GE(engine.fixed_requests() - before, 3u);
    }
    expect_back(back_a, back_b, "registered");

    // Iovecs reaching past the registered region: plain readv/writev, same bytes. Each 12 KiB
    // piece (and each rest of it after a short transfer) ends outside the region, so none of them
    // may go out fixed: [cross, +12K) is 8 KiB in and 4 KiB out; then 8 KiB in, 4 KiB out.
    uint8_t* const outside = mem.data() + reg_bytes + 64 * 1024;
    const std::vector<iovec> straddling = {{cross, 12288}, {back_a, 8192}, {outside, 4096}};
    auto check_straddling = [&](const uint8_t* expect, const char* what) {
      EXPECT_EQ(0, std::memcmp(cross, expect, 12288)) << what;
      EXPECT_EQ(0, std::memcmp(back_a, expect + 12288, 8192)) << what;
      EXPECT_EQ(0, std::memcmp(outside, expect + 20480, 4096)) << what;
    };
    for (const iovec& v : straddling) std::memset(v.iov_base, 0, v.iov_len);
    IoRequest x = Vectored(IoOp::kRead, io_path, offset, straddling);
    EXPECT_FALSE(engine.UsesRegisteredBuffer(x));
    before = engine.fixed_requests();
    ASSERT_TRUE(engine.RunBatch({&x, 1}).ok()) << x.status.ToString();
    EXPECT_EQ(engine.fixed_requests(), before);
    check_straddling(whole.data(), "straddling read");

    // Written back elsewhere from the same iovecs, the bytes land in order.
    IoRequest xw = Vectored(IoOp::kWrite, io_path, offset + 64 * 1024, straddling);
    before = engine.fixed_requests();
    ASSERT_TRUE(engine.RunBatch({&xw, 1}).ok()) << xw.status.ToString();
    EXPECT_EQ(engine.fixed_requests(), before);
    ASSERT_TRUE((*dev)->Sync().ok());
    AlignedBuffer plain2(24576);
    ASSERT_TRUE((*dev)->PreadDirect(offset + 64 * 1024, plain2.span()).ok());
    check_straddling(plain2.data(), "straddling write");
  }
  EXPECT_GT(faults.counts().short_transfers, 0u);

  // Unregistered, the same memory is read with plain readv, still correctly.
  EXPECT_FALSE(engine.UnregisterBuffer(mem.data() + 4096));  // not the start of a region
  EXPECT_TRUE(engine.UnregisterBuffer(mem.data()));
  EXPECT_FALSE(engine.UnregisterBuffer(mem.data()));
  std::memset(back_a, 0, 16384);
  std::memset(back_b, 0, 16384);
  const std::vector<iovec> back = {{back_a, 16384}, {back_b, 16384}};
  IoRequest r = Vectored(IoOp::kRead, IoPath::kDirect, kMiB, back);
  EXPECT_FALSE(engine.UsesRegisteredBuffer(r));
  const uint64_t before = engine.fixed_requests();
  ASSERT_TRUE(engine.RunBatch({&r, 1}).ok()) << r.status.ToString();
  EXPECT_EQ(engine.fixed_requests(), before);
  expect_back(back_a, back_b, "unregistered");
}

TEST(IoVectoredTest, FixedBuffersOnFile) {
  testing::TempDir dir;
  ASSERT_TRUE(BlockDevice::Open(dir.File("s.img"), {.create_size_bytes = 16 * kMiB}).ok());
  CheckVectoredFixed(dir.File("s.img"));
}

TEST(IoVectoredTest, FixedBuffersOnLoopDevice) {
  DB_LOOP_DEVICE_OR_SKIP(loop, 16 * kMiB);
  CheckVectoredFixed(loop.device());
}

TEST(IoVectoredTest, IoUringOnFile) {
  testing::TempDir dir;
  ASSERT_TRUE(BlockDevice::Open(dir.File("s.img"), {.create_size_bytes = 16 * kMiB}).ok());
  CheckVectored(dir.File("s.img"), false);
}

TEST(IoVectoredTest, ThreadPoolOnFile) {
  testing::TempDir dir;
  ASSERT_TRUE(BlockDevice::Open(dir.File("s.img"), {.create_size_bytes = 16 * kMiB}).ok());
  CheckVectored(dir.File("s.img"), true);
}

TEST(IoVectoredTest, IoUringOnLoopDevice) {
  DB_LOOP_DEVICE_OR_SKIP(loop, 16 * kMiB);
  CheckVectored(loop.device(), false);
}

}  // namespace
}  // namespace dualblade
