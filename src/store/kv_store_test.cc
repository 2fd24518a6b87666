#include "store/kv_store.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "common/units.h"
#include "io/fault_injection.h"
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

KvGeometry Geo(uint32_t layers = 2, uint64_t capacity = 64) {
  // 96-byte rows, 16-token chunks: 1536 row bytes per part, padded to a block.
  return KvGeometry{.n_layer = layers, .n_head_kv = 2, .head_dim = 24, .type = KvType::kF16,
                    .chunk_tokens = 16, .capacity_tokens = capacity};
}

// Overwrites one byte of the store behind the KvStore's back.
void FlipByte(const std::string& path, uint64_t offset) {
  int fd = ::open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  uint8_t b = 0;
  ASSERT_EQ(::pread(fd, &b, 1, static_cast<off_t>(offset)), 1);
  b ^= 0x5a;
  ASSERT_EQ(::pwrite(fd, &b, 1, static_cast<off_t>(offset)), 1);
  ASSERT_EQ(::fdatasync(fd), 0);
  ASSERT_EQ(::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
  ::close(fd);
}

TEST(KvStoreTest, AppendAndReadTailAndChunksOnBothPaths) {
  TempDir dir;
  for (KvPath path : {KvPath::kDirect, KvPath::kPage}) {
    auto f = KvFixture::Create(dir.File("s.img"), 64 * kMiB, {.default_path = path});
    ASSERT_TRUE(f);
    std::mt19937_64 rng(7);
    Result<SeqId> id = f->kv().CreateSequence(Geo(), "model-a");
    ASSERT_TRUE(id.ok()) << id.status().ToString();
    RefSequence ref(Geo());
    for (uint32_t l = 0; l < 2; ++l) ASSERT_TRUE(AppendRandom(f->kv(), *id, ref, l, 37, rng).ok());
    ExpectAll(f->kv(), *id, ref);
    ExpectRange(f->kv(), *id, ref, 1, 5, 33);
    KvRange empty{*id, 1, 5, 5};
    int calls = 0;
    ASSERT_TRUE(f->kv().ReadChunks({&empty, 1}, [&](const KvChunkView&) { ++calls; }).ok());
    EXPECT_EQ(calls, 0);
    ASSERT_TRUE(f->kv().Flush().ok());
    std::map<KvSource, int> sources;
    KvRange r{*id, 0, 0, 37};
    ASSERT_TRUE(f->kv().ReadChunks({&r, 1}, [&](const KvChunkView& c) { ++sources[c.source]; }).ok());
    EXPECT_EQ(sources[KvSource::kMemory], 1);  // the 5-token tail
    EXPECT_EQ(sources[path == KvPath::kDirect ? KvSource::kDirect : KvSource::kPage], 2);
    const KvStoreStats& st = f->kv().stats();
    EXPECT_GT(path == KvPath::kDirect ? st.write_bytes_direct : st.write_bytes_page, 0u);
    EXPECT_EQ(path == KvPath::kDirect ? st.write_bytes_page : st.write_bytes_direct, 0u);
  }
}

TEST(KvStoreTest, GrowsPastCapacityAcrossExtents) {
  TempDir dir;
  auto f = KvFixture::Create(dir.File("s.img"), 64 * kMiB);
  ASSERT_TRUE(f);
  std::mt19937_64 rng(8);
  Result<SeqId> id = f->kv().CreateSequence(Geo(2, 20), "m");
  ASSERT_TRUE(id.ok());
  RefSequence ref(Geo(2, 20));
  for (int i = 0; i < 9; ++i) ASSERT_TRUE(AppendRandom(f->kv(), *id, ref, 0, 23, rng).ok());
  ASSERT_TRUE(AppendRandom(f->kv(), *id, ref, 1, 3, rng).ok());
  Result<KvSequenceInfo> info = f->kv().Describe(*id);
  ASSERT_TRUE(info.ok());
  EXPECT_GE(info->capacity_tokens[0], 9u * 23);
  EXPECT_EQ(info->capacity_tokens[1], 32u);
  ExpectAll(f->kv(), *id, ref);
  ASSERT_TRUE(f->kv().Commit().ok());
  ASSERT_TRUE(f->Reopen().ok());
  ExpectAll(f->kv(), *id, ref);
}

// Every transition, with data written through one path and read through the other.
void CheckPathTransitions(const std::string& store_path, uint64_t size_bytes) {
  auto f = KvFixture::Create(store_path, size_bytes, {.default_path = KvPath::kPage});
  ASSERT_TRUE(f);
  std::mt19937_64 rng(9);
  KvStore& kv = f->kv();
  SeqId id = kv.CreateSequence(Geo(1, 128), "m").value();
  RefSequence ref(Geo(1, 128));
  // Chunks 0-1 written PAGE (dirty in the page cache), then demoted: direct reads must see them.
  ASSERT_TRUE(AppendRandom(kv, id, ref, 0, 32, rng).ok());
  ASSERT_TRUE(kv.SetChunkPath(id, 0, 0, 2, KvPath::kDirect).ok());
  // Chunks 2-3 written DIRECT, then promoted: buffered reads must see them.
  ASSERT_TRUE(kv.SetChunkPath(id, 0, 2, 4, KvPath::kDirect).ok());
  ASSERT_TRUE(AppendRandom(kv, id, ref, 0, 32, rng).ok());
  ASSERT_TRUE(kv.Flush().ok());
  ASSERT_TRUE(kv.SetChunkPath(id, 0, 2, 4, KvPath::kPage).ok());
  // Chunk 4: its partial tail committed through PAGE (now cached), then completed through DIRECT
  // and read through PAGE: no stale partial page may be served.
  ASSERT_TRUE(AppendRandom(kv, id, ref, 0, 5, rng).ok());
  ASSERT_TRUE(kv.Commit().ok());
  ExpectRange(kv, id, ref, 0, 0, 64);  // caches chunks 2-3 through PAGE
  ASSERT_TRUE(kv.SetChunkPath(id, 0, 4, KvPath::kDirect).ok());
  ASSERT_TRUE(AppendRandom(kv, id, ref, 0, 11, rng).ok());
  ASSERT_TRUE(kv.Flush().ok());
  ASSERT_TRUE(kv.SetChunkPath(id, 0, 4, KvPath::kPage).ok());
  // Chunks 0-1 back to PAGE, 2-3 to DIRECT after having been cached.
  ASSERT_TRUE(kv.SetChunkPath(id, 0, 0, 2, KvPath::kPage).ok());
  ASSERT_TRUE(kv.SetChunkPath(id, 0, 2, 4, KvPath::kDirect).ok());
  std::map<uint64_t, KvSource> source;
  KvRange r{id, 0, 0, 80};
  ASSERT_TRUE(kv.ReadChunks({&r, 1}, [&](const KvChunkView& c) { source[c.chunk] = c.source; }).ok());
  EXPECT_EQ(source[0], KvSource::kPage);
  EXPECT_EQ(source[2], KvSource::kDirect);
  EXPECT_EQ(source[4], KvSource::kPage);
  ExpectRange(kv, id, ref, 0, 0, 80);
  // Mixed within the segment: alternate paths chunk by chunk.
  for (uint64_t c = 0; c < 5; ++c) {
    ASSERT_TRUE(kv.SetChunkPath(id, 0, c, c % 2 ? KvPath::kPage : KvPath::kDirect).ok());
  }
  ExpectRange(kv, id, ref, 0, 0, 80);
  ExpectRange(kv, id, ref, 0, 7, 71);
  EXPECT_GT(kv.stats().fadvise_dontneed, 0u);
  // And once more from disk only, after a restart.
  ASSERT_TRUE(kv.Commit().ok());
  ASSERT_TRUE(f->Reopen().ok());
  ExpectRange(f->kv(), id, ref, 0, 0, 80);
}

TEST(KvStoreTest, PathTransitionsStayCoherentOnFile) {
  TempDir dir;
  CheckPathTransitions(dir.File("s.img"), 64 * kMiB);
}

TEST(KvStoreTest, PathTransitionsStayCoherentOnLoopDevice) {
  DB_LOOP_DEVICE_OR_SKIP(loop, 64 * kMiB);
  CheckPathTransitions(loop.device(), 0);
}

TEST(KvStoreTest, ReopenFindsCommittedSequencesOnly) {
  TempDir dir;
  auto f = KvFixture::Create(dir.File("s.img"), 64 * kMiB);
  ASSERT_TRUE(f);
  std::mt19937_64 rng(10);
  SeqId a = f->kv().CreateSequence(Geo(), "model-a").value();
  RefSequence ra(Geo());
  ASSERT_TRUE(AppendRandom(f->kv(), a, ra, 0, 40, rng).ok());
  ASSERT_TRUE(AppendRandom(f->kv(), a, ra, 1, 16, rng).ok());
  ASSERT_TRUE(f->kv().SetChunkPath(a, 0, 1, KvPath::kPage).ok());
  ASSERT_TRUE(f->kv().Commit().ok());
  // Uncommitted: a second sequence and more rows of the first.
  SeqId b = f->kv().CreateSequence(Geo(), "model-b").value();
  RefSequence rb(Geo());
  ASSERT_TRUE(AppendRandom(f->kv(), b, rb, 0, 20, rng).ok());
  RefSequence ra_extra = ra;
  ASSERT_TRUE(AppendRandom(f->kv(), a, ra_extra, 0, 30, rng).ok());
  ASSERT_TRUE(f->Reopen().ok());
  EXPECT_EQ(f->kv().Sequences(), std::vector<SeqId>{a});
  Result<KvSequenceInfo> info = f->kv().Describe(a);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->model_identity, "model-a");
  EXPECT_EQ(info->geometry, Geo());
  EXPECT_EQ(info->n_tokens, (std::vector<uint64_t>{40, 16}));
  EXPECT_EQ(f->kv().ChunkPath(a, 0, 1).value(), KvPath::kPage);
  EXPECT_EQ(f->kv().ChunkPath(a, 0, 0).value(), KvPath::kDirect);
  ExpectAll(f->kv(), a, ra);
  // The reopened tail keeps growing and commits again.
  ASSERT_TRUE(AppendRandom(f->kv(), a, ra, 0, 30, rng).ok());
  ASSERT_TRUE(f->kv().Commit().ok());
  ASSERT_TRUE(f->Reopen().ok());
  ExpectAll(f->kv(), a, ra);
  // Drop frees every block and is durable at once.
  ASSERT_TRUE(f->kv().Drop(a).ok());
  EXPECT_TRUE(f->kv().Describe(a).status().IsNotFound());
  ASSERT_TRUE(f->Reopen().ok());
  EXPECT_TRUE(f->kv().Sequences().empty());
  EXPECT_EQ(f->store().allocator().stats().used_blocks, 0u);
  // Ids are never reused.
  EXPECT_GT(f->kv().CreateSequence(Geo(), "c").value(), a);
}

