// KvStore read path: coalescing of adjacent chunks into requests, staging registered with the
// io_uring engine, reads into caller targets (also in caller memory registered with the engine),
// and reuse of chunk buffers for new tails.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <random>

#include "common/aligned_buffer.h"
#include "common/units.h"
#include "io/io_buffer.h"
#include "io/io_engine.h"
#include "store/kv_store.h"
#include "store/kv_test_util.h"
#include "testing/test_env.h"

namespace dualblade::store {
namespace {

using dualblade::testing::TempDir;
using testing::AppendRandom;
using testing::ExpectChunkMatches;
using testing::ExpectAll;
using testing::ExpectRange;
using testing::KvFixture;
using testing::RefSequence;

// 96-byte rows, 16-token chunks: 1536 row bytes per part, one 4 KiB block.
KvGeometry Geo(uint32_t layers, uint64_t capacity) {
  return KvGeometry{.n_layer = layers, .n_head_kv = 2, .head_dim = 24, .type = KvType::kF16,
                    .chunk_tokens = 16, .capacity_tokens = capacity};
}
constexpr uint64_t kPartBytes = 4096;

// Reads every chunk of a layer and returns the DIRECT and PAGE requests it took.
std::pair<uint64_t, uint64_t> RequestsToRead(KvStore& kv, SeqId id, uint32_t layer,
                                             uint64_t n_tokens) {
  const KvStoreStats before = kv.stats();
  KvRange r{id, layer, 0, n_tokens};
  EXPECT_TRUE(kv.ReadChunks({&r, 1}, [](const KvChunkView&) {}).ok());
  return {kv.stats().read_requests_direct - before.read_requests_direct,
          kv.stats().read_requests_page - before.read_requests_page};
}

TEST(KvReadTest, AdjacentChunksCoalesceUpToMaxRequestBytes) {
  TempDir dir;
  for (uint64_t max_chunks : {1, 3, 4, 16}) {
    SCOPED_TRACE("max_request_bytes = " + std::to_string(max_chunks) + " chunks");
    auto f = KvFixture::Create(dir.File("s.img"), 64 * kMiB,
                               {.max_request_bytes = max_chunks * kPartBytes});
    ASSERT_TRUE(f);
    std::mt19937_64 rng(11);
    const SeqId id = f->kv().CreateSequence(Geo(1, 160), "m").value();
    RefSequence ref(Geo(1, 160));
    ASSERT_TRUE(AppendRandom(f->kv(), id, ref, 0, 160, rng).ok());  // 10 full chunks
    ASSERT_TRUE(f->kv().Flush().ok());
    // One K request and one V request per run of at most max_chunks chunks.
    const uint64_t runs = (10 + max_chunks - 1) / max_chunks;
    EXPECT_EQ(RequestsToRead(f->kv(), id, 0, 160), std::make_pair(2 * runs, uint64_t{0}));
    // A PAGE chunk in the middle ends a DIRECT run: chunks 0-4, 5 (PAGE), 6-9.
    ASSERT_TRUE(f->kv().SetChunkPath(id, 0, 5, KvPath::kPage).ok());
    const uint64_t direct_runs =
        (5 + max_chunks - 1) / max_chunks + (4 + max_chunks - 1) / max_chunks;
    EXPECT_EQ(RequestsToRead(f->kv(), id, 0, 160), std::make_pair(2 * direct_runs, uint64_t{2}));
    ExpectAll(f->kv(), id, ref);
  }
}

// StartRead queues a batch's DIRECT requests with the engine at once (a caller that starts
// several batches sends them to the kernel in one system call at its next Poll), but not its
// PAGE requests: the kernel copies cached pages inline at submission, which would hold back
// whatever the caller polls first. Each batch still delivers exactly its own rows.
TEST(KvReadTest, StartQueuesDirectRequestsAndPollQueuesPageRequests) {
  TempDir dir;
  auto f = KvFixture::Create(dir.File("s.img"), 64 * kMiB, {.max_request_bytes = 2 * kPartBytes});
  ASSERT_TRUE(f);
  std::mt19937_64 rng(13);
  const KvGeometry g = Geo(2, 64);
  const SeqId id = f->kv().CreateSequence(g, "m").value();
  RefSequence ref(g);
  for (uint32_t l = 0; l < 2; ++l) ASSERT_TRUE(AppendRandom(f->kv(), id, ref, l, 64, rng).ok());
  ASSERT_TRUE(f->kv().Flush().ok());
  ASSERT_TRUE(f->kv().SetChunkPath(id, 1, 0, 4, KvPath::kPage).ok());  // layer 1 all PAGE

  const KvStoreStats before = f->kv().stats();
  const KvRange direct{id, 0, 0, 64}, page{id, 1, 0, 64};
  auto d = f->kv().StartRead({&direct, 1});
  auto p = f->kv().StartRead({&page, 1});
  ASSERT_TRUE(d.ok() && p.ok());
  // 4 chunks in runs of 2: two K and two V requests, queued before any Poll.
  EXPECT_EQ(f->kv().stats().read_requests_direct - before.read_requests_direct, 4u);
  EXPECT_EQ(f->kv().stats().read_requests_page - before.read_requests_page, 0u);

  for (auto* b : {&*p, &*d}) {  // the PAGE batch first: the DIRECT one is in flight meanwhile
    uint64_t tokens = 0;
    while (!(*b)->done()) {
      auto n = (*b)->Poll(/*wait=*/true, [&](const KvChunkView& c) {
        ExpectChunkMatches(ref, c);
        tokens += c.n_tokens;
      });
      ASSERT_TRUE(n.ok()) << n.status().ToString();
    }
    EXPECT_EQ(tokens, 64u);
  }
  EXPECT_EQ(f->kv().stats().read_requests_page - before.read_requests_page, 4u);
  EXPECT_EQ(f->kv().stats().read_requests_direct - before.read_requests_direct, 4u);
}

// Every DIRECT read is staged in memory registered with the io_uring engine, also when batches
// in flight at once need more staging than the first arena (mapped at Open) holds; the data is
// the data written.
void CheckRegisteredStaging(const std::string& path, uint64_t size_bytes) {
  auto f = KvFixture::Create(path, size_bytes,
                             {.max_request_bytes = 2 * kPartBytes,
                              .read_staging_bytes = 8 * kPartBytes});
  ASSERT_TRUE(f);
  if (f->kv().engine_name() != "io_uring") GTEST_SKIP() << "io_uring is not available here";
  std::mt19937_64 rng(5);
  const KvGeometry g = Geo(4, 256);
  const SeqId id = f->kv().CreateSequence(g, "m").value();
  RefSequence ref(g);
  for (uint32_t l = 0; l < g.n_layer; ++l) ASSERT_TRUE(AppendRandom(f->kv(), id, ref, l, 250, rng).ok());
  ASSERT_TRUE(f->kv().Flush().ok());

  ExpectAll(f->kv(), id, ref);
  const KvStoreStats& st = f->kv().stats();
  ASSERT_GT(st.read_requests_direct, 0u);
  if (st.read_requests_registered == 0) GTEST_SKIP() << "the kernel refused buffer registration";
  EXPECT_EQ(st.read_requests_registered, st.read_requests_direct);

  // Four batches in flight at once need four arenas: those beyond the first are mapped while the
  // engine is busy, and registered by the next StartRead that finds it idle.
  std::vector<std::unique_ptr<KvReadBatch>> batches;
  std::vector<KvRange> ranges;
  for (uint32_t l = 0; l < g.n_layer; ++l) ranges.push_back({id, l, 0, 250});
  for (const KvRange& r : ranges) batches.push_back(f->kv().StartRead({&r, 1}).value());
  uint64_t tokens = 0;
  bool pending = true;
  while (pending) {
    pending = false;
    for (auto& b : batches) {
      if (b->done()) continue;
      auto n = b->Poll(/*wait=*/false, [&](const KvChunkView& c) {
        ExpectChunkMatches(ref, c);
        tokens += c.n_tokens;
      });
      ASSERT_TRUE(n.ok()) << n.status().ToString();
      pending = pending || !b->done();
    }
  }
  EXPECT_EQ(tokens, 4u * 250);
  batches.clear();
  for (uint32_t l = 0; l < g.n_layer; ++l) {
    const KvStoreStats before = f->kv().stats();
    ExpectRange(f->kv(), id, ref, l, 0, 250);
    EXPECT_EQ(f->kv().stats().read_requests_registered - before.read_requests_registered,
              f->kv().stats().read_requests_direct - before.read_requests_direct)
        << "layer " << l << ": staging read from an arena that was never registered";
  }
}

TEST(KvReadTest, DirectReadsUseRegisteredStagingOnFile) {
  TempDir dir;
  CheckRegisteredStaging(dir.File("s.img"), 64 * kMiB);
}

TEST(KvReadTest, DirectReadsUseRegisteredStagingOnLoopDevice) {
  DB_LOOP_DEVICE_OR_SKIP(loop, 64 * kMiB);
  CheckRegisteredStaging(loop.device(), 0);
}

TEST(KvReadTest, ThreadPoolEngineReadsWithoutRegistration) {
  TempDir dir;
  auto f = KvFixture::Create(dir.File("s.img"), 64 * kMiB, {.force_threadpool = true});
  ASSERT_TRUE(f);
  std::mt19937_64 rng(9);
  const SeqId id = f->kv().CreateSequence(Geo(2, 64), "m").value();
  RefSequence ref(Geo(2, 64));
  for (uint32_t l = 0; l < 2; ++l) ASSERT_TRUE(AppendRandom(f->kv(), id, ref, l, 60, rng).ok());
  ASSERT_TRUE(f->kv().Flush().ok());
  ExpectAll(f->kv(), id, ref);
  EXPECT_GT(f->kv().stats().read_requests_direct, 0u);
  EXPECT_EQ(f->kv().stats().read_requests_registered, 0u);
  IoBuffer mem(kMiB);
  EXPECT_FALSE(f->kv().RegisterMemory(mem.span()));
  EXPECT_FALSE(f->kv().UnregisterMemory(mem.data()));
}

// Where ReadInto puts chunk c: K at k_shift + c * stride, V at v_base + k_shift + c * stride.
struct Layout {
  uint64_t stride = kPartBytes;
  uint64_t v_base = 0;
  uint64_t k_shift = 0;
  uint64_t room = kPartBytes;
};

// Bytes of memory ReadInto's targets span with a layout.
uint64_t IntoBytes(const Layout& lay) { return lay.v_base + 32 * lay.stride + kPartBytes; }

// Reads a layer range into per-chunk targets (in `into`, IntoBytes(lay) of it, or else in memory
// of its own), checks every delivered view points into its target and holds the reference rows,
// and returns the requests per path it took.
struct IntoResult {
  uint64_t direct_requests = 0, page_requests = 0, registered_requests = 0, chunks = 0;
};
IntoResult ReadInto(KvStore& kv, SeqId id, const RefSequence& ref, uint32_t layer, uint64_t t0,
                    uint64_t t1, const Layout& lay, uint8_t* into = nullptr) {
  const uint64_t row = ref.geometry.row_bytes(), ct = ref.geometry.chunk_tokens;
  AlignedBuffer own(into == nullptr ? IntoBytes(lay) : 0);
  uint8_t* const mem = into == nullptr ? own.data() : into;
  std::memset(mem, 0, IntoBytes(lay));
  auto target = [&](uint64_t c) {
    uint8_t* k = mem + lay.k_shift + c * lay.stride;
    return KvChunkTarget{k, k + lay.v_base, lay.room};
  };
  const KvStoreStats before = kv.stats();
  KvRange r{id, layer, t0, t1};
  IntoResult out;
  auto batch = kv.StartReadInto({&r, 1}, [&](size_t ri, uint64_t c) {
    EXPECT_EQ(ri, 0u);
    return target(c);
  });
  EXPECT_TRUE(batch.ok()) << batch.status().ToString();
  if (!batch.ok()) return out;
  std::vector<int> seen(t1 - t0, 0);
  while (!(*batch)->done()) {
    auto n = (*batch)->Poll(/*wait=*/true, [&](const KvChunkView& v) {
      const uint64_t skip = (v.token_begin - v.chunk * ct) * row;
      EXPECT_EQ(v.k, target(v.chunk).k + skip) << "chunk " << v.chunk;
      EXPECT_EQ(v.v, target(v.chunk).v + skip) << "chunk " << v.chunk;
      EXPECT_EQ(0, std::memcmp(v.k, ref.k[layer].data() + v.token_begin * row, v.n_tokens * row))
          << "K of chunk " << v.chunk << " via " << KvSourceName(v.source);
      EXPECT_EQ(0, std::memcmp(v.v, ref.v[layer].data() + v.token_begin * row, v.n_tokens * row))
          << "V of chunk " << v.chunk << " via " << KvSourceName(v.source);
      for (uint64_t t = 0; t < v.n_tokens; ++t) ++seen[v.token_begin + t - t0];
      ++out.chunks;
    });
    EXPECT_TRUE(n.ok()) << n.status().ToString();
    if (!n.ok()) return out;
  }
  for (uint64_t t = 0; t < seen.size(); ++t) EXPECT_EQ(seen[t], 1) << "token " << t0 + t;
  out.direct_requests = kv.stats().read_requests_direct - before.read_requests_direct;
  out.page_requests = kv.stats().read_requests_page - before.read_requests_page;
  out.registered_requests = kv.stats().read_requests_registered - before.read_requests_registered;
  return out;
}

// 10 full chunks and a 5-token tail; chunk 5 PAGE, the rest DIRECT; runs of at most 4 chunks:
// 0-3, 4, 5 (PAGE) and 6-9, each one K and one V request, staged or in place. On io_uring with
// registered staging, only staged DIRECT reads count as registered, which tells the two apart.
void CheckReadInto(const std::string& path, uint64_t size_bytes) {
  auto f = KvFixture::Create(path, size_bytes, {.max_request_bytes = 4 * kPartBytes});
  ASSERT_TRUE(f);
  std::mt19937_64 rng(21);
  const KvGeometry g = Geo(1, 176);
  const SeqId id = f->kv().CreateSequence(g, "m").value();
  RefSequence ref(g);
  ASSERT_TRUE(AppendRandom(f->kv(), id, ref, 0, 165, rng).ok());
  ASSERT_TRUE(f->kv().Flush().ok());
  ASSERT_TRUE(f->kv().SetChunkPath(id, 0, 5, KvPath::kPage).ok());
  // Whether this store registers its staging (io_uring, memlock permitting).
  bool registers = false;
  {
    KvRange r{id, 0, 0, 16};
    ASSERT_TRUE(f->kv().ReadChunks({&r, 1}, [](const KvChunkView&) {}).ok());
    registers = f->kv().stats().read_requests_registered > 0;
  }
  const uint64_t rows = g.chunk_tokens * g.row_bytes();
  const uint64_t k_area = 16 * kPartBytes;  // K targets back to back, then the V targets
  struct Case {
    const char* what;
    Layout lay;
    uint64_t direct_requests, page_requests;
    bool staged;
  };
  for (const Case& c : {
           Case{"K and V targets back to back", {kPartBytes, k_area, 0, kPartBytes}, 6, 2, false},
           // In place through vectored requests.
           Case{"each chunk's K next to its V", {2 * kPartBytes, kPartBytes, 0, kPartBytes}, 6, 2,
                false},
           Case{"room for the rows only", {kPartBytes, k_area, 0, rows}, 6, 2, true},
           Case{"misaligned", {kPartBytes, k_area, 64, kPartBytes}, 6, 2, true},
       }) {
    SCOPED_TRACE(c.what);
    IntoResult r = ReadInto(f->kv(), id, ref, 0, 0, 165, c.lay);
    EXPECT_EQ(r.chunks, 11u);
    EXPECT_EQ(r.direct_requests, c.direct_requests);
    EXPECT_EQ(r.page_requests, c.page_requests);
    if (registers) {
      EXPECT_EQ(r.registered_requests, c.staged ? c.direct_requests : 0u);
    }
  }
  {
    SCOPED_TRACE("a range clipped at both ends");
    IntoResult r = ReadInto(f->kv(), id, ref, 0, 21, 150, {kPartBytes, k_area, 0, kPartBytes});
    EXPECT_EQ(r.chunks, 9u);  // chunks 1..9
  }
  KvRange r{id, 0, 0, 165};
  auto bad = f->kv().StartReadInto({&r, 1}, [&](size_t, uint64_t) {
    static uint8_t small[64];
    return KvChunkTarget{small, small, sizeof(small)};
  });
  EXPECT_TRUE(bad.status().IsInvalidArgument()) << bad.status().ToString();
}

// StartReadInto targets in caller memory given to RegisterMemory: reads in place into it go out
// as fixed-buffer reads (vectored ones where the kernel has READV_FIXED) and deliver the same
// bytes; after UnregisterMemory they are plain reads again, still right. Same store shape as
// CheckReadInto: 6 DIRECT and 2 PAGE requests for the layer.
void CheckReadIntoRegistered(const std::string& path, uint64_t size_bytes) {
  auto f = KvFixture::Create(path, size_bytes, {.max_request_bytes = 4 * kPartBytes});
  ASSERT_TRUE(f);
  if (f->kv().engine_name() != "io_uring") GTEST_SKIP() << "io_uring is not available here";
  std::mt19937_64 rng(23);
  const KvGeometry g = Geo(1, 176);
  const SeqId id = f->kv().CreateSequence(g, "m").value();
  RefSequence ref(g);
  ASSERT_TRUE(AppendRandom(f->kv(), id, ref, 0, 165, rng).ok());
  ASSERT_TRUE(f->kv().SetChunkPath(id, 0, 5, KvPath::kPage).ok());
  // Registration waits for the chunk writes still in flight.
  IoBuffer mem(kMiB);
  if (!f->kv().RegisterMemory(mem.span()))
    GTEST_SKIP() << "the kernel refused buffer registration";
  bool vfixed = false;  // what the engine's probe says about this kernel
  {
    auto probe = CreateIoEngine(&f->store().device(), {});
    ASSERT_TRUE(probe.ok()) << probe.status().ToString();
    vfixed = (*probe)->vectored_fixed_supported();
  }
  const uint64_t k_area = 16 * kPartBytes;
  const Layout back_to_back{kPartBytes, k_area, 0, kPartBytes};  // plain requests in place
  const Layout interleaved{2 * kPartBytes, kPartBytes, 0, kPartBytes};  // vectored in place
  const Layout misaligned{kPartBytes, k_area, 64, kPartBytes};  // staged in the store's arenas
  ASSERT_LE(std::max(IntoBytes(back_to_back), IntoBytes(interleaved)), mem.size());
  {
    SCOPED_TRACE("registered, back to back");
    IntoResult r = ReadInto(f->kv(), id, ref, 0, 0, 165, back_to_back, mem.data());
    EXPECT_EQ(r.chunks, 11u);
    EXPECT_EQ(r.direct_requests, 6u);
    EXPECT_EQ(r.registered_requests, 6u);
  }
  {
    SCOPED_TRACE("registered, vectored");
    IntoResult r = ReadInto(f->kv(), id, ref, 0, 0, 165, interleaved, mem.data());
    EXPECT_EQ(r.chunks, 11u);
    EXPECT_EQ(r.direct_requests, 6u);
    EXPECT_EQ(r.registered_requests, vfixed ? 6u : 0u);
  }
  EXPECT_FALSE(f->kv().UnregisterMemory(mem.data() + 4096));  // not the start of a region
  EXPECT_TRUE(f->kv().UnregisterMemory(mem.data()));
  EXPECT_FALSE(f->kv().UnregisterMemory(mem.data()));
  for (const Layout& lay : {back_to_back, interleaved}) {
    SCOPED_TRACE(lay.stride == kPartBytes ? "unregistered, back to back" : "unregistered, vectored");
    IntoResult r = ReadInto(f->kv(), id, ref, 0, 0, 165, lay, mem.data());
    EXPECT_EQ(r.chunks, 11u);
    EXPECT_EQ(r.direct_requests, 6u);
    EXPECT_EQ(r.registered_requests, 0u);
  }
  {
    SCOPED_TRACE("staged: the store's own arenas stay registered");
    IntoResult r = ReadInto(f->kv(), id, ref, 0, 0, 165, misaligned, mem.data());
    EXPECT_EQ(r.registered_requests, 6u);
  }
  const KvStoreStats& st = f->kv().stats();
  std::printf("read_requests_registered %llu of read_requests_direct %llu\n",
              static_cast<unsigned long long>(st.read_requests_registered),
              static_cast<unsigned long long>(st.read_requests_direct));
}

TEST(KvReadTest, ReadIntoRegisteredMemoryOnFile) {
  TempDir dir;
  CheckReadIntoRegistered(dir.File("s.img"), 64 * kMiB);
}

TEST(KvReadTest, ReadIntoRegisteredMemoryOnLoopDevice) {
  DB_LOOP_DEVICE_OR_SKIP(loop, 64 * kMiB);
  CheckReadIntoRegistered(loop.device(), 0);
}

TEST(KvReadTest, ReadIntoTargetsOnFile) {
  TempDir dir;
  CheckReadInto(dir.File("s.img"), 64 * kMiB);
}

TEST(KvReadTest, ReadIntoTargetsOnLoopDevice) {
  DB_LOOP_DEVICE_OR_SKIP(loop, 64 * kMiB);
  CheckReadInto(loop.device(), 0);
}

// A new tail reuses the buffer of a finished chunk write: the rows it held must not leak into
// the zero padding of the partial tail written at Commit, and the tail reads back after a reopen.
TEST(KvReadTest, ReusedTailBuffersAreZeroPadded) {
  TempDir dir;
  auto f = KvFixture::Create(dir.File("s.img"), 64 * kMiB);
  ASSERT_TRUE(f);
  std::mt19937_64 rng(3);
  const KvGeometry g = Geo(1, 64);
  const SeqId id = f->kv().CreateSequence(g, "m").value();
  RefSequence ref(g);
  ASSERT_TRUE(AppendRandom(f->kv(), id, ref, 0, 16, rng).ok());  // one full chunk, written
  ASSERT_TRUE(f->kv().Flush().ok());                             // its buffer is spare now
  ASSERT_TRUE(AppendRandom(f->kv(), id, ref, 0, 3, rng).ok());   // a tail in that buffer
  ASSERT_TRUE(f->kv().Commit().ok());

  const KvChunkLocation loc = f->kv().ChunkLocation(id, 0, 1).value();
  AlignedBuffer block(kPartBytes);
  const uint64_t rows = 3 * g.row_bytes();
  for (uint64_t off : {loc.k_offset_bytes, loc.v_offset_bytes}) {
    ASSERT_TRUE(f->store().device().PreadDirect(off, block.span()).ok());
    EXPECT_TRUE(std::all_of(block.data() + rows, block.data() + kPartBytes,
                            [](uint8_t b) { return b == 0; }))
        << "padding after the tail's rows at offset " << off << " is not zero";
  }
  ASSERT_TRUE(f->Reopen().ok());
  ExpectAll(f->kv(), id, ref);
}

}  // namespace
}  // namespace dualblade::store
