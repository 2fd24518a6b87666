// KvStore: the KV caches of many sequences in one store, each chunk read and written through its
// own path (PAGE: buffered, DIRECT: O_DIRECT), both on the same LBAs.
//
// Life of a chunk: Append collects rows in the layer's in-memory tail; when the tail holds a full
// chunk it is written (K part and V part, whole aligned blocks) asynchronously through the chunk's
// path, and served from memory until that write completes. Reads of on-disk chunks go through the
// chunk's path; DIRECT reads of adjacent chunks of one extent are coalesced into one request (up
// to the device's max transfer); PAGE chunks get POSIX_FADV_WILLNEED when a read batch starts.
// Chunks are delivered in completion order, each verified against its xxHash (XXH3-64, K and V
// separately) when verify_checksums is on.
//
// Paths: SetChunkPath changes how a chunk is read and written from then on and moves no data.
// Demotion (PAGE -> DIRECT) first writes back dirty pages of the range (sync_file_range) and then
// drops its pages (POSIX_FADV_DONTNEED), so direct reads see what buffered writes wrote and no
// stale page hides a later direct write. Promotion (DIRECT -> PAGE) needs nothing: the kernel
// invalidates cached pages over a range that O_DIRECT writes.
//
// Durability: Commit waits for every write, writes each partial tail as whole blocks (zero
// padded), syncs the device, and only then commits the sequence index (metadata record
// kRecordSequenceIndex) through Store::Commit. A reopened KvStore sees exactly the last committed
// state: sequences, tokens (tails included), paths and checksums. CreateSequence, Drop and growth
// change the allocator in memory; Drop commits at once so freed blocks are never reused while a
// committed index still names them.
//
// Thread-safety: none. One thread owns a KvStore and every KvReadBatch it started; the
// BlockDevice underneath may be shared with other engines on other threads.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "io/io_engine.h"
#include "store/kv_geometry.h"
#include "store/store.h"