TEST(KvStoreTest, ChecksumMismatchNamesTheChunk) {
  TempDir dir;
  for (KvPath path : {KvPath::kDirect, KvPath::kPage}) {
    auto f = KvFixture::Create(dir.File("s.img"), 64 * kMiB, {.default_path = path});
    ASSERT_TRUE(f);
    std::mt19937_64 rng(11);
    SeqId id = f->kv().CreateSequence(Geo(), "m").value();
    RefSequence ref(Geo());
    ASSERT_TRUE(AppendRandom(f->kv(), id, ref, 1, 48, rng).ok());
    ASSERT_TRUE(f->kv().Commit().ok());
    f->Close();
    KvChunkLocation loc;
    {
      ASSERT_TRUE(f->Reopen().ok());
      loc = f->kv().ChunkLocation(id, 1, 2).value();
      f->Close();
    }
    FlipByte(f->path(), loc.v_offset_bytes + 100);
    ASSERT_TRUE(f->Reopen().ok());
    ExpectRange(f->kv(), id, ref, 1, 0, 32);  // chunks 0 and 1 are intact
    // The DIRECT path's device time is counted for DIRECT reads only.
    if (path == KvPath::kDirect) {
      EXPECT_GT(f->kv().stats().read_direct_busy_ns, 0u);
    } else {
      EXPECT_EQ(f->kv().stats().read_direct_busy_ns, 0u);
    }
    KvRange r{id, 1, 0, 48};
    Status st = f->kv().ReadChunks({&r, 1}, [](const KvChunkView&) {});
    ASSERT_TRUE(st.IsCorruption()) << st.ToString();
    EXPECT_NE(st.message().find("sequence " + std::to_string(id) + " layer 1 chunk 2"),
              std::string::npos)
        << st.message();
    EXPECT_GT(f->kv().stats().checksum_ns, 0u);
    // With verification off the flipped byte is delivered as is.
    f->kv().set_verify_checksums(false);
    EXPECT_TRUE(f->kv().ReadChunks({&r, 1}, [](const KvChunkView&) {}).ok());
  }
}

