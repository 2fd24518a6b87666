#include "pipeline/prefetcher.h"

#include <algorithm>
#include <utility>

#include "common/check.h"
#include "common/log.h"

namespace dualblade {
namespace {

enum ChunkState : uint8_t { kPending, kInFlight, kReady, kComputing, kDone };

}  // namespace

Prefetcher::Prefetcher(const PrefetcherOptions& opts, StagingPool* pool,
                       PipelineExecutor* executor, ChunkConsumer* consumer)
    : opts_(opts), pool_(pool), executor_(executor), consumer_(consumer) {
  DB_CHECK(opts_.n_layer > 0 && opts_.chunks_per_layer > 0);
  DB_CHECK(opts_.chunk_bytes > 0 && opts_.chunk_bytes <= pool_->buffer_bytes());
  DB_CHECK(executor_ != nullptr && consumer_ != nullptr);
}

void Prefetcher::CountRead(int delta) {
  uint64_t now = executor_->NowUs();
  if (delta > 0 && reads_in_flight_ == 0) io_busy_since_us_ = now;
  reads_in_flight_ = static_cast<uint32_t>(static_cast<int>(reads_in_flight_) + delta);
  if (delta < 0 && reads_in_flight_ == 0) stats_.io_busy_us += now - io_busy_since_us_;
}

void Prefetcher::Fail(Status s) {
  if (!failed_.ok()) return;  // the first error wins
  failed_ = std::move(s);
  executor_->CancelReads();
  // Landed chunks nobody will compute give their buffers back now.
  for (Slot& slot : slots_) {
    if (slot.state == kReady) {
      slot.lease.Release();
      --leases_held_;
      slot.state = kDone;
    }
  }
}

void Prefetcher::StartLayer() {
  cursor_start_ = 0;
  if (cursor_layer_ < opts_.n_layer && opts_.issue_start_chunk) {
    cursor_start_ = opts_.issue_start_chunk(cursor_layer_);
    if (cursor_start_ >= opts_.chunks_per_layer) cursor_start_ = 0;
  }
}

void Prefetcher::IssueReads() {
  const uint32_t last_layer =
      std::min<uint64_t>(uint64_t{computing_layer_} + plan_.depth, opts_.n_layer - 1);
  while (failed_.ok() && cursor_layer_ < opts_.n_layer && cursor_layer_ <= last_layer &&
         reads_in_flight_ < plan_.queue_depth) {
    const uint32_t n = opts_.chunks_per_layer;
    const uint32_t chunk = (cursor_start_ + cursor_pos_) % n;
    // A request never wraps past the layer's last chunk: its chunks are one contiguous range.
    const uint32_t want = std::min({plan_.request_chunks, n - cursor_pos_, n - chunk});
    Request req;
    req.layer = cursor_layer_;
    req.first_chunk = chunk;
    while (req.leases.size() < want) {
      std::optional<StagingLease> lease = pool_->TryAcquire();
      if (!lease) break;
      req.leases.push_back(std::move(*lease));
    }
    if (req.leases.empty()) return;  // pool exhausted: a completion will free a buffer
    // A tight pool shortens the request rather than waiting for it to fill.
    ReadRequest rr;
    rr.step = step_;
    rr.layer = req.layer;
    rr.first_chunk = req.first_chunk;
    rr.n_chunks = static_cast<uint32_t>(req.leases.size());
    for (StagingLease& l : req.leases) rr.buffers.push_back(l.span().first(opts_.chunk_bytes));
    for (uint32_t i = 0; i < rr.n_chunks; ++i) {
      Slot& slot = slots_[size_t{req.layer} * opts_.chunks_per_layer + req.first_chunk + i];
      DB_CHECK(slot.state == kPending);
      slot.state = kInFlight;
    }
    leases_held_ += rr.n_chunks;
    stats_.peak_staging_bytes =
        std::max<uint64_t>(stats_.peak_staging_bytes, leases_held_ * pool_->buffer_bytes());
    cursor_pos_ += rr.n_chunks;
    if (cursor_pos_ == n) {
      cursor_pos_ = 0;
      ++cursor_layer_;
      StartLayer();
    }
    uint64_t token = requests_.size();
    requests_.push_back(std::move(req));
    ++stats_.reads;
    CountRead(+1);
    executor_->StartRead(token, rr);
  }
}

void Prefetcher::QueueCompute() {
  const size_t max_queue = std::max<uint32_t>(opts_.max_compute_queue, 1);
  while (failed_.ok() && compute_q_.size() < max_queue && handing_layer_ < opts_.n_layer) {
    const uint32_t l = handing_layer_;
    ComputeTask task;
    task.step = step_;
    task.layer = l;
    ComputeInFlight f;
    f.layer = l;
    if (!opts_.stream_chunks && ready_[l].size() < opts_.chunks_per_layer) {
      return;  // no overlap: the layer computes once all of it has landed
    } else if (ready_head_[l] < ready_[l].size()) {
      const uint32_t max_chunks = std::max<uint32_t>(opts_.max_chunks_per_compute, 1);
      while (ready_head_[l] < ready_[l].size() && task.chunks.size() < max_chunks) {
        const uint32_t chunk = ready_[l][ready_head_[l]++];
        Slot& slot = slots_[size_t{l} * opts_.chunks_per_layer + chunk];
        DB_CHECK(slot.state == kReady);
        slot.state = kComputing;
        std::span<const uint8_t> data = slot.lease.span().first(opts_.chunk_bytes);
        task.chunks.push_back(chunk);
        task.data.push_back(data);
        ++stats_.chunks_delivered;
        consumer_->OnChunk(step_, l, chunk, data);
      }
      f.chunks = task.chunks;
    } else if (chunks_done_[l] == opts_.chunks_per_layer) {
      // Every partial is computed: merge, then the tail. The next layer's chunks may queue
      // behind it (the compute resource runs them after the tail, as the model needs).
      consumer_->OnLayerEnd(step_, l);
      task.layer_tail = true;
      f.tail = true;
      ++handing_layer_;
    } else {
      return;  // waiting for this layer's reads (the stall the depth exists to remove) or partials
    }
    if (compute_q_.empty()) compute_busy_since_us_ = executor_->NowUs();
    f.token = ++compute_token_;
    compute_q_.push_back(std::move(f));
    ++stats_.compute_tasks;
    executor_->StartCompute(compute_token_, task);
  }
}

void Prefetcher::OnRead(const PipelineEvent& ev) {
  DB_CHECK(ev.token < requests_.size());
  Request& req = requests_[ev.token];
  CountRead(-1);
  if (!ev.status.ok()) {
    Fail(ev.status.Annotate("reading layer " + std::to_string(req.layer) + " chunks " +
                            std::to_string(req.first_chunk) + ".." +
                            std::to_string(req.first_chunk + req.leases.size() - 1)));
  }
  for (size_t i = 0; i < req.leases.size(); ++i) {
    uint32_t chunk = req.first_chunk + static_cast<uint32_t>(i);
    Slot& slot = slots_[size_t{req.layer} * opts_.chunks_per_layer + chunk];
    DB_CHECK(slot.state == kInFlight);
    if (failed_.ok()) {
      slot.lease = std::move(req.leases[i]);
      slot.state = kReady;
      ready_[req.layer].push_back(chunk);
    } else {
      req.leases[i].Release();
      --leases_held_;
      slot.state = kDone;
    }
  }
  req.leases.clear();
}

void Prefetcher::OnCompute(const PipelineEvent& ev) {
  DB_CHECK(!compute_q_.empty() && ev.token == compute_q_.front().token);
  ComputeInFlight f = std::move(compute_q_.front());
  compute_q_.pop_front();
  if (compute_q_.empty()) stats_.compute_busy_us += executor_->NowUs() - compute_busy_since_us_;
  if (!f.tail) {
    // Chunks finished: their partials are kept by the consumer, their buffers can take the next
    // reads.
    for (uint32_t chunk : f.chunks) {
      Slot& slot = slots_[size_t{f.layer} * opts_.chunks_per_layer + chunk];
      DB_CHECK(slot.state == kComputing);
      slot.lease.Release();
      --leases_held_;
      slot.state = kDone;
      ++chunks_done_[f.layer];
    }
  } else {
    DB_CHECK(f.layer == computing_layer_);
    ++computing_layer_;
  }
  if (!ev.status.ok()) {
    Fail(ev.status.Annotate(std::string("computing layer ") + std::to_string(f.layer) +
                            (f.tail ? " (tail)" : "")));
  }
}

Status Prefetcher::RunStep(uint64_t step, StepStats* stats) {
  DB_CHECK_MSG(leases_held_ == 0 && reads_in_flight_ == 0 && compute_q_.empty(),
               "RunStep re-entered");
  if (!opts_.stream_chunks && pool_->capacity_buffers() < opts_.chunks_per_layer) {
    return Status::InvalidArgument("a step that computes whole layers needs a staging pool of " +
                                   std::to_string(opts_.chunks_per_layer) + " buffers, not " +
                                   std::to_string(pool_->capacity_buffers()));
  }
  step_ = step;
  plan_ = opts_.controller != nullptr ? opts_.controller->plan() : opts_.fixed_plan;
  plan_.request_chunks = std::max<uint32_t>(plan_.request_chunks, 1);
  plan_.queue_depth = std::max<uint32_t>(plan_.queue_depth, 1);
  failed_ = Status::OK();
  slots_.clear();  // leases are move-only, so no assign()
  slots_.resize(size_t{opts_.n_layer} * opts_.chunks_per_layer);
  ready_.assign(opts_.n_layer, {});
  ready_head_.assign(opts_.n_layer, 0);
  requests_.clear();
  cursor_layer_ = cursor_pos_ = 0;
  StartLayer();
  computing_layer_ = handing_layer_ = 0;
  chunks_done_.assign(opts_.n_layer, 0);
  stats_ = StepStats{};
  stats_.depth = plan_.depth;
  stats_.request_chunks = plan_.request_chunks;
  stats_.queue_depth = plan_.queue_depth;
  const uint64_t start_us = executor_->NowUs();

  while (true) {
    if (cancel_requested_.exchange(false, std::memory_order_relaxed)) {
      Fail(Status::Busy("decode step " + std::to_string(step) + " cancelled"));
    }
    IssueReads();
    QueueCompute();
    bool finished = failed_.ok() ? computing_layer_ == opts_.n_layer : true;
    if (finished && reads_in_flight_ == 0 && compute_q_.empty()) break;
    // Something must be in flight, or the step can never end (the no-deadlock invariant).
    DB_CHECK_MSG(reads_in_flight_ > 0 || !compute_q_.empty(),
                 "pipeline waits with nothing in flight");
    PipelineEvent ev = executor_->WaitEvent();
    if (ev.kind == PipelineEvent::Kind::kRead) {
      OnRead(ev);
    } else {
      OnCompute(ev);
    }
  }
  DB_CHECK(leases_held_ == 0);
  stats_.step_us = executor_->NowUs() - start_us;
  stats_.stall_us = stats_.step_us - std::min(stats_.step_us, stats_.compute_busy_us);
  if (stats != nullptr) *stats = stats_;
  if (failed_.ok() && opts_.controller != nullptr) {
    double n = opts_.n_layer;
    opts_.controller->Observe(stats_.io_busy_us / n, stats_.compute_busy_us / n,
                              stats_.stall_us / n);
  }
  DB_LOG_DEBUG("step %llu at depth %u: %.1f ms, I/O busy %.1f ms, compute busy %.1f ms "
               "(%llu tasks), stall %.1f ms%s%s",
               static_cast<unsigned long long>(step), stats_.depth, stats_.step_us / 1000.0,
               stats_.io_busy_us / 1000.0, stats_.compute_busy_us / 1000.0,
               static_cast<unsigned long long>(stats_.compute_tasks),
               stats_.stall_us / 1000.0, opts_.controller != nullptr ? "; next " : "",
               opts_.controller != nullptr
                   ? opts_.controller->last_decision().ToString().c_str()
                   : "");
  return failed_;
}

}  // namespace dualblade
