// Test support: a seeded discrete-event PipelineExecutor on a fake clock, a recording consumer
// and a harness that wires them to a StagingPool and a Prefetcher. Nothing here reads a real
// clock or starts a thread, so one seed fixes every event and its time.
//
// Device model: reads are served one at a time in submission order (a bandwidth-bound SSD);
// each chunk takes io_us_per_chunk * U(0.5, 1.5), each request adds request_overhead_us, and the
// completion reaches the host io_latency_us_max * U(0, 1) later (interrupt and queueing latency,
// which a deeper queue hides). Compute is one serial resource running its tasks in order: a
// chunk's attention partial takes attention_fraction * compute_us_per_layer / chunks_per_layer, a
// layer's tail the rest, each scaled by U(0.9, 1.1); a task that finds it idle waits
// compute_wake_us first.
//
// Thread-safety: none.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <queue>
#include <vector>

#include "pipeline/prefetcher.h"

namespace dualblade {

// splitmix64: tiny, and identical on every platform and standard library.
class SimRng {
 public:
  explicit SimRng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint64_t Below(uint64_t n) { return n == 0 ? 0 : Next() % n; }
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }  // [0, 1)

 private:
  uint64_t state_;
};

struct SimConfig {
  uint64_t seed = 1;
  uint32_t n_layer = 4;
  uint32_t chunks_per_layer = 8;
  uint64_t chunk_bytes = 4096;
  uint64_t io_us_per_chunk = 100;
  uint64_t request_overhead_us = 2;
  uint64_t io_latency_us_max = 50;
  uint64_t compute_us_per_layer = 800;
  double attention_fraction = 0.2;
  // A compute task started while the compute resource is idle begins this much later (a
  // sleeping compute thread being woken); one queued behind another begins when it ends.
  uint64_t compute_wake_us = 0;
  uint32_t compute_queue = 2;    // PrefetcherOptions::max_compute_queue
  double read_error_rate = 0;    // per read request
  uint64_t cancel_at_event = 0;  // 1-based event index at which Cancel() is called; 0 = never
  // PrefetcherOptions::issue_start_chunk: 0 = none; else layer l's reads start at chunk
  // (l + issue_start_shift) % (chunks_per_layer + 1), chunks_per_layer itself meaning chunk 0.
  uint32_t issue_start_shift = 0;
};

class SimExecutor final : public PipelineExecutor {
 public:
  explicit SimExecutor(const SimConfig& cfg) : cfg_(cfg), rng_(cfg.seed) {}

  uint64_t NowUs() const override { return now_us_; }
  void StartRead(uint64_t token, const ReadRequest& req) override;
  void StartCompute(uint64_t token, const ComputeTask& task) override;
  void CancelReads() override { ++cancel_reads_calls_; }
  PipelineEvent WaitEvent() override;

  // Called between events (before each wait), for invariant checks.
  void SetBetweenEvents(std::function<void()> fn) { between_events_ = std::move(fn); }
  // Called at cancel_at_event.
  void SetCancel(std::function<void()> fn) { cancel_ = std::move(fn); }
  // The next read of this layer in this step fails.
  void FailReadOfLayer(uint64_t step, uint32_t layer) { fail_step_ = step; fail_layer_ = layer; }

  size_t outstanding() const { return events_.size(); }
  bool cancel_fired() const { return cancel_fired_; }
  uint64_t events() const { return n_events_; }
  // (layer, first chunk, chunks) of every read started, in order.
  struct Issued {
    uint32_t layer, first_chunk, n_chunks;
  };
  const std::vector<Issued>& issued() const { return issued_; }
  uint64_t trace_digest() const { return digest_; }

 private:
  struct Event {
    uint64_t time_us = 0;
    uint64_t seq = 0;  // ties broken by submission order, so the order is total and deterministic
    PipelineEvent ev;
    ReadRequest read;  // reads: the buffers to fill on completion
    bool operator>(const Event& o) const {
      return time_us != o.time_us ? time_us > o.time_us : seq > o.seq;
    }
  };

  SimConfig cfg_;
  SimRng rng_;
  uint64_t now_us_ = 0;
  uint64_t device_free_us_ = 0;
  uint64_t seq_ = 0;
  uint64_t n_events_ = 0;
  std::vector<Issued> issued_;
  uint64_t digest_ = 0;
  uint64_t compute_free_us_ = 0;  // when the serial compute resource finishes its queue
  bool cancel_fired_ = false;
  uint64_t cancel_reads_calls_ = 0;
  uint64_t fail_step_ = UINT64_MAX;
  uint32_t fail_layer_ = 0;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> events_;
  std::function<void()> between_events_;
  std::function<void()> cancel_;
};

// Records deliveries and checks, as they happen, that each chunk is handed over exactly once,
// only while its layer computes, with the bytes its read wrote.
class RecordingConsumer final : public ChunkConsumer {
 public:
  RecordingConsumer(uint32_t n_layer, uint32_t chunks_per_layer);
  void BeginStep(uint64_t step);
  void OnChunk(uint64_t step, uint32_t layer, uint32_t chunk,
               std::span<const uint8_t> data) override;
  void OnLayerEnd(uint64_t step, uint32_t layer) override;
  // Every layer ended with every chunk delivered once.
  bool StepComplete() const;

 private:
  uint32_t n_layer_, chunks_per_layer_;
  uint64_t step_ = 0;
  uint32_t layers_ended_ = 0;
  std::vector<uint32_t> delivered_;  // per (layer, chunk) this step
};

// The byte a simulated read writes at offset i of (step, layer, chunk).
uint8_t SimPattern(uint64_t step, uint32_t layer, uint32_t chunk, size_t i);

class SimHarness {
 public:
  SimHarness(const SimConfig& cfg, uint64_t budget_bytes, const PipelinePlan& plan,
             bool auto_depth);
  Status RunStep(uint64_t step, StepStats* stats);

  StagingPool& pool() { return *pool_; }
  SimExecutor& executor() { return executor_; }
  RecordingConsumer& consumer() { return consumer_; }
  Prefetcher& prefetcher() { return *prefetcher_; }
  AdaptiveController* controller() { return controller_.get(); }

 private:
  SimConfig cfg_;
  uint64_t budget_bytes_;
  std::unique_ptr<StagingPool> pool_;
  SimExecutor executor_;
  RecordingConsumer consumer_;
  std::unique_ptr<AdaptiveController> controller_;
  std::unique_ptr<Prefetcher> prefetcher_;
};

}  // namespace dualblade
