// KV geometry: the shape of one sequence's KV cache and how it maps onto store blocks.
//
// A kv row is one token's keys (or values) for one layer: n_head_kv * head_dim elements of the
// element type, stored as opaque bytes (the store knows row_bytes(), never the math). A chunk is
// the token range [c * chunk_tokens, (c + 1) * chunk_tokens); its K rows and its V rows each take
// chunk_part_bytes() on disk: the rows, zero-padded to whole store blocks, so every chunk starts
// on a block boundary and is written as whole aligned blocks (no read-modify-write).
//
// A segment is the storage of one (sequence, layer): one or more extents, each holding the K
// parts of a run of consecutive chunks and then their V parts:
//
//     extent:  | K chunk f | K chunk f+1 | ... | K chunk f+n-1 | V chunk f | ... | V chunk f+n-1 |
//
// so a layer's context in one extent is two large sequential reads. Growth appends extents.
//
// Thread-safety: plain values and stateless functions.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace dualblade::store {

// KV element type. Values are on disk: never renumber.
enum class KvType : uint8_t {
  kF16 = 1,
  kF32 = 2,
  kQ8_0 = 3,  // ggml blocks of 32 elements: an f16 scale + 32 int8 (34 bytes)
};
const char* KvTypeName(KvType t);  // "f16", "f32", "q8_0"

// The I/O path a chunk is read and written through. Values are on disk: never renumber.
//   kPage    buffered I/O on the store's buffered descriptor (the kernel page cache)
//   kDirect  O_DIRECT I/O from aligned buffers, bypassing the page cache
// Both address the same LBAs, so changing a chunk's path never moves data.
enum class KvPath : uint8_t { kPage = 0, kDirect = 1 };
const char* KvPathName(KvPath p);  // "page", "direct"

struct KvGeometry {
  uint32_t n_layer = 0;
  uint32_t n_head_kv = 0;
  uint32_t head_dim = 0;
  KvType type = KvType::kF16;
  uint32_t chunk_tokens = 256;
  // Initial token capacity per layer (rounded up to whole chunks); Append grows past it.
  uint64_t capacity_tokens = 0;

  uint64_t row_elems() const { return static_cast<uint64_t>(n_head_kv) * head_dim; }
  // Bytes of one kv row (K or V) of one token.
  uint64_t row_bytes() const;
  // Bytes of the rows of one full chunk, before padding.
  uint64_t chunk_row_bytes() const { return row_bytes() * chunk_tokens; }

  // InvalidArgument naming the bad field: zero dimensions, an unknown type, q8_0 with row_elems
  // not a multiple of 32, sizes that overflow, capacity 0.
  Status Validate() const;
  bool operator==(const KvGeometry&) const = default;
};

// KV geometry laid onto a store's block size.
struct KvLayout {
  KvGeometry geometry;
  uint32_t block_bytes = 0;

  // Bytes one chunk's K (or V) part takes on disk: chunk_row_bytes() rounded up to block_bytes.
  uint64_t chunk_part_bytes() const;
  uint64_t chunk_part_blocks() const { return chunk_part_bytes() / block_bytes; }
  // Blocks of an extent holding n_chunks chunks (K parts then V parts).
  uint64_t extent_blocks(uint64_t n_chunks) const { return 2 * n_chunks * chunk_part_blocks(); }
  uint64_t ChunksForTokens(uint64_t tokens) const {
    return (tokens + geometry.chunk_tokens - 1) / geometry.chunk_tokens;
  }
};

}  // namespace dualblade::store
