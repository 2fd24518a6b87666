// Vectored (scatter/gather) requests on both engines: pieces that cross iovec boundaries, resumed
// short transfers, and the checks on bad iovecs.
#include <gtest/gtest.h>
#include <sys/uio.h>

#include <cstring>
#include <random>
#include <vector>

#include "common/aligned_buffer.h"
#include "common/units.h"
#include "io/fault_injection.h"
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
