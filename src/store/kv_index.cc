// The sequence index record: every sequence's identity, geometry, segments, per-chunk path and
// checksums, token counts and last use, so a reopened store finds what was committed.
//
// Record layout (version 1, little-endian):
//   u64 next_seq_id, u64 seq_count, then per sequence:
//     u64 id, u64 last_use_unix_s, u32 identity_bytes, identity bytes,
//     u32 n_layer, u32 n_head_kv, u32 head_dim, u32 type, u32 chunk_tokens, u32 block_bytes,
//     u64 capacity_tokens, u64 row_bytes,
//     per layer: u64 n_tokens, u32 n_extents,
//                per extent: u64 start_block, u64 len_blocks, u64 first_chunk, u64 n_chunks,
//                per chunk of capacity: u8 path, u64 k_hash, u64 v_hash
#include <algorithm>
#include <cstring>

#include "store/codec.h"
#include "store/kv_store_impl.h"

namespace dualblade::store {
namespace {

class Writer {
 public:
  void U8(uint8_t v) { out_.push_back(v); }
  void U32(uint32_t v) { Grow(4); PutU32(out_.data() + out_.size() - 4, v); }
  void U64(uint64_t v) { Grow(8); PutU64(out_.data() + out_.size() - 8, v); }
  void Bytes(const std::string& s) {
    U32(static_cast<uint32_t>(s.size()));
    out_.insert(out_.end(), s.begin(), s.end());
  }
  std::vector<uint8_t> Take() { return std::move(out_); }

 private:
  void Grow(size_t n) { out_.resize(out_.size() + n); }
  std::vector<uint8_t> out_;
};

// Every read is bounds-checked; the first short read latches ok() to false.
class Reader {
 public:
  explicit Reader(const std::vector<uint8_t>& b) : p_(b.data()), left_(b.size()) {}
  bool ok() const { return ok_; }
  size_t left() const { return left_; }
  uint8_t U8() { return Take(1) ? p_[-1] : 0; }
  uint32_t U32() { return Take(4) ? GetU32(p_ - 4) : 0; }
  uint64_t U64() { return Take(8) ? GetU64(p_ - 8) : 0; }
  std::string Bytes() {
    uint32_t n = U32();
    if (!Take(n)) return {};
    return std::string(reinterpret_cast<const char*>(p_ - n), n);
  }