namespace dualblade::store {

using SeqId = uint64_t;

struct KvStoreOptions {
  // Verify each chunk's xxHash on read (Corruption on mismatch). Time spent: stats().checksum_ns.
  bool verify_checksums = true;
  // Kernel requests in flight per store.
  uint32_t queue_depth = 64;
  // Largest coalesced read request; 0 = the device's max transfer (1 MiB when unknown).
  uint64_t max_request_bytes = 0;
  // Staging memory for reads in flight: one batch holds at most this much at once; further chunks
  // are submitted as earlier ones are consumed. The store maps it in arenas of this size (huge
  // pages, registered with the io_uring engine): the first at Open, more as batches in flight
  // need them, up to 8 arenas, kept for reuse until it closes; beyond that (or for runs larger
  // than a slot) batches use heap buffers.
  uint64_t read_staging_bytes = 32ull << 20;
  // Chunk-write buffers in flight at once; Append waits for completions beyond it.
  uint64_t write_inflight_bytes = 64ull << 20;
  // Path a new chunk gets until SetChunkPath says otherwise.
  KvPath default_path = KvPath::kDirect;
  // Growth: a segment that runs out of capacity grows by max(needed, its capacity * this / 100)
  // tokens (falling back to only what is needed when the store is too full for more).
  uint32_t growth_percent = 100;
  bool force_threadpool = false;  // use the thread-pool IoEngine even where io_uring works
  IoFaultHook* fault_hook = nullptr;  // tests; not owned, must outlive the KvStore
};

// Counters since Open. Bytes are row bytes delivered or written (padding excluded for reads of
// memory; on-disk transfers count whole blocks).
struct KvStoreStats {
  uint64_t read_bytes_page = 0;
  uint64_t read_bytes_direct = 0;
  uint64_t read_bytes_memory = 0;  // tails and chunks whose write was still in flight
  uint64_t read_requests_page = 0;
  uint64_t read_requests_direct = 0;
  // DIRECT read requests into memory registered with the io_uring engine: the store's staging,
  // or caller memory given to RegisterMemory (StartReadInto targets, plain and vectored). They
  // go out as fixed-buffer reads that pin no pages per request (vectored ones only where the
  // kernel has IORING_OP_READV_FIXED, Linux 6.15+; elsewhere they are not counted). 0 with the
  // thread-pool engine.
  uint64_t read_requests_registered = 0;
  uint64_t write_bytes_page = 0;
  uint64_t write_bytes_direct = 0;
  // Time with at least one DIRECT read in the engine (queued to completion seen): the device's
  // time for them, which with the bytes gives the DIRECT path's rate.
  uint64_t read_direct_busy_ns = 0;
  uint64_t checksum_ns = 0;  // hashing on write and verifying on read
  uint64_t checksum_bytes = 0;
  uint64_t fadvise_willneed = 0;
  uint64_t fadvise_dontneed = 0;
  uint64_t path_changes = 0;
};

// Where a chunk's bytes lie on the device (for residency probing and for tests).
struct KvChunkLocation {
  uint64_t k_offset_bytes = 0;
  uint64_t v_offset_bytes = 0;
  uint64_t part_bytes = 0;  // each of K and V: whole blocks
};

struct KvSequenceInfo {
  SeqId id = 0;
  std::string model_identity;
  KvGeometry geometry;
  KvLayout layout;
  std::vector<uint64_t> n_tokens;          // per layer
  std::vector<uint64_t> capacity_tokens;   // per layer (whole chunks over all extents)
  uint64_t last_use_unix_s = 0;
};

// A token range of one layer of one sequence, for reads.
struct KvRange {
  SeqId seq = 0;
  uint32_t layer = 0;
  uint64_t token_begin = 0;
  uint64_t token_end = 0;  // exclusive
};

// Where a delivered chunk came from.
enum class KvSource : uint8_t { kMemory, kPage, kDirect };
const char* KvSourceName(KvSource s);  // "memory", "page", "direct"

// One delivered chunk: rows [token_begin, token_begin + n_tokens) of one layer, clipped to the
// requested range. The pointers are valid only during the callback.
struct KvChunkView {
  size_t range_index = 0;  // index into the ranges passed to StartRead/ReadChunks
  SeqId seq = 0;
  uint32_t layer = 0;
  uint64_t chunk = 0;
  uint64_t token_begin = 0;
  uint32_t n_tokens = 0;
  const uint8_t* k = nullptr;  // n_tokens * row_bytes
  const uint8_t* v = nullptr;
  KvSource source = KvSource::kMemory;
};
using KvChunkFn = std::function<void(const KvChunkView&)>;

// Where StartReadInto puts one chunk: its K rows (from the chunk's first token, clipped rows at
// their place) at k, its V rows at v, each with room_bytes of room. On-disk chunks are read
// straight into their targets when the targets have room for the whole on-disk part
// (KvChunkLocation::part_bytes) and, for DIRECT chunks, 4096-byte alignment; otherwise they are
// staged and their rows copied in. Either way a run of adjacent chunks goes out as one K and one
// V request (up to max_request_bytes each): into targets that lie back to back in memory (chunk
// i + 1's K right after chunk i's part, likewise V) as plain requests, into others as vectored
// ones.
struct KvChunkTarget {
  uint8_t* k = nullptr;
  uint8_t* v = nullptr;
  uint64_t room_bytes = 0;  // REQUIRES: >= chunk_tokens * row_bytes
};
// The target of chunk `chunk` of ranges[range_index]; called once per chunk, at StartReadInto.
using KvTargetFn = std::function<KvChunkTarget(size_t range_index, uint64_t chunk)>;

class KvStore;

// Reads in flight for a set of ranges. Several batches may be in flight at once (a prefetcher
// keeps one per layer ahead); each delivers only its own chunks.
// REQUIRES: the KvStore outlives the batch; the sequences read are not dropped meanwhile.
class KvReadBatch {
 public:
  virtual ~KvReadBatch() = default;  // waits for its requests still in the kernel
  // Delivers every chunk that has completed, in completion order, submitting more reads as
  // staging frees up. With wait, blocks until at least one chunk is delivered (unless done()).
  // Returns the number delivered. The first error (I/O, Corruption on a checksum mismatch) fails
  // the batch: it is returned now and by every later Poll; done() turns true once nothing of the
  // batch is left in the kernel.
  virtual Result<size_t> Poll(bool wait, const KvChunkFn& fn) = 0;
  // Every chunk delivered (or the batch failed and drained).
  virtual bool done() const = 0;
  // Chunks not yet delivered.
  virtual size_t pending_chunks() const = 0;
};

class KvStore {
 public:
  // Loads the committed sequence index of an opened, writable store (Corruption when the index is
  // damaged or names blocks the allocator does not hold) and reads back the tails of partial
  // chunks. The Store must outlive the KvStore; nothing else may use its allocator meanwhile.
  static Result<std::unique_ptr<KvStore>> Open(Store* store, const KvStoreOptions& opts);

  virtual ~KvStore() = default;

  // A new empty sequence with a segment of geometry.capacity_tokens (whole chunks) per layer.
  // InvalidArgument for a bad geometry; NoSpace when the store cannot hold it, with nothing
  // allocated. Not durable until Commit.
  virtual Result<SeqId> CreateSequence(const KvGeometry& geometry,
                                       std::string_view model_identity) = 0;
  // Frees the sequence's extents and commits. NotFound for an unknown id.
  virtual Status Drop(SeqId seq) = 0;
  virtual std::vector<SeqId> Sequences() const = 0;
  virtual Result<KvSequenceInfo> Describe(SeqId seq) const = 0;

