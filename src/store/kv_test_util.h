// Test helpers for the KV store: a store on a file or device, seeded row data, and an in-memory
// reference of what every layer should hold. Tests only.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "store/kv_store.h"
#include "store/store.h"

namespace dualblade::store::testing {

// A formatted store and a KvStore over it; Reopen simulates a restart (nothing uncommitted
// survives it).
class KvFixture {
 public:
  // Formats path (a file of size_bytes, or a device when size_bytes is 0).
  static std::unique_ptr<KvFixture> Create(const std::string& path, uint64_t size_bytes,
                                           KvStoreOptions opts = {}) {
    auto f = std::unique_ptr<KvFixture>(new KvFixture(path, opts));
    Result<Superblock> sb = Store::Format(path, {.size_bytes = size_bytes, .force = true});
    EXPECT_TRUE(sb.ok()) << sb.status().ToString();
    if (!sb.ok() || !f->Reopen().ok()) return nullptr;
    return f;
  }
  Status Reopen() {
    kv_.reset();
    store_.reset();
    DB_ASSIGN_OR_RETURN(store_, Store::Open(path_, StoreOpenOptions{.read_only = false}));
    DB_ASSIGN_OR_RETURN(kv_, KvStore::Open(store_.get(), opts_));
    return Status::OK();
  }
  void Close() {
    kv_.reset();
    store_.reset();
  }
  KvStore& kv() { return *kv_; }
  Store& store() { return *store_; }
  KvStoreOptions& options() { return opts_; }
  const std::string& path() const { return path_; }

 private:
  KvFixture(std::string path, KvStoreOptions opts) : path_(std::move(path)), opts_(opts) {}
  std::string path_;
  KvStoreOptions opts_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<KvStore> kv_;
};

// Row bytes that differ per (seed, token) so misplaced rows are caught.
inline std::vector<uint8_t> RandomRows(std::mt19937_64& rng, uint64_t n_bytes) {
  std::vector<uint8_t> v(n_bytes);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

// What each layer of a sequence should hold.
struct RefSequence {
  KvGeometry geometry;
  std::vector<std::vector<uint8_t>> k, v;  // per layer, rows back to back
  explicit RefSequence(const KvGeometry& g) : geometry(g), k(g.n_layer), v(g.n_layer) {}
  uint64_t n_tokens(uint32_t layer) const { return k[layer].size() / geometry.row_bytes(); }
};

// Appends n random tokens to both the store and the reference.
inline Status AppendRandom(KvStore& kv, SeqId id, RefSequence& ref, uint32_t layer, uint64_t n,
                           std::mt19937_64& rng) {
  const uint64_t bytes = n * ref.geometry.row_bytes();
  std::vector<uint8_t> k = RandomRows(rng, bytes), v = RandomRows(rng, bytes);
  DB_RETURN_IF_ERROR(kv.Append(id, layer, k.data(), v.data(), n));
  ref.k[layer].insert(ref.k[layer].end(), k.begin(), k.end());
  ref.v[layer].insert(ref.v[layer].end(), v.begin(), v.end());
  return Status::OK();
}

// Checks a delivered chunk's K and V rows against the reference.
inline void ExpectChunkMatches(const RefSequence& ref, const KvChunkView& c) {
  const uint64_t row = ref.geometry.row_bytes();
  ASSERT_EQ(0, std::memcmp(c.k, ref.k[c.layer].data() + c.token_begin * row, c.n_tokens * row))
      << "K of layer " << c.layer << " chunk " << c.chunk << " via " << KvSourceName(c.source);
  ASSERT_EQ(0, std::memcmp(c.v, ref.v[c.layer].data() + c.token_begin * row, c.n_tokens * row))
      << "V of layer " << c.layer << " chunk " << c.chunk << " via " << KvSourceName(c.source);
}

// Reads [t0, t1) of a layer chunk by chunk and checks every byte and that each token arrives once.
inline void ExpectRange(KvStore& kv, SeqId id, const RefSequence& ref, uint32_t layer,
                        uint64_t t0, uint64_t t1) {
  std::vector<int> seen(t1 - t0, 0);
  KvRange range{id, layer, t0, t1};
  Status st = kv.ReadChunks({&range, 1}, [&](const KvChunkView& c) {
    ASSERT_GE(c.token_begin, t0);
    ASSERT_LE(c.token_begin + c.n_tokens, t1);
    ASSERT_EQ(c.layer, layer);
    ExpectChunkMatches(ref, c);
    for (uint64_t t = 0; t < c.n_tokens; ++t) ++seen[c.token_begin + t - t0];
  });
  ASSERT_TRUE(st.ok()) << st.ToString();
  for (uint64_t t = 0; t < seen.size(); ++t) ASSERT_EQ(seen[t], 1) << "token " << t0 + t;
}

inline void ExpectAll(KvStore& kv, SeqId id, const RefSequence& ref) {
  for (uint32_t l = 0; l < ref.geometry.n_layer; ++l) {
    ExpectRange(kv, id, ref, l, 0, ref.n_tokens(l));
  }
}

}  // namespace dualblade::store::testing
