// KvStore reads: a batch plans its ranges into units (a memory-resident chunk, or a run of
// adjacent on-disk chunks of one extent and one path, at most max_request_bytes per part), submits
// as many runs as its staging allows, and delivers chunks as their K and V requests complete.
// With caller targets (StartReadInto) a run whose targets can take reads in place (aligned, room
// for whole blocks) is read straight into them and holds no staging, still as one K and one V
// request: plain ones when each side's targets lie back to back in memory, vectored ones (an iovec
// per chunk part) otherwise. One request per chunk part instead (256 KiB for the trace shape)
// kept the development VM's virtio disk busy at a fraction of its bandwidth: the block layer did
// not merge them back in steady state. Other runs are staged and their rows copied in.
//
// Unit states: planned -> submitted (in the kernel, holding a staging buffer) -> ready (both
// requests back) -> delivered (buffer returned; the next planned unit is submitted). A failed
// request fails the batch: nothing more is submitted, and what is in the kernel drains.
#include <fcntl.h>

#include <algorithm>
#include <cstring>
#include <deque>

#include "store/kv_store_impl.h"

namespace dualblade::store {

const char* KvSourceName(KvSource s) {
  switch (s) {
    case KvSource::kMemory: return "memory";
    case KvSource::kPage: return "page";
    case KvSource::kDirect: return "direct";
  }
  return "unknown";
}

void KvStoreImpl::AddStagingArena() {
  DB_CHECK(arenas_.size() < kMaxStagingArenas);
  const uint64_t n = std::max<uint64_t>(1, opts_.read_staging_bytes / slot_bytes_);
  arenas_.push_back(Arena{IoBuffer(n * slot_bytes_), false});
  uint8_t* base = arenas_.back().mem.data();
  for (uint64_t i = n; i-- > 0;) free_slots_.push_back(base + i * slot_bytes_);
  arenas_unregistered_ = true;
  RegisterIdleArenas();
}

void KvStoreImpl::RegisterIdleArenas() {
  if (!arenas_unregistered_ || engine_->outstanding() > 0) return;
  for (Arena& a : arenas_) {
    // Refused (thread-pool engine, memlock limit): requests from it pin their pages instead.
    if (!a.registered) a.registered = engine_->RegisterBuffer(a.mem.data(), a.mem.size());
  }
  arenas_unregistered_ = false;
}

Status KvStoreImpl::DrainEngine() {
  while (engine_->outstanding() > 0) DB_RETURN_IF_ERROR(ReapSome(1));
  return Status::OK();
}

bool KvStoreImpl::RegisterMemory(std::span<uint8_t> mem) {
  if (!DrainEngine().ok()) return false;
  return engine_->RegisterBuffer(mem.data(), mem.size());
}

bool KvStoreImpl::UnregisterMemory(uint8_t* mem) {
  // The store's own arenas stay registered until it closes.
  for (const Arena& a : arenas_) {
    if (a.mem.data() == mem) return false;
  }
  if (!DrainEngine().ok()) return false;
  return engine_->UnregisterBuffer(mem);
}

Staging KvStoreImpl::TakeStaging(uint64_t size_bytes) {
  if (size_bytes <= slot_bytes_ && free_slots_.empty() && arenas_.size() < kMaxStagingArenas) {
    AddStagingArena();
  }
  Staging s;
  s.bytes = size_bytes;
  if (size_bytes <= slot_bytes_ && !free_slots_.empty()) {
    s.data = free_slots_.back();
    s.from_arena = true;
    free_slots_.pop_back();
  } else {
    s.heap = AlignedBuffer(size_bytes);
    s.data = s.heap.data();
  }
  return s;
}

void KvStoreImpl::ReturnStaging(Staging& s) {
  if (s.from_arena) free_slots_.push_back(s.data);
  s = Staging();
}

namespace {

class ReadBatchImpl;

struct ReadUnit final : IoTicket {
  ReadBatchImpl* batch = nullptr;
  size_t range_index = 0;
  SeqId seq = 0;
  uint32_t layer = 0;
  uint64_t first_chunk = 0;
  uint64_t n_chunks = 0;
  KvSource source = KvSource::kDirect;
  uint64_t range_begin = 0, range_end = 0;  // tokens requested
  uint64_t chunk_tokens = 0, row_bytes = 0, part_bytes = 0;
  uint64_t k_offset_bytes = 0, v_offset_bytes = 0;
  std::vector<ChunkMeta> meta;  // expected hashes, per chunk
  std::vector<KvChunkTarget> targets;  // per chunk (StartReadInto), else empty
  bool in_place = false;               // the requests read into targets, not staging
  bool vectored = false;               // in place, targets not back to back: iovecs
  std::vector<iovec> k_iov, v_iov;     // per chunk part, for vectored requests
  Staging buf;                  // K parts then V parts
  IoRequest req[2];             // K, V
  int remaining = 2;
  Status status;

