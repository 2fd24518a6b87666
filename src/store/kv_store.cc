// KvStore: sequences, appends, chunk writes, flush and commit. Paths are in kv_store_paths.cc,
// reads in kv_read.cc, the index codec in kv_index.cc.
#include <fcntl.h>

#include <algorithm>
#include <cstring>
#include <ctime>

#include "common/clock.h"
#include "common/units.h"
#include "store/codec.h"
#include "store/kv_store_impl.h"

namespace dualblade::store {

namespace {
uint64_t NowUnixSeconds() { return static_cast<uint64_t>(std::time(nullptr)); }
std::string Where(SeqId seq, uint32_t layer, uint64_t chunk) {
  return "sequence " + std::to_string(seq) + " layer " + std::to_string(layer) + " chunk " +
         std::to_string(chunk);
}
}  // namespace

void WriteOp::OnIoComplete(IoRequest* r) {
  if (!r->status.ok() && status.ok()) {
    status = r->status.Annotate("write of " + Where(seq->id, layer, chunk));
  }
  if (--remaining == 0) store->NoteWriteDone(this);
}

Result<std::unique_ptr<KvStore>> KvStore::Open(Store* store, const KvStoreOptions& opts) {
  if (store->device().read_only()) {
    return Status::InvalidArgument(store->device().info().path +
                                   " was opened read-only; the KV store needs it writable");
  }
  IoEngineOptions eo;
  eo.queue_depth = std::max<uint32_t>(opts.queue_depth, 1);
  eo.max_request_bytes = opts.max_request_bytes;
  eo.force_threadpool = opts.force_threadpool;
  eo.fault_hook = opts.fault_hook;
  DB_ASSIGN_OR_RETURN(std::unique_ptr<IoEngine> engine, CreateIoEngine(&store->device(), eo));
  auto kv = std::make_unique<KvStoreImpl>(store, opts, std::move(engine));
  // Mapped and registered now, while the engine is idle (see KvStoreImpl::arenas_).
  kv->AddStagingArena();
  if (const MetadataRecord* rec = store->FindRecord(kRecordSequenceIndex)) {
    SeqId next = 1;
    DB_RETURN_IF_ERROR(DecodeSequenceIndex(*rec, *store, &kv->sequences(), &next)
                           .Annotate(store->device().info().path));
    kv->set_next_id(next);
  }
  // Bring back the rows of every partial last chunk: they become the in-memory tails again.
  for (auto& [id, s] : kv->sequences()) {
    const KvLayout& lay = s->layout;
    const uint64_t ct = lay.geometry.chunk_tokens;
    for (uint32_t li = 0; li < s->layers.size(); ++li) {
      LayerState& l = s->layers[li];
      const uint64_t partial = l.n_tokens % ct;
      if (partial == 0) continue;
      const uint64_t chunk = l.n_tokens / ct;
      const KvChunkLocation loc = kv->Locate(*s, l, chunk);
      AlignedBuffer tail(2 * loc.part_bytes);
      DB_RETURN_IF_ERROR(store->device().PreadDirect(loc.k_offset_bytes,
                                                     {tail.data(), loc.part_bytes}));
      DB_RETURN_IF_ERROR(store->device().PreadDirect(
          loc.v_offset_bytes, {tail.data() + loc.part_bytes, loc.part_bytes}));
      const uint64_t n = partial * lay.geometry.row_bytes();
      if (opts.verify_checksums &&
          (kv->Hash(tail.data(), n) != l.chunks[chunk].k_hash ||
           kv->Hash(tail.data() + loc.part_bytes, n) != l.chunks[chunk].v_hash)) {
        return Status::Corruption("checksum mismatch in the tail of " + Where(id, li, chunk));
      }
      l.tail = std::move(tail);
      l.tail_persisted_tokens = partial;
    }
  }
  return std::unique_ptr<KvStore>(std::move(kv));
}

KvStoreImpl::KvStoreImpl(Store* store, const KvStoreOptions& opts,
                         std::unique_ptr<IoEngine> engine)
    : store_(store), opts_(opts), engine_(std::move(engine)) {
  max_request_bytes_ = opts.max_request_bytes;
  if (max_request_bytes_ == 0) max_request_bytes_ = store->device().info().max_transfer_bytes;
  if (max_request_bytes_ == 0) max_request_bytes_ = 1ull << 20;
  slot_bytes_ = 2 * max_request_bytes_;
}

KvStoreImpl::~KvStoreImpl() {
  // Requests in the kernel point at buffers owned here: wait for them before anything is freed.
  (void)DrainEngine();
}

Status KvStoreImpl::ReapSome(size_t min_complete) {
  reaped_.clear();
  min_complete = std::min(min_complete, engine_->outstanding());
  DB_RETURN_IF_ERROR(engine_->Reap(min_complete, &reaped_));
  for (IoRequest* r : reaped_) reinterpret_cast<IoTicket*>(r->user_tag)->OnIoComplete(r);
  return Status::OK();
}

void KvStoreImpl::DirectReadStarted() {
  if (direct_reads_out_++ == 0) direct_busy_since_ns_ = NowNanos();
}

void KvStoreImpl::DirectReadDone() {
  if (direct_reads_out_ > 0 && --direct_reads_out_ == 0)
    stats_.read_direct_busy_ns += NowNanos() - direct_busy_since_ns_;
}

uint64_t KvStoreImpl::Hash(const uint8_t* p, uint64_t n) {
  const uint64_t t0 = NowNanos();
  const uint64_t h = XXH3_64bits(p, n);
  stats_.checksum_ns += NowNanos() - t0;
  stats_.checksum_bytes += n;
  return h;
}

Result<Sequence*> KvStoreImpl::Find(SeqId seq) const {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) return Status::NotFound("no KV sequence " + std::to_string(seq));
  return it->second.get();
}

