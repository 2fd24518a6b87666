// Internals of KvStore shared by its translation units (kv_store.cc, kv_store_paths.cc,
// kv_read.cc, kv_index.cc). Not part of the public interface.
//
// Thread-safety: as KvStore (one owning thread).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/aligned_buffer.h"
#include "io/io_buffer.h"
#include "store/kv_store.h"

namespace dualblade::store {

// One extent of a segment: K parts of chunks [first_chunk, first_chunk + n_chunks), then their V
// parts.
struct SegmentExtent {
  Extent extent;
  uint64_t first_chunk = 0;
  uint64_t n_chunks = 0;
};

struct ChunkMeta {
  KvPath path = KvPath::kDirect;
  // XXH3-64 of the chunk's K rows and V rows written so far (a full chunk, or the committed part
  // of the last, partial chunk). Meaningless for chunks not yet written.
  uint64_t k_hash = 0;
  uint64_t v_hash = 0;
};

// Staging memory for one read unit: a slot of the store's huge-page arenas, or a heap buffer
// when the arenas are at their cap or the unit is larger than a slot.
struct Staging {
  uint8_t* data = nullptr;
  uint64_t bytes = 0;
  bool from_arena = false;
  AlignedBuffer heap;
};

// Completion hook carried in IoRequest::user_tag.
class IoTicket {
 public:
  virtual ~IoTicket() = default;
  virtual void OnIoComplete(IoRequest* req) = 0;
};

struct WriteOp;

struct LayerState {
  std::vector<SegmentExtent> extents;  // ordered by first_chunk, contiguous from chunk 0
  std::vector<ChunkMeta> chunks;       // one per chunk of capacity
  uint64_t n_tokens = 0;
  // Rows of chunk n_tokens / chunk_tokens: K part then V part, each chunk_part_bytes, zero padded.
  // Empty while n_tokens is a multiple of chunk_tokens.
  AlignedBuffer tail;
  // Tokens of the partial chunk that are on disk under the committed-to-be hashes.
  uint64_t tail_persisted_tokens = 0;
  // Full chunks whose write is in flight; their rows are served from here meanwhile.
  std::map<uint64_t, std::shared_ptr<WriteOp>> writing;

  uint64_t capacity_chunks() const { return chunks.size(); }
};

struct Sequence {
  SeqId id = 0;
  std::string model_identity;
  KvLayout layout;
  uint64_t last_use_unix_s = 0;
  std::vector<LayerState> layers;
};

// A chunk write: the K part and the V part of one chunk, from one buffer.
struct WriteOp final : IoTicket {
  class KvStoreImpl* store = nullptr;
  Sequence* seq = nullptr;
  uint32_t layer = 0;
  uint64_t chunk = 0;
  AlignedBuffer buf;  // K part then V part
  IoRequest req[2];
  int remaining = 2;
  Status status;
  bool track = true;  // a full chunk listed in LayerState::writing (a tail write is not)

  void OnIoComplete(IoRequest* req) override;
};

class KvStoreImpl final : public KvStore {
 public:
  KvStoreImpl(Store* store, const KvStoreOptions& opts, std::unique_ptr<IoEngine> engine);
  ~KvStoreImpl() override;

  Result<SeqId> CreateSequence(const KvGeometry& geometry,
                               std::string_view model_identity) override;
  Status Drop(SeqId seq) override;
  std::vector<SeqId> Sequences() const override;
  Result<KvSequenceInfo> Describe(SeqId seq) const override;
  Status Append(SeqId seq, uint32_t layer, const void* k_rows, const void* v_rows,
                uint64_t n_tokens) override;
  Result<std::unique_ptr<KvReadBatch>> StartRead(std::span<const KvRange> ranges) override;
  Result<std::unique_ptr<KvReadBatch>> StartReadInto(std::span<const KvRange> ranges,
                                                     const KvTargetFn& targets) override;
  bool RegisterMemory(std::span<uint8_t> mem) override;
  bool UnregisterMemory(uint8_t* mem) override;
  Status ReadChunks(std::span<const KvRange> ranges, const KvChunkFn& fn) override;
  Status Read(const KvRange& range, void* k_out, void* v_out) override;
  Result<KvPath> ChunkPath(SeqId seq, uint32_t layer, uint64_t chunk) const override;
  Status SetChunkPath(SeqId seq, uint32_t layer, uint64_t chunk_begin, uint64_t chunk_end,
                      KvPath path) override;
  Status Prefetch(const KvRange& range) override;
  Result<KvChunkLocation> ChunkLocation(SeqId seq, uint32_t layer, uint64_t chunk) const override;
  Status Flush() override;
  Status Commit() override;
  const KvStoreStats& stats() const override { return stats_; }
  void set_verify_checksums(bool on) override { opts_.verify_checksums = on; }
  std::string_view engine_name() const override { return engine_->name(); }
  Store& store() override { return *store_; }

