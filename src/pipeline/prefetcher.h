// Prefetcher: runs one decode step's reads and compute as a pipeline. While layer l computes,
// reads for layers l+1 .. l+depth are in flight; each chunk of the computing layer is handed to
// compute as soon as it lands (completion order), and the consumer merges per-chunk partials in
// chunk order at the layer's end, so results do not depend on arrival order.
//
// Time and resources live behind PipelineExecutor, so the same scheduler runs against a
// deterministic discrete-event simulation (pipeline_sim_test.cc) and on a real KvStore.
//
// How KvStore plugs in (KvStoreExecutor, kv_store_executor.h): StartRead of a ReadRequest
// becomes one KvReadBatch over the request's chunk range of (seq, layer), started with
// KvStore::StartReadInto so each chunk lands straight in the request's staging buffer (DIRECT by
// DMA, PAGE by the kernel's page-cache copy), polled in completion order on an I/O thread; when
// the batch is done() WaitEvent returns the request's completion with the batch's Status (the
// first I/O error or checksum Corruption). CancelReads destroys pending batches, whose
// destructors wait for the kernel, and queues a failed completion for each of their requests:
// every started read still completes exactly once, and no buffer is written after its completion
// has been returned. StartCompute runs the attention partials of the task's chunks on a compute
// thread (zero copy from staging through the CPU CopyStage; a cudaMemcpyAsync + event on CUDA)
// or the layer's remaining work (output projection, MLP) for a layer tail.
//
// Step state machine, per chunk: pending -> in flight -> ready (landed, holds its lease) ->
// computing -> done (lease returned). Per layer: the computing layer takes ready chunks in
// completion order; when all are done the consumer merges and the tail task runs; then the next
// layer computes. Up to max_compute_queue tasks are outstanding at once, in order: the next
// layer's chunks may queue behind a tail, since compute runs its tasks one at a time. Reads are
// issued in (layer, chunk) order, so every chunk of the computing layer is issued before any
// later layer's: a later layer's chunk holding a buffer never starves the computing layer, and a
// pool of even one buffer always makes progress.
//
// Failure: the first failed read or compute task (or Cancel) stops new reads and new compute,
// returns ready leases, then waits for everything still in flight; RunStep returns that Status
// with the pool full again. A cancelled step returns Busy.
//
// Thread-safety: one thread calls RunStep; Cancel may be called from any thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "pipeline/adaptive_controller.h"
#include "pipeline/pipeline_stats.h"
#include "pipeline/staging_pool.h"

