#include "store/kv_geometry.h"

#include "common/units.h"

namespace dualblade::store {

const char* KvTypeName(KvType t) {
  switch (t) {
    case KvType::kF16: return "f16";
    case KvType::kF32: return "f32";
    case KvType::kQ8_0: return "q8_0";
  }
  return "unknown";
}

const char* KvPathName(KvPath p) { return p == KvPath::kPage ? "page" : "direct"; }

// ggml's Q8_0: blocks of 32 elements, each an f16 scale and 32 int8 quants (ggml-common.h).
static constexpr uint64_t kQ8_0BlockElems = 32;
static constexpr uint64_t kQ8_0BlockBytes = 34;

uint64_t KvGeometry::row_bytes() const {
  switch (type) {
    case KvType::kF16: return row_elems() * 2;
    case KvType::kF32: return row_elems() * 4;
    case KvType::kQ8_0: return row_elems() / kQ8_0BlockElems * kQ8_0BlockBytes;
  }
  return 0;
}

Status KvGeometry::Validate() const {
  if (n_layer == 0) return Status::InvalidArgument("KV geometry: n_layer must be positive");
  if (n_head_kv == 0) return Status::InvalidArgument("KV geometry: n_head_kv must be positive");
  if (head_dim == 0) return Status::InvalidArgument("KV geometry: head_dim must be positive");
  if (chunk_tokens == 0) {
    return Status::InvalidArgument("KV geometry: chunk_tokens must be positive");
  }
  if (capacity_tokens == 0) {
    return Status::InvalidArgument("KV geometry: capacity_tokens must be positive");
  }
  if (type != KvType::kF16 && type != KvType::kF32 && type != KvType::kQ8_0) {
    return Status::InvalidArgument("KV geometry: unknown element type " +
                                   std::to_string(static_cast<int>(type)));
  }
  if (type == KvType::kQ8_0 && row_elems() % kQ8_0BlockElems != 0) {
    return Status::InvalidArgument("KV geometry: q8_0 rows need n_head_kv * head_dim divisible by 32");
  }
  // Bound every product so on-disk sizes derived from a geometry never overflow: a chunk part
  // under 1 GiB and a capacity under 2^40 tokens keep all byte offsets far below 2^64.
  if (n_layer > (1u << 16) || row_elems() > (1ull << 24) || chunk_tokens > (1u << 20)) {
    return Status::InvalidArgument("KV geometry: dimensions are implausibly large");
  }
  if (chunk_row_bytes() > (1ull << 30)) {
    return Status::InvalidArgument("KV geometry: a chunk would exceed 1 GiB");
  }
  if (capacity_tokens > (1ull << 40)) {
    return Status::InvalidArgument("KV geometry: capacity_tokens is implausibly large");
  }
  return Status::OK();
}

uint64_t KvLayout::chunk_part_bytes() const {
  return AlignUp(geometry.chunk_row_bytes(), block_bytes);
}

}  // namespace dualblade::store
