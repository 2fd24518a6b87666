// StoreKvCache: the engine's KvCache over one sequence of a KvStore, so a run keeps its KV cache
// on NVMe. `pagecache` keeps every chunk PAGE and `direct` every chunk DIRECT. `dual` runs the
// placement policy (residency/dual_placement.h) against a MemoryMonitor: it re-plans once per
// decode step (after the last layer's append; a prefill micro-batch counts as one step), moving
// full chunks between PAGE and DIRECT through KvStore::SetChunkPath, and gives chunks not yet
// written the path the policy gives new chunks (DIRECT unless they fall in the PAGE budget).
//
// Stats count row bytes delivered per source (memory: in-memory tails; page; direct) and bytes
// written per path as the KvStore counts them (whole blocks).
//
// Thread-safety: as KvCache (one engine thread), and the KvStore is used by that thread only.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/kv_cache.h"
#include "residency/dual_placement.h"
#include "residency/memory_monitor.h"
#include "store/kv_store.h"
#include "store/store.h"

namespace dualblade::engine {

// Memory that is not KV page cache, declared to the dual policy's MemoryMonitor.
struct MemoryReservation {
  std::string name;
  uint64_t bytes = 0;
  ReserveKind kind = ReserveKind::kAnon;
};

struct StoreKvCacheOptions {
  // "pagecache", "direct", or "dual" (the placement policy decides per chunk).
  std::string policy = "direct";
  std::string model_identity;
  // Drop the sequence when the cache is destroyed (a run's KV is scratch unless kept for reuse).
  bool drop_on_close = true;
  bool verify_checksums = true;
  // Before each read, measure how much of its PAGE chunks sits in the page cache (cachestat(2),
  // one call per run of PAGE chunks and part; skipped on kernels without it) for
  // KvStats::pagecache_hit_bytes.
  bool measure_pagecache_hits = true;
  // dual only: the memory budget (--mem-budget; 0 = the cgroup limit or MemTotal), what else
  // the process keeps in memory (weights, activations; the cache adds its own tails), and the
  // policy's tuning (its `policy` field is ignored: always dual).
  uint64_t mem_budget_bytes = 0;
  std::vector<MemoryReservation> reserves = {};
  PlacementOptions placement = {};
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
  // dual only (nullptr otherwise): the placement state and the monitor it reads, so a caller
  // can declare reserves it learns later and report the PAGE/DIRECT split.
  const DualPlacement* placement() const { return placement_.get(); }
  MemoryMonitor* monitor() { return monitor_.get(); }
  const PlacementPlan& last_plan() const { return last_plan_; }
  uint64_t replans() const { return replans_; }
  // dual only: samples the monitor and applies a fresh plan now (Append does it once per step).
  Status Replan();

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
  // Fills hit_fraction_ with the resident share of the range's on-disk PAGE chunks; ReadChunks
  // adds it to reads_.pagecache_hit_bytes for the chunks the store delivers from PAGE.
  void MeasurePageCacheHits(int layer, int64_t token_begin, int64_t token_end);
  std::vector<double> hit_fraction_;  // per chunk from token_begin / chunk_tokens, this read

  Status SetUpPlacement();

  std::unique_ptr<MemoryMonitor> monitor_;      // dual only
  std::unique_ptr<DualPlacement> placement_;    // dual only
  PlacementPlan last_plan_;
  uint64_t replans_ = 0;

  KvStats reads_;                     // read counters kept here, per source
  store::KvStoreStats base_stats_;    // the store's counters at creation, for write deltas
};

}  // namespace dualblade::engine