Result<const LayerState*> KvStoreImpl::FindLayer(SeqId seq, uint32_t layer) const {
  DB_ASSIGN_OR_RETURN(Sequence * s, Find(seq));
  if (layer >= s->layers.size()) {
    return Status::InvalidArgument("sequence " + std::to_string(seq) + " has no layer " +
                                   std::to_string(layer));
  }
  return &s->layers[layer];
}

size_t KvStoreImpl::ExtentOf(const LayerState& l, uint64_t chunk) const {
  auto it = std::upper_bound(
      l.extents.begin(), l.extents.end(), chunk,
      [](uint64_t c, const SegmentExtent& e) { return c < e.first_chunk; });
  DB_CHECK(it != l.extents.begin());
  --it;
  DB_CHECK(chunk < it->first_chunk + it->n_chunks);
  return static_cast<size_t>(it - l.extents.begin());
}

KvChunkLocation KvStoreImpl::Locate(const Sequence& s, const LayerState& l, uint64_t chunk) const {
  const SegmentExtent& e = l.extents[ExtentOf(l, chunk)];
  const uint64_t part = s.layout.chunk_part_bytes();
  const uint64_t base = store_->OffsetBytes(e.extent);
  KvChunkLocation loc;
  loc.part_bytes = part;
  loc.k_offset_bytes = base + (chunk - e.first_chunk) * part;
  loc.v_offset_bytes = base + (e.n_chunks + chunk - e.first_chunk) * part;
  return loc;
}

Result<SegmentExtent> KvStoreImpl::AllocateExtent(const KvLayout& layout, uint64_t first_chunk,
                                                  uint64_t n_chunks) {
  Result<Extent> e = store_->allocator().Allocate(layout.extent_blocks(n_chunks));
  if (!e.ok()) {
    if (!e.status().IsNoSpace()) return e.status();
    return Status::NoSpace("the store has no free run of " +
                           FormatBytes(layout.extent_blocks(n_chunks) * layout.block_bytes) +
                           " for " + std::to_string(n_chunks) + " KV chunks");
  }
  return SegmentExtent{*e, first_chunk, n_chunks};
}

