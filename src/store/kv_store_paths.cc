// KvStore: per-chunk paths and page-cache hints.
//
// Transitions, and why each is coherent:
//   PAGE -> DIRECT  sync_file_range writes the range's dirty pages back and waits, then
//                   POSIX_FADV_DONTNEED drops the now-clean pages: direct reads see the data, and
//                   no cached copy outlives a later direct write.
//   DIRECT -> PAGE  nothing to do: an O_DIRECT write invalidates cached pages over its range, so
//                   the first buffered read fetches what is on the device.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>

#include "store/kv_store_impl.h"

namespace dualblade::store {

Result<KvPath> KvStoreImpl::ChunkPath(SeqId seq, uint32_t layer, uint64_t chunk) const {
  DB_ASSIGN_OR_RETURN(const LayerState* l, FindLayer(seq, layer));
  if (chunk >= l->capacity_chunks()) {
    return Status::InvalidArgument("chunk " + std::to_string(chunk) + " is beyond the " +
                                   std::to_string(l->capacity_chunks()) + " chunks of layer " +
                                   std::to_string(layer));
  }
  return l->chunks[chunk].path;
}

Result<KvChunkLocation> KvStoreImpl::ChunkLocation(SeqId seq, uint32_t layer,
                                                   uint64_t chunk) const {
  DB_ASSIGN_OR_RETURN(KvPath path, ChunkPath(seq, layer, chunk));
  (void)path;
  DB_ASSIGN_OR_RETURN(Sequence * s, Find(seq));
  return Locate(*s, s->layers[layer], chunk);
}

Status KvStoreImpl::DropPages(uint64_t offset_bytes, uint64_t len_bytes) {
  const int fd = store_->device().buffered_fd();
  const auto off = static_cast<off64_t>(offset_bytes);
  const auto len = static_cast<off64_t>(len_bytes);
  if (sync_file_range(fd, off, len,
                      SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                          SYNC_FILE_RANGE_WAIT_AFTER) != 0) {
    // Some filesystems refuse sync_file_range; fdatasync covers the range too.
    if (fdatasync(fd) != 0) return ErrnoStatus("writing back KV pages before demotion", errno);
  }
  const int err = posix_fadvise(fd, off, len, POSIX_FADV_DONTNEED);
  if (err != 0) return ErrnoStatus("dropping KV pages on demotion", err);
  ++stats_.fadvise_dontneed;
  return Status::OK();
}

Status KvStoreImpl::SetChunkPath(SeqId seq, uint32_t layer, uint64_t chunk_begin,
                                 uint64_t chunk_end, KvPath path) {
  DB_ASSIGN_OR_RETURN(Sequence * s, Find(seq));
  if (layer >= s->layers.size()) {
    return Status::InvalidArgument("sequence " + std::to_string(seq) + " has no layer " +
                                   std::to_string(layer));
  }
  LayerState& l = s->layers[layer];
  if (chunk_begin > chunk_end || chunk_end > l.capacity_chunks()) {
    return Status::InvalidArgument("chunks [" + std::to_string(chunk_begin) + ", " +
                                   std::to_string(chunk_end) + ") are beyond the " +
                                   std::to_string(l.capacity_chunks()) + " chunks of layer " +
                                   std::to_string(layer));
  }
  if (path != KvPath::kPage && path != KvPath::kDirect) {
    return Status::InvalidArgument("unknown KV path " + std::to_string(static_cast<int>(path)));
  }
  // A chunk whose write is in flight keeps the path it was issued with until it lands.
  DB_RETURN_IF_ERROR(WaitForWrites(l, chunk_begin, chunk_end));
  const uint64_t ct = s->layout.geometry.chunk_tokens;
  // Chunks with bytes on disk: the full ones and a persisted partial tail.
  const uint64_t written = l.n_tokens / ct + (l.tail_persisted_tokens > 0 ? 1 : 0);
  // Demote runs of consecutive PAGE chunks of one extent with one call per K and V range.
  uint64_t c = chunk_begin;
  while (c < chunk_end) {
    if (l.chunks[c].path == path) {
      ++c;
      continue;
    }
    uint64_t end = c + 1;
    const size_t ext = ExtentOf(l, c);
    const SegmentExtent& e = l.extents[ext];
    while (end < chunk_end && end < e.first_chunk + e.n_chunks && l.chunks[end].path != path) {
      ++end;
    }
    if (path == KvPath::kDirect && c < written) {
      const uint64_t last = std::min(end, written);
      const KvChunkLocation loc = Locate(*s, l, c);
      const uint64_t len = (last - c) * loc.part_bytes;
      DB_RETURN_IF_ERROR(DropPages(loc.k_offset_bytes, len));
      DB_RETURN_IF_ERROR(DropPages(loc.v_offset_bytes, len));
    }
    for (uint64_t i = c; i < end; ++i) l.chunks[i].path = path;
    stats_.path_changes += end - c;
    c = end;
  }
  return Status::OK();
}

Status KvStoreImpl::Prefetch(const KvRange& range) {
  DB_ASSIGN_OR_RETURN(Sequence * s, Find(range.seq));
  if (range.layer >= s->layers.size()) {
    return Status::InvalidArgument("sequence " + std::to_string(range.seq) + " has no layer " +
                                   std::to_string(range.layer));
  }
  const LayerState& l = s->layers[range.layer];
  if (range.token_begin > range.token_end || range.token_end > l.n_tokens) {
    return Status::InvalidArgument("token range is beyond the layer's tokens");
  }
  const uint64_t ct = s->layout.geometry.chunk_tokens;
  const uint64_t full = l.n_tokens / ct;
  const uint64_t first = range.token_begin / ct;
  const uint64_t last = std::min(full, (range.token_end + ct - 1) / ct);
  const int fd = store_->device().buffered_fd();
  for (uint64_t c = first; c < last;) {
    if (l.chunks[c].path != KvPath::kPage || l.writing.count(c)) {
      ++c;
      continue;
    }
    const SegmentExtent& e = l.extents[ExtentOf(l, c)];
    uint64_t end = c + 1;
    while (end < last && end < e.first_chunk + e.n_chunks && l.chunks[end].path == KvPath::kPage) {
      ++end;
    }
    const KvChunkLocation loc = Locate(*s, l, c);
    const auto len = static_cast<off_t>((end - c) * loc.part_bytes);
    for (uint64_t off : {loc.k_offset_bytes, loc.v_offset_bytes}) {
      const int err = posix_fadvise(fd, static_cast<off_t>(off), len, POSIX_FADV_WILLNEED);
      if (err != 0) return ErrnoStatus("prefetching KV pages", err);
      ++stats_.fadvise_willneed;
    }
    c = end;
  }
  return Status::OK();
}

Status KvStore::DisableBufferedReadahead() {
  const int err = ::posix_fadvise(store().device().buffered_fd(), 0, 0, POSIX_FADV_RANDOM);
  if (err != 0) return ErrnoStatus("posix_fadvise(RANDOM) on " + store().device().info().path, err);
  return Status::OK();
}

}  // namespace dualblade::store
