#include "engine/kv_cache.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "common/check.h"

namespace dualblade::engine {
namespace {

class MemoryKvCache final : public KvCache {
 public:
  explicit MemoryKvCache(const KvGeometry& g) : geometry_(g), layers_(g.n_layer) {
    DB_CHECK(g.n_layer > 0 && g.n_head_kv > 0 && g.head_dim > 0 && g.chunk_tokens > 0);
    DB_CHECK(g.n_ctx > 0);
  }

  const KvGeometry& geometry() const override { return geometry_; }
  std::string policy_name() const override { return "memory"; }

  int64_t n_tokens(int layer) const override { return layers_.at(layer).n_tokens; }

  Status Append(int layer, const void* k_rows, const void* v_rows, int n_tokens) override {
    DB_CHECK(layer >= 0 && layer < geometry_.n_layer && n_tokens >= 0);
    Layer& l = layers_[layer];
    if (l.n_tokens + n_tokens > geometry_.n_ctx) {
      return Status::NoSpace("the KV cache holds " + std::to_string(geometry_.n_ctx) +
                             " tokens and is full (raise -c)");
    }
    const size_t row = geometry_.row_bytes();
    const size_t bytes = row * static_cast<size_t>(n_tokens);
    const size_t used = row * static_cast<size_t>(l.n_tokens);
    // Grow geometrically but never past the capacity, so short runs with a large -c stay small.
    // The new buffers are not zero-filled (std::vector would): every byte read was appended.
    if (used + bytes > l.cap_bytes) {
      const size_t cap = row * static_cast<size_t>(geometry_.n_ctx);
      const size_t grown = std::min(cap, std::max(used + bytes, l.cap_bytes * 2));
      Grow(&l.k, used, grown);
      Grow(&l.v, used, grown);
      l.cap_bytes = grown;
    }
    std::memcpy(l.k.get() + used, k_rows, bytes);
    std::memcpy(l.v.get() + used, v_rows, bytes);
    l.n_tokens += n_tokens;
    return Status::OK();
  }

  Status ReadChunks(int layer, int64_t token_begin, int64_t token_end,
                    const ChunkFn& fn) override {
    DB_CHECK(layer >= 0 && layer < geometry_.n_layer);
    const Layer& l = layers_[layer];
    DB_CHECK(0 <= token_begin && token_begin <= token_end && token_end <= l.n_tokens);
    const size_t row = geometry_.row_bytes();
    const int64_t ct = geometry_.chunk_tokens;
    for (int64_t t = token_begin; t < token_end;) {
      const int64_t chunk = t / ct;
      const int64_t end = std::min(token_end, (chunk + 1) * ct);
      const int n = static_cast<int>(end - t);
      fn(chunk, t, n, l.k.get() + row * t, l.v.get() + row * t);
      stats_.read_bytes_memory += 2 * row * static_cast<size_t>(n);
      t = end;
    }
    return Status::OK();
  }

  KvStats stats() const override { return stats_; }

 private:
  struct Layer {
    std::unique_ptr<uint8_t[]> k, v;
    size_t cap_bytes = 0;
    int64_t n_tokens = 0;
  };

  static void Grow(std::unique_ptr<uint8_t[]>* buf, size_t used, size_t new_bytes) {
    std::unique_ptr<uint8_t[]> bigger(new uint8_t[new_bytes]);  // default-initialized
    if (used > 0) std::memcpy(bigger.get(), buf->get(), used);
    *buf = std::move(bigger);
  }
  KvGeometry geometry_;
  std::vector<Layer> layers_;
  KvStats stats_;
};

}  // namespace

std::unique_ptr<KvCache> NewMemoryKvCache(const KvGeometry& geometry) {
  return std::make_unique<MemoryKvCache>(geometry);
}

}  // namespace dualblade::engine
