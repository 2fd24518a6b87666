// StoreKvCache: the engine's KvCache over one sequence of a KvStore, so a run keeps its KV cache
// on NVMe. `pagecache` keeps every chunk PAGE and `direct` every chunk DIRECT. `dual` runs the
// placement policy (residency/dual_placement.h) against a MemoryMonitor: it re-plans once per
// decode step (after the last layer's append; a prefill micro-batch counts as one step), moving
// full chunks between PAGE and DIRECT through KvStore::SetChunkPath, and gives chunks not yet
// written the path the policy gives new chunks (DIRECT unless they fall in the PAGE budget).
//
// Cross-layer prefetch: the engine reads every layer's whole context once per step, layer after
// layer, so when ReadChunks(l) is called the reads of layers l+1 .. l+d (cyclically: past the last
// layer come the first layers of the next step) can already be in flight. A layer's prefetch
// covers its chunks that are full on disk at that moment, which later appends never change: the
// DIRECT runs among them go into a KvReadBatch (submitted at once, as far as its staging window
// allows), the PAGE runs get WILLNEED. When ReadChunks(l) comes, the prefetched batch is used
// if it covers a prefix of the requested range (the request starts at token 0 and ends at or
// after the covered chunks), and the rest of the range (PAGE runs, new chunks, the tail) is
// read by a second batch; chunks of both go to the caller in completion order. A prefetch is
// discarded after draining when its layer's covered chunks change path (a dual re-plan) or the
// request does not extend it, and when its layer leaves the window. Depth: fixed, or chosen
// per step by an AdaptiveController from the measured per-layer I/O, compute and stall times.
//
// Memory: PlanKvMemory sizes the store's read staging, request size and write buffers from the
// budget; the dual policy declares them (and the tails) as reservations, so its PAGE set is what
// remains.
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
#include "pipeline/adaptive_controller.h"
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
  // Layers whose reads are in flight ahead of the one computing; kAutoPrefetch = chosen per step
  // by the adaptive controller (at most KvMemoryPlan::max_prefetch_depth); 0 = none.
  static constexpr int kAutoPrefetch = -1;
  int prefetch_depth = kAutoPrefetch;
};

// What the store-backed KV cache keeps in memory besides the PAGE set, sized from the budget.
struct KvMemoryPlan {
  uint64_t read_staging_bytes = 0;    // per read batch (KvStoreOptions::read_staging_bytes)
  uint64_t max_request_bytes = 0;     // per coalesced read request
  uint64_t write_inflight_bytes = 0;  // chunk writes in flight
  uint32_t max_prefetch_depth = 0;    // the fixed depth, or the adaptive controller's bound
  // Read batches in flight at most: the prefetched layers, the layer computing, and the rest of
  // its range read at the call.
  uint64_t read_batches() const { return uint64_t{max_prefetch_depth} + 2; }
  // Staging those batches can hold: each may overshoot its window by one request pair, and the
  // store's arenas are mapped whole.
  uint64_t read_staging_reserve_bytes() const {
    return read_batches() * (read_staging_bytes + 2 * max_request_bytes);
  }
};

// Sizes the plan for a memory budget (the limit the run must live in), a prefetch depth (or
// kAutoPrefetch) and a chunk of chunk_bytes (K and V): read staging per batch is budget / 64
// (at least two chunks and 1 MiB, at most 32 MiB, the store's default), write buffers likewise
// (at most 64 MiB), requests of an eighth of the staging (between one chunk part and 1 MiB), and
// an adaptive depth bounded so all read staging stays within budget / 8 (1 to 8 layers).
KvMemoryPlan PlanKvMemory(uint64_t budget_bytes, int prefetch_depth, uint64_t chunk_bytes);

class StoreKvCache final : public KvCache {
 public:
  // Creates a sequence of geometry g (capacity n_ctx) in kv, which must outlive the cache.
  // InvalidArgument for an unknown policy or element type; NoSpace when the store cannot hold it.
  // dual with a budget: InvalidArgument when the budget does not cover the declared reserves
  // and the cache's own memory (KvMemoryPlan, tails).
  static Result<std::unique_ptr<StoreKvCache>> Create(store::KvStore* kv, const KvGeometry& g,
                                                      const StoreKvCacheOptions& opts);
  // Opens the store at store_path (made by `dualblade format`) and a KvStore over it, with its
  // staging and write buffers sized by PlanKvMemory; the cache owns both.
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
  const KvMemoryPlan& memory_plan() const { return memory_plan_; }
  // The adaptive controller (nullptr unless the depth is kAutoPrefetch).
  const AdaptiveController* controller() const { return controller_.get(); }
  uint32_t prefetch_depth() const;

 private:
  StoreKvCache(store::KvStore* kv, const KvGeometry& g, const StoreKvCacheOptions& opts)
      : kv_(kv), geometry_(g), opts_(opts), n_tokens_(g.n_layer, 0), prefetch_(g.n_layer) {}

  // One layer's reads started ahead of its ReadChunks.
  struct Prefetch {
    uint64_t covered_chunks = 0;          // chunks [0, covered_chunks) were full when started
    std::vector<store::KvRange> ranges;   // their DIRECT runs, in token order
    std::unique_ptr<store::KvReadBatch> batch;
    // Chunks the batch delivered while being started (written from memory, or completed at
    // once), copied until the layer's ReadChunks.
    struct Copy {
      store::KvChunkView view;
      std::vector<uint8_t> k, v;
    };
    std::vector<Copy> copies;
    uint64_t started_ns = 0;
  };
  // Starts the prefetch of the layers after `layer` up to the current depth and discards those
  // outside that window.
  Status StartPrefetches(int layer);
  Status StartPrefetch(int layer);
  // The usable prefetch of the layer for [token_begin, token_end), or nullptr (a prefetch that
  // does not fit is discarded).
  std::unique_ptr<Prefetch> TakePrefetch(int layer, int64_t token_begin, int64_t token_end);
  void DiscardPrefetch(int layer);
  // Feeds the adaptive controller once per step (after the last layer's read).
  void ObserveLayer(int layer, double io_us, double compute_us, double stall_us);

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
  // What the cache itself keeps in memory (tails, read staging, write buffers, copies).
  std::vector<MemoryReservation> OwnReservations(uint64_t chunk_bytes) const;
  Status CheckBudgetCoversReserves(uint64_t chunk_bytes) const;

  std::unique_ptr<MemoryMonitor> monitor_;      // dual only
  std::unique_ptr<DualPlacement> placement_;    // dual only
  PlacementPlan last_plan_;
  uint64_t replans_ = 0;

  KvMemoryPlan memory_plan_;
  std::vector<std::unique_ptr<Prefetch>> prefetch_;  // per layer
  std::unique_ptr<AdaptiveController> controller_;   // auto depth only
  uint64_t last_read_exit_ns_ = 0;  // when the previous ReadChunks returned (0: none yet)
  struct StepSums {
    double io_us = 0, compute_us = 0, stall_us = 0;
    int layers = 0;
  } step_;
  uint64_t stall_ns_ = 0;

  KvStats reads_;                     // read counters kept here, per source
  store::KvStoreStats base_stats_;    // the store's counters at creation, for write deltas
};

}  // namespace dualblade::engine
