#include "pipeline/sim_executor.h"

#include <algorithm>
#include <string>

#include <gtest/gtest.h>

#include "common/check.h"

namespace dualblade {

uint8_t SimPattern(uint64_t step, uint32_t layer, uint32_t chunk, size_t i) {
  return static_cast<uint8_t>(step * 131 + layer * 31 + chunk * 7 + i);
}

void SimExecutor::StartRead(uint64_t token, const ReadRequest& req) {
  issued_.push_back({req.layer, req.first_chunk, req.n_chunks});
  uint64_t service = cfg_.request_overhead_us;
  for (uint32_t i = 0; i < req.n_chunks; ++i) {
    service += static_cast<uint64_t>(cfg_.io_us_per_chunk * (0.5 + rng_.Uniform()));
  }
  uint64_t start = std::max(now_us_, device_free_us_);
  device_free_us_ = start + service;
  uint64_t done = device_free_us_ + static_cast<uint64_t>(cfg_.io_latency_us_max * rng_.Uniform());
  Event e;
  e.time_us = done;
  e.seq = seq_++;
  e.ev.kind = PipelineEvent::Kind::kRead;
  e.ev.token = token;
  e.read = req;
  if (req.step == fail_step_ && req.layer == fail_layer_) {
    fail_step_ = UINT64_MAX;
    e.ev.status = Status::IOError("simulated media error").MarkInjected();
  } else if (cfg_.read_error_rate > 0 && rng_.Uniform() < cfg_.read_error_rate) {
    e.ev.status = Status::IOError("simulated read error").MarkInjected();
  }
  events_.push(std::move(e));
}

void SimExecutor::StartCompute(uint64_t token, const ComputeTask& task) {
  double us = task.layer_tail
                  ? (1 - cfg_.attention_fraction) * cfg_.compute_us_per_layer
                  : cfg_.attention_fraction * cfg_.compute_us_per_layer / cfg_.chunks_per_layer *
                        static_cast<double>(task.chunks.size());
  us *= 0.9 + 0.2 * rng_.Uniform();
  // One task at a time, in the order started: a task queued behind another starts when it ends.
  const uint64_t start =
      compute_free_us_ > now_us_ ? compute_free_us_ : now_us_ + cfg_.compute_wake_us;
  compute_free_us_ = start + static_cast<uint64_t>(us);
  Event e;
  e.time_us = compute_free_us_;
  e.seq = seq_++;
  e.ev.kind = PipelineEvent::Kind::kCompute;
  e.ev.token = token;
  events_.push(std::move(e));
}

PipelineEvent SimExecutor::WaitEvent() {
  if (between_events_) between_events_();
  DB_CHECK_MSG(!events_.empty(), "waiting with no event pending: the pipeline deadlocked");
  Event e = events_.top();
  events_.pop();
  DB_CHECK(e.time_us >= now_us_);
  now_us_ = e.time_us;
  ++n_events_;
  digest_ = digest_ * 1099511628211ull + e.time_us * 3 + e.ev.token * 5 +
            static_cast<uint64_t>(e.ev.kind);
  if (e.ev.kind == PipelineEvent::Kind::kRead && e.ev.status.ok()) {
    for (uint32_t c = 0; c < e.read.n_chunks; ++c) {
      std::span<uint8_t> buf = e.read.buffers[c];
      // Every 997th byte (the ones the consumer checks): full fills would dominate the run time.
      for (size_t i = 0; i < buf.size(); i += 997) {
        buf[i] = SimPattern(e.read.step, e.read.layer, e.read.first_chunk + c, i);
      }
    }
  }
  if (n_events_ == cfg_.cancel_at_event && cancel_) {
    cancel_fired_ = true;
    cancel_();
  }
  return e.ev;
}

RecordingConsumer::RecordingConsumer(uint32_t n_layer, uint32_t chunks_per_layer)
    : n_layer_(n_layer), chunks_per_layer_(chunks_per_layer) {}

void RecordingConsumer::BeginStep(uint64_t step) {
  step_ = step;
  layers_ended_ = 0;
  delivered_.assign(size_t{n_layer_} * chunks_per_layer_, 0);
}

void RecordingConsumer::OnChunk(uint64_t step, uint32_t layer, uint32_t chunk,
                                std::span<const uint8_t> data) {
  EXPECT_EQ(step, step_);
  EXPECT_EQ(layer, layers_ended_) << "chunk handed over outside its layer's turn";
  ASSERT_LT(chunk, chunks_per_layer_);
  EXPECT_EQ(++delivered_[size_t{layer} * chunks_per_layer_ + chunk], 1u)
      << "layer " << layer << " chunk " << chunk << " delivered twice";
  for (size_t i = 0; i < data.size(); i += 997) {
    ASSERT_EQ(data[i], SimPattern(step, layer, chunk, i)) << "wrong bytes in chunk " << chunk;
  }
}

void RecordingConsumer::OnLayerEnd(uint64_t step, uint32_t layer) {
  EXPECT_EQ(step, step_);
  EXPECT_EQ(layer, layers_ended_);
  // The merge walks the partials in chunk order; each must be there exactly once.
  for (uint32_t c = 0; c < chunks_per_layer_; ++c) {
    EXPECT_EQ(delivered_[size_t{layer} * chunks_per_layer_ + c], 1u) << "chunk " << c;
  }
  ++layers_ended_;
}

bool RecordingConsumer::StepComplete() const {
  if (layers_ended_ != n_layer_) return false;
  return std::all_of(delivered_.begin(), delivered_.end(), [](uint32_t n) { return n == 1; });
}

SimHarness::SimHarness(const SimConfig& cfg, uint64_t budget_bytes, const PipelinePlan& plan,
                       bool auto_depth)
    : cfg_(cfg),
      budget_bytes_(budget_bytes),
      executor_(cfg),
      consumer_(cfg.n_layer, cfg.chunks_per_layer) {
  auto pool = StagingPool::Create({.buffer_bytes = cfg.chunk_bytes, .budget_bytes = budget_bytes});
  DB_CHECK_MSG(pool.ok(), "bad simulated pool");
  pool_ = std::move(*pool);
  PrefetcherOptions opts;
  opts.n_layer = cfg.n_layer;
  opts.chunks_per_layer = cfg.chunks_per_layer;
  opts.chunk_bytes = cfg.chunk_bytes;
  opts.fixed_plan = plan;
  opts.max_compute_queue = cfg.compute_queue;
  if (cfg.issue_start_shift != 0) {
    opts.issue_start_chunk = [n = cfg.chunks_per_layer, k = cfg.issue_start_shift](uint32_t l) {
      return (l + k) % (n + 1);
    };
  }
  if (auto_depth) {
    AdaptiveControllerOptions c;
    c.layer_bytes = cfg.chunk_bytes * cfg.chunks_per_layer;
    c.chunk_bytes = cfg.chunk_bytes;
    c.staging_budget_bytes = pool_->capacity_bytes();
    controller_ = std::make_unique<AdaptiveController>(c);
    opts.controller = controller_.get();
  }
  prefetcher_ = std::make_unique<Prefetcher>(opts, pool_.get(), &executor_, &consumer_);
  executor_.SetCancel([this] { prefetcher_->Cancel(); });
  executor_.SetBetweenEvents([this] {
    ASSERT_LE(pool_->in_use_bytes(), budget_bytes_);
    ASSERT_EQ(prefetcher_->leases_held(), pool_->in_use_buffers());
  });
}

Status SimHarness::RunStep(uint64_t step, StepStats* stats) {
  consumer_.BeginStep(step);
  return prefetcher_->RunStep(step, stats);
}

}  // namespace dualblade