namespace dualblade {

// One read of adjacent chunks of one layer. Inputs only; the result is the event's Status.
struct ReadRequest {
  uint64_t step = 0;
  uint32_t layer = 0;
  uint32_t first_chunk = 0;
  uint32_t n_chunks = 0;
  std::vector<std::span<uint8_t>> buffers;  // one staging buffer per chunk, written by the read
};

// Compute over landed chunks of one layer (an attention partial each) or a layer's tail (merge,
// projection, MLP).
struct ComputeTask {
  uint64_t step = 0;
  uint32_t layer = 0;
  bool layer_tail = false;
  // When !layer_tail: the chunks, in the order they landed (one unless the Prefetcher batches),
  // and each one's staging buffer.
  std::vector<uint32_t> chunks;
  std::vector<std::span<const uint8_t>> data;
};

struct PipelineEvent {
  enum class Kind : uint8_t { kRead, kCompute };
  Kind kind = Kind::kRead;
  uint64_t token = 0;  // as passed to StartRead / StartCompute
  Status status;       // OK, or why the whole read request (or the compute task) failed
};

class PipelineExecutor {
 public:
  virtual ~PipelineExecutor() = default;
  virtual uint64_t NowUs() const = 0;
  // Starts work; its completion is returned by a later WaitEvent, never inline.
  virtual void StartRead(uint64_t token, const ReadRequest& req) = 0;
  // Compute is one serial resource: tasks run one at a time, in the order they were started,
  // and complete in that order (a task started while another runs waits for it).
  virtual void StartCompute(uint64_t token, const ComputeTask& task) = 0;
  // Best effort: reads not yet started may complete early with an error. Each still completes.
  virtual void CancelReads() {}
  // Blocks until one started task completes. REQUIRES: at least one outstanding.
  virtual PipelineEvent WaitEvent() = 0;
};

// What the model does with chunks; called on the RunStep thread.
class ChunkConsumer {
 public:
  virtual ~ChunkConsumer() = default;
  // The chunk is handed to compute (its data stays valid until that compute completes).
  virtual void OnChunk(uint64_t step, uint32_t layer, uint32_t chunk,
                       std::span<const uint8_t> data) = 0;
  // Every chunk of the layer has been computed: merge the partials in chunk order.
  virtual void OnLayerEnd(uint64_t step, uint32_t layer) = 0;
};

struct PrefetcherOptions {
  uint32_t n_layer = 0;           // REQUIRES > 0
  uint32_t chunks_per_layer = 0;  // REQUIRES > 0
  uint64_t chunk_bytes = 0;       // REQUIRES 0 < chunk_bytes <= pool buffer size
  // The plan when controller is null (a fixed depth, e.g. 0 for no overlap across layers).
  PipelinePlan fixed_plan;
  AdaptiveController* controller = nullptr;  // not owned; fed after every completed step
  // Hand chunks to compute as each lands (true), or only once the whole layer has landed (false:
  // with depth 0, a step with no overlap at all, the baseline the pipeline is measured against;
  // REQUIRES a pool that holds one layer, else RunStep returns InvalidArgument).
  bool stream_chunks = true;
  // Landed chunks of the computing layer handed over as one compute task, at most. 1 hands each
  // chunk over alone; more amortizes the hand-over to a compute thread when chunks pile up
  // (compute behind), and changes nothing while they trickle in (I/O behind).
  uint32_t max_chunks_per_compute = 1;
  // Compute tasks outstanding at once, run in order on the serial compute resource. 1 starts a
  // task only once the previous one is reported done; 2 queues the next one (more landed chunks,
  // the layer's tail, or the next layer's chunks behind that tail) while one runs, so a compute
  // thread goes from task to task without waiting for this scheduler to wake up and answer.
  uint32_t max_compute_queue = 2;
  // Optional: the chunk each layer's reads start from; they go from there to the layer's end,
  // then from chunk 0 up to it (a value past the layer's chunks counts as 0). Called once per
  // layer and step, on the caller's thread. The KV trace starts at a layer's first DIRECT chunk,
  // so the device reads the layer's DIRECT suffix while its PAGE prefix is being copied instead
  // of after it. Null: chunk 0, in order.
  std::function<uint32_t(uint32_t layer)> issue_start_chunk;
};

class Prefetcher {
 public:
  // Pool, executor, consumer (and controller) are not owned and must outlive the Prefetcher.
  Prefetcher(const PrefetcherOptions& opts, StagingPool* pool, PipelineExecutor* executor,
             ChunkConsumer* consumer);
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  // Runs one step to its end or its first error. On return nothing is in flight and every lease
  // is back in the pool. stats (optional) is filled in either case.
  Status RunStep(uint64_t step, StepStats* stats);
  // Makes the running step (or, if none runs, the next one) return Busy soon.
  void Cancel() { cancel_requested_.store(true, std::memory_order_relaxed); }

  // For invariant checks between events: leases held by the running step.
  size_t leases_held() const { return leases_held_; }

 private:
  struct Request {
    uint32_t layer = 0;
    uint32_t first_chunk = 0;
    std::vector<StagingLease> leases;
  };
  struct Slot {  // one chunk of the step
    StagingLease lease;
    uint8_t state = 0;  // ChunkState in the .cc
  };

  struct ComputeInFlight {  // a task started and not yet reported done
    uint64_t token = 0;
    uint32_t layer = 0;
    bool tail = false;
    std::vector<uint32_t> chunks;
  };

  // Sets cursor_start_ for cursor_layer_ (once per layer and step).
  void StartLayer();
  void IssueReads();
  void QueueCompute();
  void OnRead(const PipelineEvent& ev);
  void OnCompute(const PipelineEvent& ev);
  void Fail(Status s);
  void CountRead(int delta);

  PrefetcherOptions opts_;
  StagingPool* pool_;
  PipelineExecutor* executor_;
  ChunkConsumer* consumer_;
  std::atomic<bool> cancel_requested_{false};

  // Per step.
  uint64_t step_ = 0;
  PipelinePlan plan_;
  Status failed_;
  std::vector<Slot> slots_;                  // n_layer * chunks_per_layer
  std::vector<std::vector<uint32_t>> ready_;  // per layer: landed chunks, in completion order
  std::vector<size_t> ready_head_;
  std::vector<Request> requests_;             // indexed by read token
  // Next chunk to issue: the cursor_pos_-th of cursor_layer_ in issue order, which starts at
  // chunk cursor_start_.
  uint32_t cursor_layer_ = 0, cursor_pos_ = 0, cursor_start_ = 0;
  uint32_t computing_layer_ = 0;  // the oldest layer whose tail has not completed
  uint32_t handing_layer_ = 0;    // whose chunks go to compute next (computing_layer_ or the next)
  std::vector<uint32_t> chunks_done_;  // per layer: partials completed
  std::deque<ComputeInFlight> compute_q_;  // in the order started (= the order they complete)
  uint64_t compute_token_ = 0;
  uint64_t compute_busy_since_us_ = 0;
  uint32_t reads_in_flight_ = 0;
  uint64_t io_busy_since_us_ = 0;
  size_t leases_held_ = 0;
  StepStats stats_;
};

}  // namespace dualblade