Result<SeqId> KvStoreImpl::CreateSequence(const KvGeometry& geometry,
                                          std::string_view model_identity) {
  DB_RETURN_IF_ERROR(geometry.Validate());
  auto s = std::make_unique<Sequence>();
  s->id = next_id_;
  s->model_identity = std::string(model_identity);
  s->layout = KvLayout{geometry, store_->superblock().block_bytes};
  s->last_use_unix_s = NowUnixSeconds();
  s->layers.resize(geometry.n_layer);
  const uint64_t n_chunks = s->layout.ChunksForTokens(geometry.capacity_tokens);
  for (LayerState& l : s->layers) {
    Result<SegmentExtent> e = AllocateExtent(s->layout, 0, n_chunks);
    if (!e.ok()) {
      FreeSequence(*s);  // roll back the layers allocated so far
      return e.status();
    }
    l.extents.push_back(*e);
    l.chunks.assign(n_chunks, ChunkMeta{opts_.default_path, 0, 0});
  }
  ++next_id_;
  const SeqId id = s->id;
  seqs_.emplace(id, std::move(s));
  return id;
}

void KvStoreImpl::FreeSequence(Sequence& s) {
  for (LayerState& l : s.layers) {
    for (const SegmentExtent& e : l.extents) {
      // Drop cached pages so a later owner of these blocks never meets them (and memory returns).
      (void)posix_fadvise(store_->device().buffered_fd(),
                          static_cast<off_t>(store_->OffsetBytes(e.extent)),
                          static_cast<off_t>(store_->LengthBytes(e.extent)), POSIX_FADV_DONTNEED);
      DB_CHECK(store_->allocator().Free(e.extent).ok());
    }
    l.extents.clear();
  }
}

Status KvStoreImpl::Drop(SeqId seq) {
  DB_ASSIGN_OR_RETURN(Sequence * s, Find(seq));
  DB_RETURN_IF_ERROR(Flush());
  FreeSequence(*s);
  seqs_.erase(seq);
  return Commit();
}

std::vector<SeqId> KvStoreImpl::Sequences() const {
  std::vector<SeqId> ids;
  for (const auto& [id, s] : seqs_) ids.push_back(id);
  return ids;
}

Result<KvSequenceInfo> KvStoreImpl::Describe(SeqId seq) const {
  DB_ASSIGN_OR_RETURN(Sequence * s, Find(seq));
  KvSequenceInfo info;
  info.id = s->id;
  info.model_identity = s->model_identity;
  info.geometry = s->layout.geometry;
  info.layout = s->layout;
  info.last_use_unix_s = s->last_use_unix_s;
  for (const LayerState& l : s->layers) {
    info.n_tokens.push_back(l.n_tokens);
    info.capacity_tokens.push_back(l.capacity_chunks() * s->layout.geometry.chunk_tokens);
  }
  return info;
}

Status KvStoreImpl::Grow(Sequence& s, uint32_t layer, uint64_t need_tokens) {
  LayerState& l = s.layers[layer];
  const uint64_t have = l.capacity_chunks();
  const uint64_t need = s.layout.ChunksForTokens(need_tokens) - have;
  const uint64_t wanted = std::max(need, have * opts_.growth_percent / 100);
  Result<SegmentExtent> e = AllocateExtent(s.layout, have, wanted);
  if (!e.ok() && e.status().IsNoSpace() && wanted > need) e = AllocateExtent(s.layout, have, need);
  if (!e.ok()) return e.status().Annotate("growing " + Where(s.id, layer, have));
  const KvPath path = l.chunks.empty() ? opts_.default_path : l.chunks.back().path;
  l.extents.push_back(*e);
  l.chunks.resize(have + e->n_chunks, ChunkMeta{path, 0, 0});
  return Status::OK();
}