TEST(KvStoreTest, StoreFullLeavesNothingBehind) {
  TempDir dir;
  auto f = KvFixture::Create(dir.File("s.img"), 16 * kMiB);
  ASSERT_TRUE(f);
  const uint64_t free_blocks = f->store().allocator().stats().free_blocks;
  const uint64_t block = f->store().superblock().block_bytes;
  // Each layer fits alone, all four do not.
  const uint64_t chunks = free_blocks / 2 / 3;
  Result<SeqId> big = f->kv().CreateSequence(Geo(4, chunks * 16), "big");
  ASSERT_TRUE(big.status().IsNoSpace()) << big.status().ToString();
  EXPECT_NE(big.status().message().find("KV chunks"), std::string::npos);
  EXPECT_EQ(f->store().allocator().stats().free_blocks, free_blocks);
  EXPECT_TRUE(f->kv().Sequences().empty());
  // Growth that cannot fit: NoSpace, no token appended, nothing allocated.
  KvGeometry g = Geo(1, free_blocks * block / 2 / 4096 / 2 * 16);
  SeqId id = f->kv().CreateSequence(g, "m").value();
  const uint64_t free_after = f->store().allocator().stats().free_blocks;
  std::mt19937_64 rng(12);
  RefSequence ref(g);
  ASSERT_TRUE(AppendRandom(f->kv(), id, ref, 0, g.capacity_tokens, rng).ok());
  Status st = AppendRandom(f->kv(), id, ref, 0, 3 * g.capacity_tokens, rng);
  ASSERT_TRUE(st.IsNoSpace()) << st.ToString();
  EXPECT_EQ(f->kv().Describe(id)->n_tokens[0], g.capacity_tokens);
  EXPECT_EQ(f->store().allocator().stats().free_blocks, free_after);
  ExpectAll(f->kv(), id, ref);
}

