// TracePipeline: the KV-trace replay's decode step as a pipeline. Each step runs the Prefetcher
// over a KvStoreExecutor: reads of layers l+1 .. l+d are in flight while layer l computes, and
// the layer's busy compute (--compute-us-per-layer) is split into per-chunk partials (the
// attention over each chunk, run as the chunk lands, after the replay's row check) and a layer
// tail (the rest of the layer, once every chunk is in).
//
// Depth: a fixed N >= 1, 0 (no overlap at all: the layer's reads, then its compute, the baseline
// the pipeline is measured against), or auto (the AdaptiveController, fed every step).
//
// Staging: one pool, charged to the memory budget by the caller (staging_bytes()): (depth + 1)
// layers, capped by the staging budget; depth 0 needs exactly one layer. With auto the pool
// follows the controller's depth between steps (wanted_staging_buffers, ResizeStaging), so
// staging it does not use stays with the page cache: at the same depth auto holds what the fixed
// depth holds. The pool's arena is registered with the KvStore's I/O engine while it lives, so
// DIRECT reads into it (plain and vectored) go out as fixed-buffer reads, as iobench's do; where
// the engine refuses, reads pin their pages per request instead, slower but the same bytes.
//
// Thread-safety: one thread calls RunStep; between steps that thread owns the KvStore (Append,
// SetChunkPath); during a step the executor's I/O thread does, and the callbacks run on the
// executor's threads (see kv_store_executor.h).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "common/status.h"
#include "pipeline/adaptive_controller.h"
#include "pipeline/kv_store_executor.h"
#include "pipeline/pipeline_stats.h"
#include "pipeline/prefetcher.h"
#include "pipeline/staging_pool.h"
#include "store/kv_store.h"

namespace dualblade {

// Busy CPU work (not sleep) for US microseconds: the core is really occupied, as it would be in
// inference, so I/O competes for CPU the way it would.
void BusyCompute(uint64_t us);

struct TracePipelineOptions {
  store::SeqId seq = 0;
  uint64_t max_tokens = 0;           // the most tokens a layer will hold (sizes the depth-0 pool)
  uint64_t compute_us_per_layer = 0;
  double attention_fraction = 0.5;   // share of the layer's compute done as per-chunk partials
  static constexpr int32_t kAuto = -1;
  int32_t prefetch_depth = 0;
  uint64_t staging_budget_bytes = 64ull << 20;
  uint64_t max_request_bytes = 1 << 20;  // per K or V part, as the store's requests
  uint32_t max_queue_depth = 12;         // read requests in flight
  uint32_t max_chunks_per_compute = 32;  // see PrefetcherOptions
  // On the compute thread, for every chunk before its partial: the replay's row check.
  std::function<Status(uint32_t layer, const store::KvChunkView& chunk)> check;
  // On the I/O thread before each layer's first read (residency probes).
  std::function<Status(uint32_t layer)> before_layer_read;
};

class TracePipeline {
 public:
  // InvalidArgument when the staging budget cannot hold the plan (one chunk, or one layer for
  // depth 0); errors of the executor (unknown sequence).
  static Result<std::unique_ptr<TracePipeline>> Create(store::KvStore* kv,
                                                       const TracePipelineOptions& opts);
  ~TracePipeline();

  // One step over every layer, each holding N_TOKENS tokens (as the sequence does now).
  Result<StepStats> RunStep(uint64_t step, uint64_t n_tokens);

  uint64_t staging_bytes() const { return pool_->capacity_bytes(); }
  // Auto depth: the staging the controller's current depth needs, (depth + 1) layers within the
  // staging budget. Call between steps, with the KvStore's owner thread: ResizeStaging swaps the
  // pool (unregistering the old one from the store's engine, registering the new), so staging the
  // controller does not use is memory the page cache can have. Fixed depths never change.
  uint64_t wanted_staging_buffers() const;
  uint64_t staging_bytes_for(uint64_t buffers) const { return buffers * buffer_bytes_; }
  Status ResizeStaging(uint64_t buffers);
  uint64_t chunk_staging_bytes() const { return executor_->chunk_staging_bytes(); }
  const AdaptiveController* controller() const { return controller_.get(); }
  // Auto depth: what growing the pool would take from the page cache's KV
  // (AdaptiveController::SetGrowthCost). Nothing for a fixed depth.
  void SetStagingGrowthCost(uint64_t free_bytes, double us_per_layer_taken) {
    if (controller_ != nullptr) controller_->SetGrowthCost(free_bytes, us_per_layer_taken);
  }
  // Auto depth: the staging the memory monitor can spare (AdaptiveController::SetHeadroom).
  void SetStagingHeadroom(uint64_t bytes) {
    if (controller_ != nullptr) controller_->SetHeadroom(bytes);
  }
  // Staging one layer's chunks takes.
  uint64_t layer_staging_bytes() const { return layer_chunks_ * executor_->chunk_staging_bytes(); }
  KvExecutorStats executor_stats() const { return executor_->stats(); }

 private:
  class Consumer;
  TracePipeline(store::KvStore* kv, const TracePipelineOptions& opts);
  Status Compute(const KvComputeUnit& unit, std::span<const uint8_t> data);
  // Unregisters the pool from the store's engine (this thread must own the KvStore) and unmaps it.
  void DropStaging();

  store::KvStore* kv_;
  TracePipelineOptions opts_;
  std::unique_ptr<KvStoreExecutor> executor_;
  std::unique_ptr<StagingPool> pool_;
  std::unique_ptr<AdaptiveController> controller_;
  std::unique_ptr<Consumer> consumer_;
  bool staging_registered_ = false;  // pool_'s arena is registered with kv_
  uint64_t layer_chunks_ = 1;        // chunks of the longest layer the replay will hold
  uint64_t buffer_bytes_ = 0;        // one staging buffer (a chunk, 4 KiB aligned)
  uint64_t budget_buffers_ = 0;      // the most the staging budget holds
  uint32_t n_layer_ = 0;
  uint32_t request_chunks_ = 1;
  // Of the running step; read by the compute thread (set before RunStep starts any task).
  uint64_t n_tokens_ = 0;
  uint32_t chunks_per_layer_ = 0;
};

}  // namespace dualblade