Status KvStoreImpl::Append(SeqId seq, uint32_t layer, const void* k_rows, const void* v_rows,
                           uint64_t n_tokens) {
  DB_ASSIGN_OR_RETURN(Sequence * s, Find(seq));
  if (layer >= s->layers.size()) {
    return Status::InvalidArgument("sequence " + std::to_string(seq) + " has no layer " +
                                   std::to_string(layer));
  }
  LayerState& l = s->layers[layer];
  const KvGeometry& g = s->layout.geometry;
  const uint64_t ct = g.chunk_tokens;
  if (l.n_tokens + n_tokens > l.capacity_chunks() * ct) {
    DB_RETURN_IF_ERROR(Grow(*s, layer, l.n_tokens + n_tokens));
  }
  s->last_use_unix_s = NowUnixSeconds();
  const uint64_t row = g.row_bytes();
  const uint64_t part = s->layout.chunk_part_bytes();
  const auto* k = static_cast<const uint8_t*>(k_rows);
  const auto* v = static_cast<const uint8_t*>(v_rows);
  while (n_tokens > 0) {
    const uint64_t in_chunk = l.n_tokens % ct;
    const uint64_t n = std::min(n_tokens, ct - in_chunk);
    if (l.tail.empty()) l.tail = TakeChunkBuffer(2 * part);
    std::memcpy(l.tail.data() + in_chunk * row, k, n * row);
    std::memcpy(l.tail.data() + part + in_chunk * row, v, n * row);
    l.n_tokens += n;
    k += n * row;
    v += n * row;
    n_tokens -= n;
    if (in_chunk + n == ct) {
      const uint64_t chunk = l.n_tokens / ct - 1;
      l.tail_persisted_tokens = 0;
      StartChunkWrite(*s, layer, chunk, std::move(l.tail), ct, /*track=*/true);
      l.tail = AlignedBuffer();
      // Bound the memory that writes hold; completions free their buffers.
      while (write_bytes_in_flight_ > opts_.write_inflight_bytes) DB_RETURN_IF_ERROR(ReapSome(1));
    }
  }
  return Status::OK();
}

void KvStoreImpl::StartChunkWrite(Sequence& s, uint32_t layer, uint64_t chunk, AlignedBuffer buf,
                                  uint64_t n_rows, bool track) {
  LayerState& l = s.layers[layer];
  const KvChunkLocation loc = Locate(s, l, chunk);
  const uint64_t row_bytes = n_rows * s.layout.geometry.row_bytes();
  ChunkMeta& meta = l.chunks[chunk];
  meta.k_hash = Hash(buf.data(), row_bytes);
  meta.v_hash = Hash(buf.data() + loc.part_bytes, row_bytes);
  // Only the blocks that hold rows are written (a partial tail is shorter than a part).
  const uint64_t len = AlignUp(row_bytes, s.layout.block_bytes);

  auto op = std::make_shared<WriteOp>();
  op->store = this;
  op->seq = &s;
  op->layer = layer;
  op->chunk = chunk;
  op->buf = std::move(buf);
  op->track = track;
  const IoPath path = meta.path == KvPath::kDirect ? IoPath::kDirect : IoPath::kBuffered;
  for (int i = 0; i < 2; ++i) {
    IoRequest& r = op->req[i];
    r.op = IoOp::kWrite;
    r.path = path;
    r.offset_bytes = i == 0 ? loc.k_offset_bytes : loc.v_offset_bytes;
    r.buf = op->buf.data() + (i == 0 ? 0 : loc.part_bytes);
    r.len_bytes = len;
    r.user_tag = reinterpret_cast<uint64_t>(static_cast<IoTicket*>(op.get()));
  }
  (meta.path == KvPath::kDirect ? stats_.write_bytes_direct : stats_.write_bytes_page) += 2 * len;
  write_bytes_in_flight_ += op->buf.size();
  if (track) l.writing[chunk] = op;
  inflight_writes_[op.get()] = op;
  engine_->Enqueue(&op->req[0]);
  engine_->Enqueue(&op->req[1]);
  // Submit now; collect whatever already finished without waiting.
  Status st = ReapSome(0);
  if (!st.ok() && write_error_.ok()) write_error_ = st;
}