TEST(KvStoreTest, InjectedReadErrorFailsCleanly) {
  TempDir dir;
  for (bool threadpool : {false, true}) {
    FaultInjector inj(FaultOptions{.seed = 3, .eio_rate = 1.0});
    inj.set_enabled(false);
    auto f = KvFixture::Create(dir.File("s.img"), 64 * kMiB,
                               {.force_threadpool = threadpool, .fault_hook = &inj});
    ASSERT_TRUE(f);
    std::mt19937_64 rng(13);
    SeqId id = f->kv().CreateSequence(Geo(2, 256), "m").value();
    RefSequence ref(Geo(2, 256));
    for (uint32_t l = 0; l < 2; ++l) ASSERT_TRUE(AppendRandom(f->kv(), id, ref, l, 200, rng).ok());
    ASSERT_TRUE(f->kv().SetChunkPath(id, 1, 0, 6, KvPath::kPage).ok());
    ASSERT_TRUE(f->kv().Commit().ok());
    inj.set_enabled(true);
    std::vector<KvRange> ranges = {{id, 0, 0, 200}, {id, 1, 0, 200}};
    Status st = f->kv().ReadChunks(ranges, [](const KvChunkView&) {});
    ASSERT_FALSE(st.ok());
    EXPECT_TRUE(st.injected()) << st.ToString();
    EXPECT_NE(st.message().find("sequence"), std::string::npos);
    // A batch abandoned mid-way drains on destruction; the store keeps working afterwards.
    {
      Result<std::unique_ptr<KvReadBatch>> b = f->kv().StartRead(ranges);
      ASSERT_TRUE(b.ok());
      Status first_error;
      while (first_error.ok() && !(*b)->done()) {
        Result<size_t> n = (*b)->Poll(true, [](const KvChunkView&) {});
        if (!n.ok()) first_error = n.status();
      }
      EXPECT_TRUE(first_error.injected()) << first_error.ToString();
    }
    inj.set_enabled(false);
    ExpectAll(f->kv(), id, ref);
  }
}

