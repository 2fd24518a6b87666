// Data written through a store comes back, through either descriptor and the I/O engine, and a
// reopened store (in this process, and as `dualblade info` sees it) keeps its allocation.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <random>

#include "cli_runner.h"
#include "common/aligned_buffer.h"
#include "common/units.h"
#include "io/io_engine.h"
#include "store/store.h"
#include "testing/test_env.h"

namespace dualblade::testing {
namespace {

void Fill(AlignedBuffer& b, uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (size_t i = 0; i + 8 <= b.size(); i += 8) {
    uint64_t v = rng();
    std::memcpy(b.data() + i, &v, 8);
  }
}

std::unique_ptr<store::Store> OpenRw(const std::string& path) {
  auto s = store::Store::Open(path, store::StoreOpenOptions{.read_only = false});
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(s).value() : nullptr;
}

void RoundTrip(const std::string& path) {
  CliResult f = RunDualblade({"format", path, "--force"});
  ASSERT_EQ(f.rc, 0) << f.err;

  store::Extent a, b, c;
  AlignedBuffer pa(256 * kKiB), pb(64 * kKiB), pc(1 * kMiB);
  Fill(pa, 1);
  Fill(pb, 2);
  Fill(pc, 3);
  std::vector<store::Extent> free_runs;
  {
    auto st = OpenRw(path);
    ASSERT_TRUE(st);
    const uint32_t bb = st->superblock().block_bytes;
    a = *st->allocator().Allocate(pa.size() / bb);
    b = *st->allocator().Allocate(pb.size() / bb);
    c = *st->allocator().Allocate(pc.size() / bb);
    EXPECT_GE(st->OffsetBytes(a), st->superblock().data_offset_bytes);
    // a: direct, b: buffered, c: through the engine (direct, queue of pieces).
    ASSERT_TRUE(st->device().PwriteDirect(st->OffsetBytes(a), pa.span()).ok());
    ASSERT_TRUE(st->device().PwriteBuffered(st->OffsetBytes(b), pb.span()).ok());
    // Files registered (the default): the engine releases them when destroyed, so the immediate
    // reopen below must not find the device still claimed.
    auto engine = CreateIoEngine(&st->device(), IoEngineOptions{.queue_depth = 4,
                                                                .max_request_bytes = 128 * kKiB,
                                                                .register_files = true});
    ASSERT_TRUE(engine.ok()) << engine.status().ToString();
    IoRequest w;
    w.op = IoOp::kWrite;
    w.offset_bytes = st->OffsetBytes(c);
    w.buf = pc.data();
    w.len_bytes = pc.size();
    ASSERT_TRUE((*engine)->RunBatch({&w, 1}).ok()) << w.status.ToString();
    // Data durable before the metadata that names it.
    ASSERT_TRUE(st->device().Sync().ok());
    // A hole in b's neighbourhood: free b, so the free space splits in two.
    ASSERT_TRUE(st->allocator().Free(b).ok());
    ASSERT_TRUE(st->Commit().ok());
    free_runs = st->allocator().FreeExtents();
  }

  auto st = OpenRw(path);
  ASSERT_TRUE(st);
  EXPECT_EQ(st->allocator().FreeExtents(), free_runs);
  EXPECT_TRUE(st->allocator().IsAllocated(a));
  EXPECT_TRUE(st->allocator().IsAllocated(c));
  EXPECT_FALSE(st->allocator().IsAllocated(b));
  // Both descriptors address the same LBAs: read each extent back the other way.
  AlignedBuffer ra(pa.size()), rc(pc.size());
  ASSERT_TRUE(st->device().PreadBuffered(st->OffsetBytes(a), ra.span()).ok());
  EXPECT_EQ(std::memcmp(ra.data(), pa.data(), pa.size()), 0);
  auto engine = CreateIoEngine(&st->device(), IoEngineOptions{});
  ASSERT_TRUE(engine.ok());
  IoRequest r;
  r.op = IoOp::kRead;
  r.offset_bytes = st->OffsetBytes(c);
  r.buf = rc.data();
  r.len_bytes = rc.size();
  ASSERT_TRUE((*engine)->RunBatch({&r, 1}).ok()) << r.status.ToString();
  EXPECT_EQ(std::memcmp(rc.data(), pc.data(), pc.size()), 0);
  AlignedBuffer rb(pb.size());  // b's bytes are still there, only no longer allocated
  ASSERT_TRUE(st->device().PreadDirect(st->OffsetBytes(b), rb.span()).ok());
  EXPECT_EQ(std::memcmp(rb.data(), pb.data(), pb.size()), 0);
  const store::AllocatorStats stats = st->allocator().stats();
  const uint64_t seq = st->sequence();
  st.reset();

  CliResult info = RunDualblade({"info", path, "--json"});
  ASSERT_EQ(info.rc, 0) << info.err;
  nlohmann::json j = nlohmann::json::parse(info.out);
  const uint64_t bb = j["block_bytes"];
  EXPECT_EQ(j["used_bytes"], pa.size() + pc.size());
  EXPECT_EQ(j["used_bytes"].get<uint64_t>(), stats.used_blocks * bb);
  EXPECT_EQ(j["free_extents"], 2);
  EXPECT_EQ(j["largest_free_extent_bytes"].get<uint64_t>(), stats.largest_free_blocks * bb);
  EXPECT_NEAR(j["fragmentation"].get<double>(), stats.fragmentation(), 1e-9);
  EXPECT_GT(j["fragmentation"].get<double>(), 0.0);
  EXPECT_EQ(j["meta_sequence"], seq);
  EXPECT_EQ(j["meta_active_slot"], "B");
}

TEST(StoreRoundTripTest, File) {
  TempDir dir;
  const std::string path = dir.File("store.img");
  MakeZeroFile(path, 64 * kMiB);
  RoundTrip(path);
}

TEST(StoreRoundTripTest, LoopDevice) {
  DB_LOOP_DEVICE_OR_SKIP(loop, 64 * kMiB);
  RoundTrip(loop.device());
}

TEST(StoreRoundTripTest, DataAreaForTools) {
  TempDir dir;
  const std::string path = dir.File("store.img");
  ASSERT_EQ(RunDualblade({"format", path, "--size", "48M"}).rc, 0);
  Result<store::DataArea> area = store::ReadDataArea(path);
  ASSERT_TRUE(area.ok()) << area.status().ToString();
  EXPECT_EQ(area->offset_bytes + area->len_bytes, 48 * kMiB);
  EXPECT_EQ(area->offset_bytes % kMiB, 0u);
}

}  // namespace
}  // namespace dualblade::testing