AlignedBuffer KvStoreImpl::TakeChunkBuffer(uint64_t bytes) {
  auto it = spare_chunk_bufs_.find(bytes);
  if (it == spare_chunk_bufs_.end() || it->second.empty()) return AlignedBuffer(bytes);  // zeroed
  AlignedBuffer buf = std::move(it->second.back());
  it->second.pop_back();
  spare_chunk_bytes_ -= bytes;
  // A tail is written as whole blocks: what lies past its rows must be zeros, not old rows.
  std::memset(buf.data(), 0, buf.size());
  return buf;
}

void KvStoreImpl::ReturnChunkBuffer(AlignedBuffer buf) {
  // Writes in flight and spares together stay within write_inflight_bytes, the bound the caller
  // budgeted for chunk-write buffers.
  if (buf.empty() ||
      write_bytes_in_flight_ + spare_chunk_bytes_ + buf.size() > opts_.write_inflight_bytes)
    return;
  spare_chunk_bytes_ += buf.size();
  spare_chunk_bufs_[buf.size()].push_back(std::move(buf));
}

void KvStoreImpl::NoteWriteDone(WriteOp* op) {
  if (!op->status.ok() && write_error_.ok()) write_error_ = op->status;
  write_bytes_in_flight_ -= op->buf.size();
  ReturnChunkBuffer(std::move(op->buf));
  if (op->track) op->seq->layers[op->layer].writing.erase(op->chunk);
  inflight_writes_.erase(op);  // may destroy op: nothing after this line touches it
}

Status KvStoreImpl::WaitForWrites(const LayerState& l, uint64_t begin, uint64_t end) {
  for (;;) {
    auto it = l.writing.lower_bound(begin);
    if (it == l.writing.end() || it->first >= end) return Status::OK();
    DB_RETURN_IF_ERROR(ReapSome(1));
  }
}

Status KvStoreImpl::Flush() {
  while (!inflight_writes_.empty()) DB_RETURN_IF_ERROR(ReapSome(1));
  // Sticky: committing after a lost chunk write would name bytes that never reached the disk.
  return write_error_;
}

Status KvStoreImpl::WriteTails() {
  for (auto& [id, s] : seqs_) {
    const uint64_t ct = s->layout.geometry.chunk_tokens;
    for (uint32_t li = 0; li < s->layers.size(); ++li) {
      LayerState& l = s->layers[li];
      const uint64_t partial = l.n_tokens % ct;
      if (partial == 0 || partial == l.tail_persisted_tokens) continue;
      // The tail stays in memory: the write goes from a copy, as whole zero-padded blocks.
      AlignedBuffer copy = TakeChunkBuffer(l.tail.size());
      std::memcpy(copy.data(), l.tail.data(), l.tail.size());
      StartChunkWrite(*s, li, l.n_tokens / ct, std::move(copy), partial, /*track=*/false);
      l.tail_persisted_tokens = partial;
    }
  }
  Status st = Flush();
  if (!st.ok()) {
    // Which tail failed is unknown here: rewrite every tail at the next Commit.
    for (auto& [id, s] : seqs_) {
      for (LayerState& l : s->layers) l.tail_persisted_tokens = 0;
    }
  }
  return st;
}

Status KvStoreImpl::Commit() {
  DB_RETURN_IF_ERROR(Flush());
  DB_RETURN_IF_ERROR(WriteTails());
  // Data durable before the metadata that names it.
  DB_RETURN_IF_ERROR(store_->device().Sync());
  return CommitIndex();
}

Status KvStoreImpl::CommitIndex() {
  store_->SetRecord(kRecordSequenceIndex,
                    MetadataRecord{kSequenceIndexVersion, EncodeSequenceIndex(seqs_, next_id_)});
  return store_->Commit();
}

}  // namespace dualblade::store