  void OnIoComplete(IoRequest* r) override;
};

// A chunk served from memory, copied at StartRead (rows already clipped to the range) into the
// batch, or into its target.
struct MemChunk {
  size_t range_index = 0;
  SeqId seq = 0;
  uint32_t layer = 0;
  uint64_t chunk = 0, token_begin = 0;
  uint32_t n_tokens = 0;
  std::vector<uint8_t> k, v;
  const uint8_t* k_at = nullptr;  // the rows: in k and v, or in the target
  const uint8_t* v_at = nullptr;
  uint64_t row_bytes = 0;
};

class ReadBatchImpl final : public KvReadBatch {
 public:
  explicit ReadBatchImpl(KvStoreImpl* store) : store_(store) {}
  ~ReadBatchImpl() override {
    while (in_kernel_ > 0) {
      if (!store_->ReapSome(1).ok()) break;
    }
    for (auto& u : units_) {
      if (u->buf.data != nullptr) store_->ReturnStaging(u->buf);
    }
  }

  Status Plan(std::span<const KvRange> ranges, const KvTargetFn* targets);
  Result<size_t> Poll(bool wait, const KvChunkFn& fn) override;
  bool done() const override {
    return in_kernel_ == 0 && (!failed_.ok() || (mem_done_ && delivered_units_ == units_.size()));
  }
  size_t pending_chunks() const override { return pending_chunks_; }
  // Enqueues the units that staging allows with the engine, in plan order; with direct_only, up
  // to the first PAGE unit. Returns how many.
  size_t SubmitMore(bool direct_only = false);

  KvStoreImpl* store() const { return store_; }
  void UnitDone(ReadUnit* u) {
    --in_kernel_;
    ready_.push_back(u);
  }

 private:
  size_t Deliver(ReadUnit* u, const KvChunkFn& fn);

