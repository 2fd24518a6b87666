// KvCache: where the engine keeps each layer's K and V rows, behind one narrow interface so the
// KV policy (memory, pagecache, direct, dual) is a run-time choice that never changes the math.
// A KV row is one token's n_head_kv * head_dim elements of the element type; a chunk is the fixed
// token range [c * chunk_tokens, (c + 1) * chunk_tokens), the unit of placement and of I/O.
//
// Reads deliver a layer's token range as chunk-sized pieces in whatever order they complete; the
// attention kernel merges them in chunk order, so every policy yields the same bits.
//
// Thread-safety: a KvCache is used by one engine thread; ReadChunks may invoke the callback from
// that thread only (implementations that read asynchronously hand the data back to it).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/status.h"
#include "compute/attention.h"

namespace dualblade::engine {

struct KvGeometry {
  int n_layer = 0;
  int n_head_kv = 0;
  int head_dim = 0;
  int chunk_tokens = 256;
  compute::KvElemType type = compute::KvElemType::kF32;
  int64_t n_ctx = 0;  // token capacity per layer

  int64_t row_elems() const { return static_cast<int64_t>(n_head_kv) * head_dim; }
  size_t row_bytes() const {
    return static_cast<size_t>(row_elems()) * compute::KvElemBytes(type);
  }
};

// Bytes moved per path since creation. `memory` counts reads served from RAM-resident rows
// (the memory policy, and tails held in memory by the store-backed policies).
struct KvStats {
  uint64_t read_bytes_page = 0;
  uint64_t read_bytes_direct = 0;
  uint64_t read_bytes_memory = 0;
  uint64_t write_bytes_page = 0;
  uint64_t write_bytes_direct = 0;
  uint64_t pagecache_hit_bytes = 0;  // page-path bytes that were resident in the page cache
  // Time the engine thread spent blocked inside ReadChunks waiting for reads (the I/O that
  // compute did not hide), and the cross-layer prefetch: layers read ahead of the one being
  // computed (the latest depth when it adapts), prefetched layer reads consumed and discarded.
  double stall_ms = 0;
  uint32_t prefetch_depth = 0;
  uint64_t prefetch_used = 0;
  uint64_t prefetch_discarded = 0;
};

class KvCache {
 public:
  using ChunkFn = std::function<void(int64_t chunk_index, int64_t token_begin, int n_tokens,
                                     const void* k_rows, const void* v_rows)>;

  virtual ~KvCache() = default;

  virtual const KvGeometry& geometry() const = 0;
  // "memory", "pagecache", "direct", "dual".
  virtual std::string policy_name() const = 0;

  // Rows stored so far for `layer`.
  virtual int64_t n_tokens(int layer) const = 0;

  // Appends n_tokens rows of K and of V (row_bytes() each, back to back) to `layer`. The data is
  // copied before returning. NoSpace when the layer would exceed n_ctx; nothing is appended then.
  virtual Status Append(int layer, const void* k_rows, const void* v_rows, int n_tokens) = 0;

  // Delivers rows [token_begin, token_end) of `layer`: one call per chunk that overlaps the range,
  // with that chunk's rows clipped to the range, in completion order (any order); pointers are
  // valid only during the callback.
  // REQUIRES: 0 <= token_begin <= token_end <= n_tokens(layer).
  virtual Status ReadChunks(int layer, int64_t token_begin, int64_t token_end,
                            const ChunkFn& fn) = 0;

  virtual KvStats stats() const = 0;
};

// The `memory` policy: every row in RAM, reads served in chunk order straight from it.
std::unique_ptr<KvCache> NewMemoryKvCache(const KvGeometry& geometry);

}  // namespace dualblade::engine