// A prefetcher keeps several batches in flight (one per layer ahead) and polls them in its own
// order: each batch delivers exactly its own chunks, whichever batch's Poll reaped them.
TEST(KvStoreTest, ManyBatchesInFlightDeliverOnlyTheirOwnChunks) {
  TempDir dir;
  // Small staging: later batches overflow the arena onto heap buffers.
  auto f = KvFixture::Create(dir.File("s.img"), 64 * kMiB,
                             {.max_request_bytes = 8192, .read_staging_bytes = 64 * 1024});
  ASSERT_TRUE(f);
  std::mt19937_64 rng(14);
  KvGeometry g = Geo(6, 512);
  SeqId id = f->kv().CreateSequence(g, "m").value();
  RefSequence ref(g);
  for (uint32_t l = 0; l < g.n_layer; ++l) {
    ASSERT_TRUE(AppendRandom(f->kv(), id, ref, l, 300 + l, rng).ok());
    ASSERT_TRUE(f->kv().SetChunkPath(id, l, 0, 32, l % 2 ? KvPath::kPage : KvPath::kDirect).ok());
  }
  ASSERT_TRUE(f->kv().Commit().ok());
  std::vector<std::unique_ptr<KvReadBatch>> batches;
  for (uint32_t l = 0; l < g.n_layer; ++l) {
    KvRange r{id, l, 3, ref.n_tokens(l)};
    Result<std::unique_ptr<KvReadBatch>> b = f->kv().StartRead({&r, 1});
    ASSERT_TRUE(b.ok());
    batches.push_back(std::move(b).value());
  }
  const uint64_t row = g.row_bytes();
  for (int l = static_cast<int>(g.n_layer) - 1; l >= 0; --l) {
    uint64_t tokens = 0;
    while (!batches[l]->done()) {
      Result<size_t> n = batches[l]->Poll(true, [&](const KvChunkView& c) {
        ASSERT_EQ(c.layer, static_cast<uint32_t>(l));
        ASSERT_EQ(0, std::memcmp(c.k, ref.k[l].data() + c.token_begin * row, c.n_tokens * row));
        ASSERT_EQ(0, std::memcmp(c.v, ref.v[l].data() + c.token_begin * row, c.n_tokens * row));
        tokens += c.n_tokens;
      });
      ASSERT_TRUE(n.ok()) << n.status().ToString();
    }
    EXPECT_EQ(tokens, ref.n_tokens(l) - 3);
    EXPECT_EQ(batches[l]->pending_chunks(), 0u);
  }
  EXPECT_GT(f->kv().stats().read_requests_page, 0u);
  EXPECT_GT(f->kv().stats().read_requests_direct, 0u);
}

// A commit whose chunk writes fail reports the injected error and commits nothing: a restart
// finds the previous committed state, bytes and all.
TEST(KvStoreTest, FailedWritesLeaveThePreviousCommitReadable) {
  TempDir dir;
  FaultInjector inj(FaultOptions{.seed = 4, .eio_rate = 1.0});
  inj.set_enabled(false);
  auto f = KvFixture::Create(dir.File("s.img"), 64 * kMiB, {.fault_hook = &inj});
  ASSERT_TRUE(f);
  std::mt19937_64 rng(15);
  SeqId id = f->kv().CreateSequence(Geo(), "m").value();
  RefSequence ref(Geo());
  ASSERT_TRUE(AppendRandom(f->kv(), id, ref, 0, 40, rng).ok());
  ASSERT_TRUE(f->kv().Commit().ok());
  inj.set_enabled(true);
  RefSequence ignored = ref;
  ASSERT_TRUE(AppendRandom(f->kv(), id, ignored, 0, 50, rng).ok());
  ASSERT_TRUE(AppendRandom(f->kv(), id, ignored, 1, 20, rng).ok());
  Status st = f->kv().Commit();
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(st.injected()) << st.ToString();
  inj.set_enabled(false);
  EXPECT_FALSE(f->kv().Commit().ok());  // sticky: the lost chunks must never be committed
  ASSERT_TRUE(f->Reopen().ok());
  EXPECT_EQ(f->kv().Describe(id)->n_tokens, (std::vector<uint64_t>{40, 0}));
  ExpectAll(f->kv(), id, ref);
}

TEST(KvStoreTest, BadArgumentsAreClearErrors) {
  TempDir dir;
  auto f = KvFixture::Create(dir.File("s.img"), 64 * kMiB);
  ASSERT_TRUE(f);
  EXPECT_TRUE(f->kv().CreateSequence(Geo(0), "m").status().IsInvalidArgument());
  SeqId id = f->kv().CreateSequence(Geo(), "m").value();
  uint8_t row[96] = {};
  EXPECT_TRUE(f->kv().Append(id + 1, 0, row, row, 1).IsNotFound());
  EXPECT_TRUE(f->kv().Append(id, 2, row, row, 1).IsInvalidArgument());
  KvRange r{id, 0, 0, 1};
  EXPECT_TRUE(f->kv().ReadChunks({&r, 1}, [](const KvChunkView&) {}).IsInvalidArgument());
  EXPECT_TRUE(f->kv().SetChunkPath(id, 0, 0, 99, KvPath::kPage).IsInvalidArgument());
  EXPECT_TRUE(f->kv().ChunkPath(id, 0, 4).status().IsInvalidArgument());
  EXPECT_TRUE(f->kv().Drop(id + 5).IsNotFound());
}

}  // namespace
}  // namespace dualblade::store