  KvStoreImpl* store_;
  std::vector<MemChunk> mem_;
  bool mem_done_ = false;
  std::vector<std::unique_ptr<ReadUnit>> units_;
  size_t next_submit_ = 0;
  size_t delivered_units_ = 0;
  size_t in_kernel_ = 0;
  size_t pending_chunks_ = 0;
  uint64_t staging_in_use_ = 0;
  std::deque<ReadUnit*> ready_;
  Status failed_;
};

void ReadUnit::OnIoComplete(IoRequest* r) {
  if (!r->status.ok() && status.ok()) status = r->status;
  if (--remaining == 0) {
    if (source == KvSource::kDirect) batch->store()->DirectReadDone();
    batch->UnitDone(this);
  }
}

Status ReadBatchImpl::Plan(std::span<const KvRange> ranges, const KvTargetFn* targets) {
  for (size_t ri = 0; ri < ranges.size(); ++ri) {
    const KvRange& r = ranges[ri];
    DB_ASSIGN_OR_RETURN(Sequence * s, store_->Find(r.seq));
    if (r.layer >= s->layers.size()) {
      return Status::InvalidArgument("sequence " + std::to_string(r.seq) + " has no layer " +
                                     std::to_string(r.layer));
    }
    const LayerState& l = s->layers[r.layer];
    if (r.token_begin > r.token_end || r.token_end > l.n_tokens) {
      return Status::InvalidArgument("read of tokens [" + std::to_string(r.token_begin) + ", " +
                                     std::to_string(r.token_end) + ") beyond the " +
                                     std::to_string(l.n_tokens) + " tokens of layer " +
                                     std::to_string(r.layer));
    }
    s->last_use_unix_s = static_cast<uint64_t>(time(nullptr));
    if (r.token_begin == r.token_end) continue;  // nothing to deliver, not even an empty chunk
    const uint64_t ct = s->layout.geometry.chunk_tokens;
    const uint64_t row = s->layout.geometry.row_bytes();
    const uint64_t part = s->layout.chunk_part_bytes();
    const uint64_t full = l.n_tokens / ct;
    const uint64_t max_run = std::max<uint64_t>(1, store_->max_request_bytes() / part);
    uint64_t c = r.token_begin / ct;
    const uint64_t last = (r.token_end + ct - 1) / ct;
    while (c < last) {
      const uint64_t t0 = std::max(r.token_begin, c * ct);
      const uint64_t t1 = std::min(r.token_end, (c + 1) * ct);
      auto w = l.writing.find(c);
      KvChunkTarget target;
      if (targets != nullptr) {
        target = (*targets)(ri, c);
        if (target.k == nullptr || target.v == nullptr || target.room_bytes < ct * row) {
          return Status::InvalidArgument("the read target of layer " + std::to_string(r.layer) +
                                         " chunk " + std::to_string(c) + " has " +
                                         std::to_string(target.room_bytes) + " bytes of room for " +
                                         std::to_string(ct * row) + " bytes of rows");
        }
      }
      if (c >= full || w != l.writing.end()) {
        const uint8_t* src = c >= full ? l.tail.data() : w->second->buf.data();
        MemChunk m{ri, r.seq, r.layer, c, t0, static_cast<uint32_t>(t1 - t0), {}, {}};
        m.row_bytes = row;
        const uint64_t skip = (t0 - c * ct) * row, n = (t1 - t0) * row;
        if (targets != nullptr) {
          std::memcpy(target.k + skip, src + skip, n);
          std::memcpy(target.v + skip, src + part + skip, n);
          m.k_at = target.k + skip;
          m.v_at = target.v + skip;
        } else {
          m.k.assign(src + skip, src + skip + n);
          m.v.assign(src + part + skip, src + part + skip + n);
          m.k_at = m.k.data();
          m.v_at = m.v.data();
        }
        mem_.push_back(std::move(m));
        ++pending_chunks_;
        ++c;
        continue;
      }
      const SegmentExtent& e = l.extents[store_->ExtentOf(l, c)];
      const KvPath path = l.chunks[c].path;
      uint64_t end = c + 1;
      while (end < last && end < full && end < e.first_chunk + e.n_chunks &&
             end - c < max_run && l.chunks[end].path == path && !l.writing.count(end)) {
        ++end;
      }
      auto u = std::make_unique<ReadUnit>();
      u->batch = this;
      u->range_index = ri;
      u->seq = r.seq;
      u->layer = r.layer;
      u->first_chunk = c;
      u->n_chunks = end - c;
      u->source = path == KvPath::kDirect ? KvSource::kDirect : KvSource::kPage;
      u->range_begin = r.token_begin;
      u->range_end = r.token_end;
      u->chunk_tokens = ct;
      u->row_bytes = row;
      u->part_bytes = part;
      const KvChunkLocation loc = store_->Locate(*s, l, c);
      u->k_offset_bytes = loc.k_offset_bytes;
      u->v_offset_bytes = loc.v_offset_bytes;
      u->meta.assign(l.chunks.begin() + static_cast<ptrdiff_t>(c),
                     l.chunks.begin() + static_cast<ptrdiff_t>(end));
      if (targets != nullptr) {
        u->targets.push_back(target);
        for (uint64_t i = c + 1; i < end; ++i) {
          KvChunkTarget t = (*targets)(ri, i);
          if (t.k == nullptr || t.v == nullptr || t.room_bytes < ct * row) {
            return Status::InvalidArgument("the read target of layer " + std::to_string(r.layer) +
                                           " chunk " + std::to_string(i) + " has no room for " +
                                           std::to_string(ct * row) + " bytes of rows");
          }
          u->targets.push_back(t);
        }
        // Reads in place transfer whole padded parts.
        u->in_place = true;
        for (size_t i = 0; i < u->targets.size(); ++i) {
          const KvChunkTarget& t = u->targets[i];
          const bool aligned = reinterpret_cast<uintptr_t>(t.k) % kDirectIoAlignBytes == 0 &&
                               reinterpret_cast<uintptr_t>(t.v) % kDirectIoAlignBytes == 0;
          if (t.room_bytes < part || (path == KvPath::kDirect && !aligned)) u->in_place = false;
          if (i > 0 && (t.k != u->targets[i - 1].k + part || t.v != u->targets[i - 1].v + part))
            u->vectored = true;
        }
      }
      pending_chunks_ += u->n_chunks;
      units_.push_back(std::move(u));
      c = end;
    }
  }
  // Runs that must wait for staging: ask the kernel to start reading PAGE ones into the cache now.
  const KvStoreOptions& o = store_->options();
  uint64_t budget = o.read_staging_bytes;
  for (auto& u : units_) {
    if (u->in_place) continue;
    const uint64_t bytes = 2 * u->n_chunks * u->part_bytes;
    if (bytes <= budget) {
      budget -= bytes;
      continue;
    }
    budget = 0;
    if (u->source != KvSource::kPage) continue;
    const int fd = store_->store().device().buffered_fd();
    const auto len = static_cast<off_t>(u->n_chunks * u->part_bytes);
    (void)posix_fadvise(fd, static_cast<off_t>(u->k_offset_bytes), len, POSIX_FADV_WILLNEED);
    (void)posix_fadvise(fd, static_cast<off_t>(u->v_offset_bytes), len, POSIX_FADV_WILLNEED);
    store_->mutable_stats().fadvise_willneed += 2;
  }
  return Status::OK();
}

size_t ReadBatchImpl::SubmitMore(bool direct_only) {
  size_t submitted = 0;
  const uint64_t limit = store_->options().read_staging_bytes;
  KvStoreStats& st = store_->mutable_stats();
  while (failed_.ok() && next_submit_ < units_.size()) {
    ReadUnit* u = units_[next_submit_].get();
    if (direct_only && u->source != KvSource::kDirect) return submitted;
    const uint64_t len = u->n_chunks * u->part_bytes;
    const IoPath path = u->source == KvSource::kDirect ? IoPath::kDirect : IoPath::kBuffered;
    auto prepare = [&](IoRequest& r, uint64_t offset, uint8_t* buf, uint64_t n) {
      r.op = IoOp::kRead;
      r.path = path;
      r.offset_bytes = offset;
      r.buf = buf;
      r.len_bytes = n;
      r.user_tag = reinterpret_cast<uint64_t>(static_cast<IoTicket*>(u));
    };
    if (u->in_place && u->vectored) {
      for (const KvChunkTarget& t : u->targets) {
        u->k_iov.push_back({t.k, static_cast<size_t>(u->part_bytes)});
        u->v_iov.push_back({t.v, static_cast<size_t>(u->part_bytes)});
      }
      prepare(u->req[0], u->k_offset_bytes, nullptr, len);
      prepare(u->req[1], u->v_offset_bytes, nullptr, len);
      u->req[0].iov = u->k_iov.data();
      u->req[1].iov = u->v_iov.data();
      u->req[0].iov_count = u->req[1].iov_count = static_cast<uint32_t>(u->n_chunks);
    } else if (u->in_place) {
      prepare(u->req[0], u->k_offset_bytes, u->targets[0].k, len);
      prepare(u->req[1], u->v_offset_bytes, u->targets[0].v, len);
    } else {
      if (in_kernel_ > 0 && staging_in_use_ + 2 * len > limit) return submitted;
      u->buf = store_->TakeStaging(2 * len);
      staging_in_use_ += u->buf.bytes;
      prepare(u->req[0], u->k_offset_bytes, u->buf.data, len);
      prepare(u->req[1], u->v_offset_bytes, u->buf.data + len, len);
    }
    for (IoRequest& r : u->req) store_->engine().Enqueue(&r);
    if (path == IoPath::kDirect) {
      store_->DirectReadStarted();
      st.read_bytes_direct += 2 * len;
      st.read_requests_direct += 2;
      // Staging arenas and caller memory alike: what the engine will send as fixed reads.
      for (const IoRequest& r : u->req) {
        if (store_->engine().UsesRegisteredBuffer(r)) ++st.read_requests_registered;
      }
    } else {
      st.read_bytes_page += 2 * len;
      st.read_requests_page += 2;
    }
    ++in_kernel_;
    ++next_submit_;
    ++submitted;
  }
  return submitted;
}

size_t ReadBatchImpl::Deliver(ReadUnit* u, const KvChunkFn& fn) {
  const uint64_t len = u->n_chunks * u->part_bytes;
  const bool verify = store_->options().verify_checksums;
  size_t n = 0;
  for (uint64_t i = 0; i < u->n_chunks; ++i) {
    const uint64_t c = u->first_chunk + i;
    const uint8_t* k = u->in_place ? u->targets[i].k : u->buf.data + i * u->part_bytes;
    const uint8_t* v = u->in_place ? u->targets[i].v : u->buf.data + i * u->part_bytes + len;
    const uint64_t rows = u->chunk_tokens * u->row_bytes;
    if (verify && (store_->Hash(k, rows) != u->meta[i].k_hash ||
                   store_->Hash(v, rows) != u->meta[i].v_hash)) {
      failed_ = Status::Corruption("checksum mismatch in sequence " + std::to_string(u->seq) +
                                   " layer " + std::to_string(u->layer) + " chunk " +
                                   std::to_string(c) + " (read through the " +
                                   KvSourceName(u->source) + " path)");
      return n;
    }
    const uint64_t t0 = std::max(u->range_begin, c * u->chunk_tokens);
    const uint64_t t1 = std::min(u->range_end, (c + 1) * u->chunk_tokens);
    const uint64_t skip = (t0 - c * u->chunk_tokens) * u->row_bytes;
    if (!u->targets.empty() && !u->in_place) {
      const uint64_t n = (t1 - t0) * u->row_bytes;
      std::memcpy(u->targets[i].k + skip, k + skip, n);
      std::memcpy(u->targets[i].v + skip, v + skip, n);
      k = u->targets[i].k;
      v = u->targets[i].v;
    }
    KvChunkView view{u->range_index, u->seq, u->layer, c, t0, static_cast<uint32_t>(t1 - t0),
                     k + skip, v + skip, u->source};
    fn(view);
    ++n;
  }
  return n;
}

Result<size_t> ReadBatchImpl::Poll(bool wait, const KvChunkFn& fn) {
  if (!failed_.ok()) return failed_;
  size_t n = 0;
  // Reads first, so the device works while the callbacks below run.
  SubmitMore();
  DB_RETURN_IF_ERROR(store_->ReapSome(0));
  if (!mem_done_) {
    for (const MemChunk& m : mem_) {
      fn(KvChunkView{m.range_index, m.seq, m.layer, m.chunk, m.token_begin, m.n_tokens,
                     m.k_at, m.v_at, KvSource::kMemory});
      store_->mutable_stats().read_bytes_memory += 2 * uint64_t{m.n_tokens} * m.row_bytes;
      ++n;
    }
    mem_.clear();
    mem_done_ = true;
  }
  while (wait && n == 0 && ready_.empty() && in_kernel_ > 0) {
    DB_RETURN_IF_ERROR(store_->ReapSome(1));
  }
  while (!ready_.empty()) {
    ReadUnit* u = ready_.front();
    ready_.pop_front();
    ++delivered_units_;
    if (!u->status.ok()) {
      failed_ = u->status.Annotate("read of sequence " + std::to_string(u->seq) + " layer " +
                                   std::to_string(u->layer) + " chunks " +
                                   std::to_string(u->first_chunk) + ".." +
                                   std::to_string(u->first_chunk + u->n_chunks - 1));
    } else {
      n += Deliver(u, fn);
    }
    if (u->buf.data != nullptr) {
      staging_in_use_ -= u->buf.bytes;
      store_->ReturnStaging(u->buf);
    }
    if (!failed_.ok()) return failed_;
    // Hand the freed staging's next reads to the kernel now, not after the units still ready
    // are delivered: the device queue stays full while callbacks run.
    if (SubmitMore() > 0 || ready_.empty()) DB_RETURN_IF_ERROR(store_->ReapSome(0));
  }
  pending_chunks_ -= std::min(pending_chunks_, n);
  return n;
}

}  // namespace

Result<std::unique_ptr<KvReadBatch>> KvStoreImpl::StartRead(std::span<const KvRange> ranges) {
  RegisterIdleArenas();
  auto batch = std::make_unique<ReadBatchImpl>(this);
  DB_RETURN_IF_ERROR(batch->Plan(ranges, nullptr));
  batch->SubmitMore(/*direct_only=*/true);
  return std::unique_ptr<KvReadBatch>(std::move(batch));
}

Result<std::unique_ptr<KvReadBatch>> KvStoreImpl::StartReadInto(std::span<const KvRange> ranges,
                                                                const KvTargetFn& targets) {
  RegisterIdleArenas();
  auto batch = std::make_unique<ReadBatchImpl>(this);
  DB_RETURN_IF_ERROR(batch->Plan(ranges, &targets));
  // DIRECT runs are queued with the engine now and go to the kernel with the next Poll of any
  // batch: a caller that starts several batches before polling submits them in one system call.
  // PAGE runs wait for this batch's own Poll: the kernel copies cached pages inline at
  // submission, on the submitting thread, so queued early they would hold back the delivery of
  // whatever the caller polls before this batch.
  batch->SubmitMore(/*direct_only=*/true);
  return std::unique_ptr<KvReadBatch>(std::move(batch));
}

Status KvStoreImpl::ReadChunks(std::span<const KvRange> ranges, const KvChunkFn& fn) {
  DB_ASSIGN_OR_RETURN(std::unique_ptr<KvReadBatch> batch, StartRead(ranges));
  while (!batch->done()) {
    DB_ASSIGN_OR_RETURN(size_t n, batch->Poll(/*wait=*/true, fn));
    (void)n;
  }
  return Status::OK();
}

Status KvStoreImpl::Read(const KvRange& range, void* k_out, void* v_out) {
  DB_ASSIGN_OR_RETURN(Sequence * s, Find(range.seq));
  const uint64_t row = s->layout.geometry.row_bytes();
  auto* k = static_cast<uint8_t*>(k_out);
  auto* v = static_cast<uint8_t*>(v_out);
  return ReadChunks({&range, 1}, [&](const KvChunkView& c) {
    const uint64_t off = (c.token_begin - range.token_begin) * row;
    std::memcpy(k + off, c.k, c.n_tokens * row);
    std::memcpy(v + off, c.v, c.n_tokens * row);
  });
}

}  // namespace dualblade::store