  // Appends n_tokens K rows and V rows (row_bytes() each, back to back) to a layer; the data is
  // copied before returning. Full chunks start writing through their path. Grows the segment when
  // needed; NoSpace when the store is full, with nothing appended and nothing allocated.
  virtual Status Append(SeqId seq, uint32_t layer, const void* k_rows, const void* v_rows,
                        uint64_t n_tokens) = 0;

  // Starts reading the ranges (each REQUIRES token_begin <= token_end <= n_tokens of its layer;
  // InvalidArgument otherwise). Memory-resident rows are copied into the batch at once. Its
  // first DIRECT requests are queued with the I/O engine at once and go to the kernel with the
  // next Poll of any batch, so a caller that starts several batches and then polls submits them
  // in one system call; PAGE requests go with the batch's own Poll (the kernel copies cached
  // pages inline at submission).
  virtual Result<std::unique_ptr<KvReadBatch>> StartRead(std::span<const KvRange> ranges) = 0;
  // As StartRead, but every chunk lands in caller memory (see KvChunkTarget) and each delivered
  // view points into its target: no copy out of the store's staging where the reads can go
  // straight there. The targets must stay valid, and untouched by the caller, until their chunk
  // is delivered or the batch is destroyed. InvalidArgument for a target without room.
  virtual Result<std::unique_ptr<KvReadBatch>> StartReadInto(std::span<const KvRange> ranges,
                                                             const KvTargetFn& targets) = 0;
  // Registers caller memory (typically the pool StartReadInto targets are carved from) with the
  // store's I/O engine, so DIRECT reads into it go out as fixed-buffer reads that pin no pages
  // per request (counted in stats().read_requests_registered). Returns false, not an error, where
  // the engine cannot (thread-pool engine, kernel or memlock refusal, over 1 GiB, all slots
  // taken: the engine has 16 and the store's own staging uses up to 8); reads into the memory
  // work the same either way, only slower. The memory must stay mapped until UnregisterMemory
  // or until the KvStore is destroyed. Waits for the writes in flight first (the engine replaces
  // its buffer table only while idle).
  // REQUIRES: no read batch in flight (call it between steps).
  virtual bool RegisterMemory(std::span<uint8_t> mem) = 0;
  // Drops memory that RegisterMemory took (by its start), so the caller may unmap it. Returns
  // whether it was registered. Waits for the writes in flight first.
  // REQUIRES: no read batch in flight.
  virtual bool UnregisterMemory(uint8_t* mem) = 0;
  // StartRead and Poll until done: fn sees every chunk, in completion order.
  virtual Status ReadChunks(std::span<const KvRange> ranges, const KvChunkFn& fn) = 0;
  // Reads one range into caller buffers: (token_end - token_begin) rows each, in token order.
  virtual Status Read(const KvRange& range, void* k_out, void* v_out) = 0;

  // A chunk's path. Chunks beyond the tokens written may be set too (the path their write will
  // take). InvalidArgument for a layer or chunk out of the segment's capacity.
  virtual Result<KvPath> ChunkPath(SeqId seq, uint32_t layer, uint64_t chunk) const = 0;
  // Sets the path of chunks [chunk_begin, chunk_end) of a layer (see the file comment for what a
  // transition does). Waits for in-flight writes of those chunks first. Not durable until Commit.
  virtual Status SetChunkPath(SeqId seq, uint32_t layer, uint64_t chunk_begin, uint64_t chunk_end,
                              KvPath path) = 0;
  Status SetChunkPath(SeqId seq, uint32_t layer, uint64_t chunk, KvPath path) {
    return SetChunkPath(seq, layer, chunk, chunk + 1, path);
  }
  // Hints the kernel to read the PAGE chunks of the range into the page cache (WILLNEED).
  virtual Status Prefetch(const KvRange& range) = 0;
  // Turns the kernel's readahead off on the buffered descriptor (POSIX_FADV_RANDOM), for the
  // dual placement: readahead past the end of a PAGE run pulls DIRECT chunks into the page cache,
  // where they are never hit and push the PAGE set out, and dual reads PAGE chunks whole (with
  // WILLNEED for exactly them), so it needs none. The pagecache policy keeps the default.
  Status DisableBufferedReadahead();
  virtual Result<KvChunkLocation> ChunkLocation(SeqId seq, uint32_t layer, uint64_t chunk) const = 0;

  // Waits for every write in flight and returns the first write error. A failed chunk write is
  // not retried and is sticky: every later Flush, Commit and Drop returns it (so no index ever
  // names the lost chunk); reopening the store goes back to the last committed state.
  virtual Status Flush() = 0;
  // Makes every sequence durable as described in the file comment.
  virtual Status Commit() = 0;

  virtual const KvStoreStats& stats() const = 0;
  virtual void set_verify_checksums(bool on) = 0;
  virtual std::string_view engine_name() const = 0;  // "io_uring" or "threadpool"
  virtual Store& store() = 0;
};

}  // namespace dualblade::store
