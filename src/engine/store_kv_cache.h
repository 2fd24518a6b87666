// StoreKvCache: the engine's KvCache over one sequence of a KvStore, so a run keeps its KV cache
// on NVMe. Every chunk starts on the policy's path (`pagecache`: PAGE, `direct`: DIRECT); a
// placement policy (`dual`) moves chunks between paths later through kv_store() and seq_id().
//
// Stats count row bytes delivered per source (memory: in-memory tails; page; direct) and bytes
// written per path as the KvStore counts them (whole blocks).
//
// Thread-safety: as KvCache (one engine thread), and the KvStore is used by that thread only.
#pragma once

#include <memory>
#include <string>

#include "engine/kv_cache.h"
#include "store/kv_store.h"
#include "store/store.h"

namespace dualblade::engine {

struct StoreKvCacheOptions {
  // "pagecache", "direct", or "dual" (starts DIRECT; the placement policy promotes chunks).
  std::string policy = "direct";
  std::string model_identity;
  // Drop the sequence when the cache is destroyed (a run's KV is scratch unless kept for reuse).
  bool drop_on_close = true;
  bool verify_checksums = true;
  // Before each read, measure how much of its PAGE chunks sits in the page cache (cachestat(2),
  // one call per run of PAGE chunks and part; skipped on kernels without it) for
  // KvStats::pagecache_hit_bytes.
  bool measure_pagecache_hits = true;
};

class StoreKvCache final : public KvCache {
 public:
  // Creates a sequence of geometry g (capacity n_ctx) in kv, which must outlive the cache.
  // InvalidArgument for an unknown policy or element type; NoSpace when the store cannot hold it.
  static Result<std::unique_ptr<StoreKvCache>> Create(store::KvStore* kv, const KvGeometry& g,
                                                      const StoreKvCacheOptions& opts);
  // Opens the store at store_path (made by `dualblade format`) and a KvStore over it; the cache
  // owns both.
  static Result<std::unique_ptr<StoreKvCache>> Open(const std::string& store_path,
                                                    const KvGeometry& g,
                                                    const StoreKvCacheOptions& opts);
  ~StoreKvCache() override;

  const KvGeometry& geometry() const override { return geometry_; }
  std::string policy_name() const override { return opts_.policy; }
  int64_t n_tokens(int layer) const override { return n_tokens_.at(layer); }
  Status Append(int layer, const void* k_rows, const void* v_rows, int n_tokens) override;
  Status ReadChunks(int layer, int64_t token_begin, int64_t token_end,
                    const ChunkFn& fn) override;
  KvStats stats() const override;

  store::KvStore* kv_store() { return kv_; }
  store::SeqId seq_id() const { return seq_; }

 private:
  StoreKvCache(store::KvStore* kv, const KvGeometry& g, const StoreKvCacheOptions& opts)
      : kv_(kv), geometry_(g), opts_(opts), n_tokens_(g.n_layer, 0) {}

  std::unique_ptr<store::Store> owned_store_;   // set by Open; destroyed after owned_kv_
  std::unique_ptr<store::KvStore> owned_kv_;
  store::KvStore* kv_;
  store::SeqId seq_ = 0;
  KvGeometry geometry_;
  StoreKvCacheOptions opts_;
  std::vector<int64_t> n_tokens_;
  // Adds the resident share of the range's on-disk PAGE chunks to reads_.pagecache_hit_bytes.
  void MeasurePageCacheHits(int layer, int64_t token_begin, int64_t token_end);

  KvStats reads_;                     // read counters kept here, per source
  store::KvStoreStats base_stats_;    // the store's counters at creation, for write deltas
};

}  // namespace dualblade::engine
