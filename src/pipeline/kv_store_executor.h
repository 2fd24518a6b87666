// KvStoreExecutor: the Prefetcher's PipelineExecutor over a real KvStore, with real threads.
//
// Threads: the caller's thread runs the Prefetcher and blocks in WaitEvent on a condition
// variable; an I/O thread owns the KvStore while reads are outstanding (KvStore and its IoEngine
// belong to one thread at a time; the hand-over is ordered by this executor's mutex); a compute
// thread runs compute tasks, so the scheduler keeps turning read completions into new reads while
// compute runs.
//
// Reads: StartRead of a ReadRequest becomes one KvReadBatch over the request's chunk range of
// (seq, layer), polled on the I/O thread in completion order, several batches in flight at once.
// Each chunk lands in the request's staging buffer (K rows at offset 0, V rows at
// kv_part_bytes(), the on-disk part size, so both halves are block aligned) through
// KvStore::StartReadInto: DIRECT chunks by the device's DMA straight into it, PAGE chunks by the
// kernel's copy out of the page cache on the I/O thread (inline in io_uring's submit, or its
// workers on a miss); either way off the compute thread and while the DIRECT requests already
// submitted sit in the device queue. Chunks the store serves from memory (the tail) it copies
// there itself.
// Priorities, for the layer compute needs next: a later layer's DIRECT reads are held back while
// the oldest layer being read has kLeadDirectReads of its own in the device (the device serves
// what it holds side by side, so a step's first layer would land only with the second); and
// before a later layer's PAGE read is polled (its copy runs inline, milliseconds of this thread)
// the earlier layers' reads are polled, so what they landed is delivered first.
// When the batch is done the request completes with OK, or with the batch's first error (I/O,
// checksum Corruption) once the batch has been destroyed (its destructor waits for the kernel),
// so no staging buffer is written after its completion has been returned. As each chunk lands,
// CopyStage::Start makes it available to compute.
//
// Cancellation: CancelReads destroys every pending batch (waiting for the kernel) and completes
// each outstanding request with Busy; every started read still completes exactly once.
//
// Compute: StartCompute queues a task for the compute thread, which runs the tasks in order:
// opts.compute over CopyStage::Acquire of each chunk's staging (empty for a layer tail); the first
// error is the event's Status, so a failed check fails the step as a failed read does.
//
// Between steps (nothing outstanding) the caller's thread may use the KvStore again (Append,
// SetChunkPath); token counts of each layer are read at the first read of each step (a new
// ReadRequest::step), so appends between steps are seen.
//
// Thread-safety: the PipelineExecutor methods are called from one thread (the Prefetcher's).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "common/status.h"
#include "pipeline/copy_stage.h"
#include "pipeline/prefetcher.h"
#include "store/kv_store.h"

namespace dualblade {

// One unit of a compute task: a chunk of the layer, or the layer's tail.
struct KvComputeUnit {
  uint64_t step = 0;
  uint32_t layer = 0;
  bool layer_tail = false;
  uint32_t chunk = 0;  // when !layer_tail
};
// Compute over one chunk (data = the compute-side memory of its staging buffer) or a layer tail
// (data empty). Runs on the compute thread, once per chunk of a task, in the task's order.
using KvComputeFn = std::function<Status(const KvComputeUnit& unit, std::span<const uint8_t> data)>;

struct KvStoreExecutorOptions {
  store::SeqId seq = 0;
  KvComputeFn compute;  // REQUIRED
  // Not owned; null = a CpuCopyStage owned by the executor.
  CopyStage* copy_stage = nullptr;
  // Optional; runs on the I/O thread (the KvStore's owner then) before the first read of each
  // layer in a step, e.g. to probe the page-cache residency of its PAGE chunks. An error fails
  // that read.
  std::function<Status(uint32_t layer)> before_layer_read;
};

// What the reads delivered, by where the store served each chunk from, and how long each path
// took. Totals since creation.
struct KvExecutorStats {
  uint64_t chunks_page = 0;
  uint64_t chunks_direct = 0;
  uint64_t chunks_memory = 0;
  uint64_t bytes_page = 0;    // K and V rows delivered from the page cache
  uint64_t bytes_direct = 0;  // and by O_DIRECT reads
  // The I/O thread's time polling reads that begin on a PAGE chunk: the kernel's copy out of the
  // page cache runs inline there, so this is what the PAGE path costs a CPU.
  uint64_t page_copy_us = 0;
  uint64_t bytes_staged = 0;  // copied into the pipeline's staging (not read straight into it)
  uint64_t batches = 0;
  // The compute thread's own time in compute tasks (opts.compute over every unit). The
  // Prefetcher's compute busy time also holds the hand-offs between threads; this does not, so
  // a gap between the two is scheduling, and a rise of this one for the same work is CPU time
  // the compute thread did not get (a host's steal, another thread on its CPU).
  uint64_t compute_run_us = 0;
};

class KvStoreExecutor final : public PipelineExecutor {
 public:
  // Reads the sequence's geometry (on the calling thread, which owns the KvStore now). The
  // KvStore must outlive the executor. NotFound for an unknown sequence.
  static Result<std::unique_ptr<KvStoreExecutor>> Create(store::KvStore* kv,
                                                         const KvStoreExecutorOptions& opts);
  // Cancels and drains whatever is still outstanding, then stops the threads.
  ~KvStoreExecutor() override;
  KvStoreExecutor(const KvStoreExecutor&) = delete;
  KvStoreExecutor& operator=(const KvStoreExecutor&) = delete;