 private:
  bool Take(size_t n) {
    if (!ok_ || n > left_) {
      ok_ = false;
      return false;
    }
    p_ += n;
    left_ -= n;
    return true;
  }
  const uint8_t* p_;
  size_t left_;
  bool ok_ = true;
};

Status Bad(const std::string& why) { return Status::Corruption("sequence index: " + why); }

}  // namespace

std::vector<uint8_t> EncodeSequenceIndex(const std::map<SeqId, std::unique_ptr<Sequence>>& seqs,
                                         SeqId next_id) {
  Writer w;
  w.U64(next_id);
  w.U64(seqs.size());
  for (const auto& [id, s] : seqs) {
    const KvGeometry& g = s->layout.geometry;
    w.U64(id);
    w.U64(s->last_use_unix_s);
    w.Bytes(s->model_identity);
    w.U32(g.n_layer);
    w.U32(g.n_head_kv);
    w.U32(g.head_dim);
    w.U32(static_cast<uint32_t>(g.type));
    w.U32(g.chunk_tokens);
    w.U32(s->layout.block_bytes);
    w.U64(g.capacity_tokens);
    w.U64(g.row_bytes());
    for (const LayerState& l : s->layers) {
      w.U64(l.n_tokens);
      w.U32(static_cast<uint32_t>(l.extents.size()));
      for (const SegmentExtent& e : l.extents) {
        w.U64(e.extent.start_block);
        w.U64(e.extent.len_blocks);
        w.U64(e.first_chunk);
        w.U64(e.n_chunks);
      }
      for (const ChunkMeta& c : l.chunks) {
        w.U8(static_cast<uint8_t>(c.path));
        w.U64(c.k_hash);
        w.U64(c.v_hash);
      }
    }
  }
  return w.Take();
}

Status DecodeSequenceIndex(const MetadataRecord& record, const Store& store,
                           std::map<SeqId, std::unique_ptr<Sequence>>* seqs, SeqId* next_id) {
  if (record.version > kSequenceIndexVersion) {
    return Status::NotSupported("sequence index version " + std::to_string(record.version) +
                                " is newer than this build reads");
  }
  Reader r(record.bytes);
  const uint32_t block_bytes = store.superblock().block_bytes;
  *next_id = r.U64();
  const uint64_t count = r.U64();
  if (!r.ok() || count > r.left()) return Bad("truncated header");
  std::vector<Extent> all;  // every extent named, to check that none overlap
  for (uint64_t i = 0; i < count; ++i) {
    auto s = std::make_unique<Sequence>();
    s->id = r.U64();
    s->last_use_unix_s = r.U64();
    s->model_identity = r.Bytes();
    KvGeometry g;
    g.n_layer = r.U32();
    g.n_head_kv = r.U32();
    g.head_dim = r.U32();
    g.type = static_cast<KvType>(r.U32() & 0xff);
    g.chunk_tokens = r.U32();
    const uint32_t seq_block_bytes = r.U32();
    g.capacity_tokens = r.U64();
    const uint64_t row_bytes = r.U64();
    if (!r.ok()) return Bad("truncated sequence header");
    const std::string what = "sequence " + std::to_string(s->id);
    if (Status st = g.Validate(); !st.ok()) return Bad(what + ": " + st.message());
    if (row_bytes != g.row_bytes()) return Bad(what + ": row size disagrees with geometry");
    if (seq_block_bytes != block_bytes) return Bad(what + ": block size disagrees with store");
    if (s->id == 0 || s->id >= *next_id || seqs->count(s->id)) return Bad(what + ": bad id");
    s->layout = KvLayout{g, block_bytes};
    s->layers.resize(g.n_layer);
    for (uint32_t li = 0; li < g.n_layer; ++li) {
      LayerState& l = s->layers[li];
      l.n_tokens = r.U64();
      const uint32_t n_ext = r.U32();
      if (!r.ok() || n_ext == 0 || n_ext > r.left() / 32) return Bad(what + ": bad extent count");
      uint64_t chunks = 0;
      for (uint32_t e = 0; e < n_ext; ++e) {
        SegmentExtent se;
        se.extent.start_block = r.U64();
        se.extent.len_blocks = r.U64();
        se.first_chunk = r.U64();
        se.n_chunks = r.U64();
        if (!r.ok()) return Bad(what + ": truncated extents");
        const uint64_t first = store.allocator().first_block();
        const uint64_t n_blocks = store.allocator().num_blocks();
        if (se.first_chunk != chunks || se.n_chunks == 0 || se.n_chunks > (1ull << 32) ||
            se.extent.len_blocks != s->layout.extent_blocks(se.n_chunks) ||
            se.extent.start_block < first || se.extent.len_blocks > n_blocks ||
            se.extent.start_block - first > n_blocks - se.extent.len_blocks) {
          return Bad(what + " layer " + std::to_string(li) + ": extent out of bounds");
        }
        if (!store.allocator().IsAllocated(se.extent)) {
          return Bad(what + " layer " + std::to_string(li) + ": extent is not allocated");
        }
        chunks += se.n_chunks;
        l.extents.push_back(se);
        all.push_back(se.extent);
      }
      if (chunks > r.left() / 17) return Bad(what + ": truncated chunk table");
      if (l.n_tokens > chunks * g.chunk_tokens) return Bad(what + ": more tokens than capacity");
      l.chunks.resize(chunks);
      for (ChunkMeta& c : l.chunks) {
        const uint8_t path = r.U8();
        if (path > static_cast<uint8_t>(KvPath::kDirect)) return Bad(what + ": bad chunk path");
        c.path = static_cast<KvPath>(path);
        c.k_hash = r.U64();
        c.v_hash = r.U64();
      }
      if (!r.ok()) return Bad(what + ": truncated chunk table");
    }
    seqs->emplace(s->id, std::move(s));
  }
  if (r.left() != 0) return Bad("trailing bytes");
  std::sort(all.begin(), all.end(),
            [](const Extent& a, const Extent& b) { return a.start_block < b.start_block; });
  for (size_t i = 1; i < all.size(); ++i) {
    if (all[i - 1].end_block() > all[i].start_block) return Bad("two segments overlap");
  }
  return Status::OK();
}

}  // namespace dualblade::store