  // --- shared with the read batch and the index codec ---
  const KvStoreOptions& options() const { return opts_; }
  KvStoreStats& mutable_stats() { return stats_; }
  // A DIRECT read unit went to the engine / came back: the union of those spans is
  // stats_.read_direct_busy_ns.
  void DirectReadStarted();
  void DirectReadDone();
  IoEngine& engine() { return *engine_; }
  uint64_t max_request_bytes() const { return max_request_bytes_; }
  // Submits what is queued and dispatches completions to their tickets; waits for at least
  // min_complete (0: only what has already finished).
  Status ReapSome(size_t min_complete);
  // The sequence or NotFound.
  Result<Sequence*> Find(SeqId seq) const;
  Result<const LayerState*> FindLayer(SeqId seq, uint32_t layer) const;
  // Byte offsets of a chunk's K and V parts. REQUIRES: chunk < capacity.
  KvChunkLocation Locate(const Sequence& s, const LayerState& l, uint64_t chunk) const;
  // Index of the extent holding chunk. REQUIRES: chunk < capacity.
  size_t ExtentOf(const LayerState& l, uint64_t chunk) const;
  // XXH3 of bytes, timed into stats.
  uint64_t Hash(const uint8_t* p, uint64_t n);
  void NoteWriteDone(WriteOp* op);
  // Staging for reads (contents are not zeroed). REQUIRES: the previous owner's I/O finished.
  Staging TakeStaging(uint64_t size_bytes);
  void ReturnStaging(Staging& s);
  // Maps one more staging arena (REQUIRES: arenas_.size() < kMaxStagingArenas) and registers it
  // with the engine when the engine is idle.
  void AddStagingArena();
  // Registers the arenas mapped while the engine was busy, if it is idle now.
  void RegisterIdleArenas();
  // Waits until the engine has nothing in flight (completions go to their tickets as usual).
  Status DrainEngine();
  // A zeroed chunk buffer of `bytes` (a spare one when there is one), and its return once its
  // write finished.
  AlignedBuffer TakeChunkBuffer(uint64_t bytes);
  void ReturnChunkBuffer(AlignedBuffer buf);

  std::map<SeqId, std::unique_ptr<Sequence>>& sequences() { return seqs_; }
  SeqId next_id() const { return next_id_; }
  void set_next_id(SeqId id) { next_id_ = id; }

 private:
  // Allocates one extent holding n_chunks chunks for a layer (NoSpace leaves nothing behind).
  Result<SegmentExtent> AllocateExtent(const KvLayout& layout, uint64_t first_chunk,
                                       uint64_t n_chunks);
  Status Grow(Sequence& s, uint32_t layer, uint64_t need_tokens);
  // Starts the write of a layer's chunk from buf holding n_rows rows in each part.
  void StartChunkWrite(Sequence& s, uint32_t layer, uint64_t chunk, AlignedBuffer buf,
                       uint64_t n_rows, bool track);
  // Waits until no write of chunks [begin, end) of the layer is in flight.
  Status WaitForWrites(const LayerState& l, uint64_t begin, uint64_t end);
  // Writes back and drops the page cache over a byte range (PAGE -> DIRECT demotion).
  Status DropPages(uint64_t offset_bytes, uint64_t len_bytes);
  Status WriteTails();
  Status CommitIndex();
  void FreeSequence(Sequence& s);

  Store* store_;
  KvStoreOptions opts_;
  std::unique_ptr<IoEngine> engine_;
  uint64_t max_request_bytes_ = 0;
  std::map<SeqId, std::unique_ptr<Sequence>> seqs_;
  SeqId next_id_ = 1;
  // Every write in the kernel, owned here until its completion arrives.
  std::map<WriteOp*, std::shared_ptr<WriteOp>> inflight_writes_;
  uint64_t write_bytes_in_flight_ = 0;
  Status write_error_;
  KvStoreStats stats_;
  uint32_t direct_reads_out_ = 0;
  uint64_t direct_busy_since_ns_ = 0;
  std::vector<IoRequest*> reaped_;
  // Read staging arenas of read_staging_bytes each, in slots of 2 * max_request_bytes (one
  // coalesced K run and its V run) on huge pages, so a 1 MiB request is a few physically
  // contiguous segments instead of 256 pages (virtio-blk takes 254 segments per command and would
  // split it). The first is mapped, faulted in and registered with the engine at Open, so the
  // first read batch does not pay for mapping it (5 ms for 16 MiB on the development VM, where
  // page faults are dear) and reads from it go out as fixed-buffer reads that pin no pages per
  // request, as iobench's do. Another is mapped whenever every slot is taken (a prefetcher with several
  // batches in flight), up to kMaxStagingArenas, and registered as soon as the engine is idle
  // (registration replaces the engine's buffer table, which it only allows with nothing in
  // flight). They stay mapped for reuse until the KvStore closes.
  struct Arena {
    IoBuffer mem;
    bool registered = false;
  };
  static constexpr size_t kMaxStagingArenas = 8;
  std::vector<Arena> arenas_;
  uint64_t slot_bytes_ = 0;
  std::vector<uint8_t*> free_slots_;
  bool arenas_unregistered_ = false;  // some arena waits for an idle engine to be registered
  // Chunk buffers (K part then V part) of finished writes, by size, kept for the next tails so
  // that starting a tail does not map and fault in fresh memory (aligned_alloc of 512 KiB is an
  // mmap: 2-3 ms of page faults on such machines, once per layer every chunk_tokens tokens, on
  // the decode path). Spares and writes in flight together stay within write_inflight_bytes.
  std::map<uint64_t, std::vector<AlignedBuffer>> spare_chunk_bufs_;
  uint64_t spare_chunk_bytes_ = 0;
};

// The sequence index record (metadata record kRecordSequenceIndex). Encode writes every sequence
// and the next id; Decode rebuilds them (tails empty), checking every size and extent against the
// store (Corruption otherwise).
inline constexpr uint32_t kSequenceIndexVersion = 1;
std::vector<uint8_t> EncodeSequenceIndex(const std::map<SeqId, std::unique_ptr<Sequence>>& seqs,
                                         SeqId next_id);
Status DecodeSequenceIndex(const MetadataRecord& record, const Store& store,
                           std::map<SeqId, std::unique_ptr<Sequence>>* seqs, SeqId* next_id);

}  // namespace dualblade::store