  uint64_t NowUs() const override;
  void StartRead(uint64_t token, const ReadRequest& req) override;
  void StartCompute(uint64_t token, const ComputeTask& task) override;
  void CancelReads() override;
  PipelineEvent WaitEvent() override;

  // Staging layout of one chunk: K rows, then V rows at kv_part_bytes().
  uint64_t row_bytes() const { return row_bytes_; }
  uint64_t chunk_tokens() const { return chunk_tokens_; }
  uint64_t kv_part_bytes() const { return part_bytes_; }
  uint64_t chunk_staging_bytes() const { return 2 * kv_part_bytes(); }
  uint32_t n_layer() const { return n_layer_; }
  KvExecutorStats stats() const;
  CopyStage& copy_stage() { return *copy_; }
  // Where the store served a chunk of the current step from. Valid on the compute thread for the
  // chunk of its task, and on the caller's thread once the chunk's read has completed.
  store::KvSource source(uint32_t layer, uint32_t chunk) const;

 private:
  struct Read {
    uint64_t token = 0;
    uint64_t cancel_gen = 0;  // CancelReads calls before this read started
    ReadRequest req;
    bool direct = true;  // its first chunk is on the DIRECT path (for the submission order)
    std::unique_ptr<store::KvReadBatch> batch;
    uint64_t token_begin = 0, token_end = 0;
    std::vector<uint8_t> landed;  // per chunk of the request
    uint32_t n_landed = 0;
    Status status;
  };

  KvStoreExecutor(store::KvStore* kv, const KvStoreExecutorOptions& opts);
  void IoLoop();
  void ComputeLoop();
  Status RunCompute(const ComputeTask& task);
  // I/O thread helpers.
  void Begin(Read& r);
  void PollRead(Read& r, bool wait);
  void Land(Read& r, const store::KvChunkView& v);
  void Finish(Read& r);
  // Cancels the reads started before cancel generation GEN; returns the survivors of FRESH.
  void CancelBefore(uint64_t gen, std::deque<Read>* fresh);
  void Post(PipelineEvent ev);

  store::KvStore* kv_;
  KvStoreExecutorOptions opts_;
  std::unique_ptr<CpuCopyStage> own_copy_;
  CopyStage* copy_ = nullptr;
  uint32_t n_layer_ = 0;
  uint64_t chunk_tokens_ = 0;
  uint64_t row_bytes_ = 0;
  uint64_t part_bytes_ = 0;  // one chunk's K (or V) part on disk: whole blocks
  const std::chrono::steady_clock::time_point epoch_;

  std::mutex mu_;
  std::condition_variable io_cv_, compute_cv_, event_cv_;
  bool stop_ = false;                            // GUARDED_BY(mu_)
  // CancelReads calls so far. A cancel applies to the reads started before it only: the I/O thread
  // may see it after those reads finished, and must not cancel the next step's reads then.
  uint64_t cancel_gen_ = 0;                      // GUARDED_BY(mu_)
  std::deque<Read> submitted_;                   // GUARDED_BY(mu_): not yet seen by the I/O thread
  std::deque<std::pair<uint64_t, ComputeTask>> compute_tasks_;  // in order; GUARDED_BY(mu_)
  std::deque<PipelineEvent> events_;             // GUARDED_BY(mu_)

  // I/O thread only.
  static constexpr uint32_t kLeadDirectReads = 8;
  std::deque<Read> active_;
  std::deque<Read> waiting_;  // not begun yet: a later layer's DIRECT reads held back
  std::optional<uint64_t> step_;
  std::vector<uint64_t> layer_tokens_;
  std::vector<bool> layer_probed_;
  // Per (layer, chunk) of the step: a KvSource, written when the chunk lands. Ordered before its
  // readers by the event hand-over through mu_.
  std::vector<uint8_t> sources_;
  uint64_t source_stride_ = 0;  // chunks per layer in sources_

  std::atomic<uint64_t> chunks_page_{0}, chunks_direct_{0}, chunks_memory_{0};
  std::atomic<uint64_t> bytes_page_{0}, bytes_direct_{0}, page_copy_us_{0};
  std::atomic<uint64_t> bytes_staged_{0}, batches_{0}, compute_run_us_{0};

  std::thread io_thread_, compute_thread_;  // last: started once everything above exists
};

}  // namespace dualblade
