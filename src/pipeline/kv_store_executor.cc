#include "pipeline/kv_store_executor.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

#include "common/check.h"

namespace dualblade {

Result<std::unique_ptr<KvStoreExecutor>> KvStoreExecutor::Create(
    store::KvStore* kv, const KvStoreExecutorOptions& opts) {
  if (kv == nullptr || !opts.compute)
    return Status::InvalidArgument("the KV executor needs a KV store and a compute function");
  DB_ASSIGN_OR_RETURN(store::KvSequenceInfo info, kv->Describe(opts.seq));
  auto ex = std::unique_ptr<KvStoreExecutor>(new KvStoreExecutor(kv, opts));
  ex->n_layer_ = info.geometry.n_layer;
  ex->chunk_tokens_ = info.geometry.chunk_tokens;
  ex->row_bytes_ = info.geometry.row_bytes();
  ex->part_bytes_ = info.layout.chunk_part_bytes();
  // Started only now, so the threads see every field above (thread creation orders them).
  ex->io_thread_ = std::thread([p = ex.get()] { p->IoLoop(); });
  ex->compute_thread_ = std::thread([p = ex.get()] { p->ComputeLoop(); });
  return ex;
}

KvStoreExecutor::KvStoreExecutor(store::KvStore* kv, const KvStoreExecutorOptions& opts)
    : kv_(kv), opts_(opts), epoch_(std::chrono::steady_clock::now()) {
  if (opts_.copy_stage == nullptr) {
    own_copy_ = std::make_unique<CpuCopyStage>();
    copy_ = own_copy_.get();
  } else {
    copy_ = opts_.copy_stage;
  }
}

KvStoreExecutor::~KvStoreExecutor() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  io_cv_.notify_all();
  compute_cv_.notify_all();
  if (io_thread_.joinable()) io_thread_.join();
  if (compute_thread_.joinable()) compute_thread_.join();
}

uint64_t KvStoreExecutor::NowUs() const {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::steady_clock::now() - epoch_)
                                   .count());
}

void KvStoreExecutor::StartRead(uint64_t token, const ReadRequest& req) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    Read r;
    r.token = token;
    r.cancel_gen = cancel_gen_;
    r.req = req;
    submitted_.push_back(std::move(r));
  }
  io_cv_.notify_one();
}

void KvStoreExecutor::StartCompute(uint64_t token, const ComputeTask& task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    compute_tasks_.emplace_back(token, task);
  }
  compute_cv_.notify_one();
}

void KvStoreExecutor::CancelReads() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++cancel_gen_;
  }
  io_cv_.notify_one();
}

PipelineEvent KvStoreExecutor::WaitEvent() {
  std::unique_lock<std::mutex> lock(mu_);
  event_cv_.wait(lock, [&] { return !events_.empty(); });
  PipelineEvent ev = std::move(events_.front());
  events_.pop_front();
  return ev;
}

KvExecutorStats KvStoreExecutor::stats() const {
  KvExecutorStats s;
  s.chunks_page = chunks_page_.load();
  s.chunks_direct = chunks_direct_.load();
  s.chunks_memory = chunks_memory_.load();
  s.bytes_page = bytes_page_.load();
  s.bytes_direct = bytes_direct_.load();
  s.page_copy_us = page_copy_us_.load();
  s.bytes_staged = bytes_staged_.load();
  s.batches = batches_.load();
  s.compute_run_us = compute_run_us_.load();
  return s;
}

store::KvSource KvStoreExecutor::source(uint32_t layer, uint32_t chunk) const {
  const uint64_t i = uint64_t{layer} * source_stride_ + chunk;
  return i < sources_.size() && chunk < source_stride_ ? static_cast<store::KvSource>(sources_[i])
                                                       : store::KvSource::kMemory;
}

void KvStoreExecutor::Post(PipelineEvent ev) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(std::move(ev));
  }
  event_cv_.notify_one();
}

void KvStoreExecutor::ComputeLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    compute_cv_.wait(lock, [&] { return stop_ || !compute_tasks_.empty(); });
    if (stop_) return;
    const uint64_t token = compute_tasks_.front().first;
    const ComputeTask task = std::move(compute_tasks_.front().second);
    compute_tasks_.pop_front();
    lock.unlock();
    const uint64_t t0 = NowUs();
    Status st = RunCompute(task);
    compute_run_us_.fetch_add(NowUs() - t0, std::memory_order_relaxed);
    lock.lock();
    events_.push_back(PipelineEvent{PipelineEvent::Kind::kCompute, token, std::move(st)});
    event_cv_.notify_one();
  }
}

Status KvStoreExecutor::RunCompute(const ComputeTask& task) {
  KvComputeUnit unit{task.step, task.layer, task.layer_tail, 0};
  if (task.layer_tail) return opts_.compute(unit, {});
  for (size_t i = 0; i < task.chunks.size(); ++i) {
    unit.chunk = task.chunks[i];
    Result<std::span<const uint8_t>> mem = copy_->Acquire(task.data[i]);
    Status st = mem.ok() ? opts_.compute(unit, *mem) : mem.status();
    copy_->Release(task.data[i]);
    DB_RETURN_IF_ERROR(st);
  }
  return Status::OK();
}

void KvStoreExecutor::IoLoop() {
  uint64_t seen_cancel_gen = 0;
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    io_cv_.wait(lock, [&] {
      return stop_ || cancel_gen_ != seen_cancel_gen || !submitted_.empty() || !active_.empty() ||
             !waiting_.empty();
    });
    std::deque<Read> fresh;
    fresh.swap(submitted_);
    const bool stop = stop_;
    const uint64_t cancel_gen = cancel_gen_;
    lock.unlock();
    if (stop) {
      CancelBefore(UINT64_MAX, &fresh);
      return;
    }
    if (cancel_gen != seen_cancel_gen) {
      seen_cancel_gen = cancel_gen;
      CancelBefore(cancel_gen, &fresh);
    }
    // Within each layer, DIRECT reads first: their requests reach the device queue before the
    // page-cache copies, which the kernel does inline at submission on this thread, so the
    // device reads while the CPU copies instead of after. Layers keep their order: a later
    // layer's DIRECT reads must not take the engine's queue from the computing layer's copies.
    for (Read& r : fresh) {
      Result<store::KvPath> path = kv_->ChunkPath(opts_.seq, r.req.layer, r.req.first_chunk);
      r.direct = !path.ok() || *path == store::KvPath::kDirect;
      waiting_.push_back(std::move(r));
    }
    std::stable_sort(waiting_.begin(), waiting_.end(), [](const Read& a, const Read& b) {
      if (a.req.layer != b.req.layer) return a.req.layer < b.req.layer;
      return a.direct && !b.direct;
    });
    // A later layer's DIRECT reads wait while the oldest layer being read still has
    // kLeadDirectReads of its own in the device: the device serves what it holds side by side,
    // so a step's first layer would otherwise land only with the second (its tail started at
    // twice a layer's I/O time where reads were mostly direct). Below that many the device
    // would go short of work, so the next layer's reads join then.
    while (!waiting_.empty()) {
      Read& r = waiting_.front();
      if (r.direct && !active_.empty() && r.req.layer > active_.front().req.layer) {
        uint32_t lead = 0;
        for (const Read& a : active_) lead += a.direct && a.req.layer == active_.front().req.layer;
        if (lead >= kLeadDirectReads) break;
      }
      Read w = std::move(r);
      waiting_.pop_front();
      Begin(w);  // queues DIRECT requests only: PAGE ones are copied when first polled
      if (w.status.ok()) {
        active_.push_back(std::move(w));
      } else {
        Finish(w);
      }
    }
    // One pass without waiting, oldest first: submits new batches and delivers what has landed.
    bool finished_any = false;
    auto poll = [&](size_t i) {  // true when read I finished (and left active_)
      PollRead(active_[i], /*wait=*/false);
      if (active_[i].status.ok() && !active_[i].batch->done()) return false;
      Finish(active_[i]);
      active_.erase(active_.begin() + static_cast<ptrdiff_t>(i));
      finished_any = true;
      return true;
    };
    for (size_t i = 0; i < active_.size();) {
      // Before a later layer's page-cache read (the kernel copies it inline in the poll:
      // milliseconds of this thread), deliver what the earlier layers' reads have landed since:
      // compute waits for those, not for the later layer. Without this a step's first layer
      // was complete only once the next layer's copies were done too (its tail started at
      // twice a layer's I/O time).
      if (!active_[i].direct && active_[i].req.layer > active_.front().req.layer) {
        for (size_t j = 0; j < i;) {
          if (poll(j)) {
            --i;
          } else {
            ++j;
          }
        }
      }
      if (!poll(i)) ++i;
    }
    // Nothing finished: block in the kernel on the oldest read (the computing layer's, since
    // reads are issued in layer order) unless new work or a cancel arrived meanwhile. A command
    // arriving while blocked waits at most one completion; the device queue stays full meanwhile.
    if (!finished_any && !active_.empty()) {
      lock.lock();
      const bool pending = stop_ || cancel_gen_ != seen_cancel_gen || !submitted_.empty();
      lock.unlock();
      if (!pending) {
        Read& r = active_.front();
        PollRead(r, /*wait=*/true);
        if (!r.status.ok() || r.batch->done()) {
          Finish(r);
          active_.pop_front();
        }
      }
    }
    lock.lock();
  }
}

void KvStoreExecutor::Begin(Read& r) {
  const ReadRequest& q = r.req;
  if (!step_ || *step_ != q.step) {
    Result<store::KvSequenceInfo> info = kv_->Describe(opts_.seq);
    if (!info.ok()) {
      r.status = info.status();
      return;
    }
    layer_tokens_ = info->n_tokens;
    layer_probed_.assign(layer_tokens_.size(), false);
    uint64_t max_tokens = 0;
    for (uint64_t t : layer_tokens_) max_tokens = std::max(max_tokens, t);
    source_stride_ = (max_tokens + chunk_tokens_ - 1) / chunk_tokens_;
    sources_.assign(layer_tokens_.size() * source_stride_, 0);
    step_ = q.step;
  }
  const std::string what = "layer " + std::to_string(q.layer) + " chunks " +
                           std::to_string(q.first_chunk) + ".." +
                           std::to_string(uint64_t{q.first_chunk} + q.n_chunks - 1);
  if (q.layer >= layer_tokens_.size()) {
    r.status = Status::InvalidArgument("read of " + what + ": the sequence has " +
                                       std::to_string(layer_tokens_.size()) + " layers");
    return;
  }
  if (q.n_chunks == 0 || q.buffers.size() != q.n_chunks) {
    r.status = Status::InvalidArgument("read of " + what + " without one buffer per chunk");
    return;
  }
  for (const std::span<uint8_t>& b : q.buffers) {
    if (b.size() < chunk_staging_bytes()) {
      r.status = Status::InvalidArgument("read of " + what + ": a staging buffer of " +
                                         std::to_string(b.size()) + " bytes holds less than one " +
                                         std::to_string(chunk_staging_bytes()) + "-byte chunk");
      return;
    }
  }
  const uint64_t ct = chunk_tokens_;
  r.token_begin = uint64_t{q.first_chunk} * ct;
  r.token_end = std::min((uint64_t{q.first_chunk} + q.n_chunks) * ct, layer_tokens_[q.layer]);
  if (r.token_end <= r.token_begin || (r.token_end - r.token_begin + ct - 1) / ct != q.n_chunks) {
    r.status = Status::InvalidArgument("read of " + what + " beyond the " +
                                       std::to_string(layer_tokens_[q.layer]) +
                                       " tokens of the layer");
    return;
  }
  if (opts_.before_layer_read && !layer_probed_[q.layer]) {
    layer_probed_[q.layer] = true;
    r.status = opts_.before_layer_read(q.layer);
    if (!r.status.ok()) return;
  }
  store::KvRange range{opts_.seq, q.layer, r.token_begin, r.token_end};
  Result<std::unique_ptr<store::KvReadBatch>> batch = kv_->StartReadInto(
      std::span<const store::KvRange>(&range, 1), [&](size_t, uint64_t chunk) {
        uint8_t* buf = q.buffers[chunk - q.first_chunk].data();
        return store::KvChunkTarget{buf, buf + part_bytes_, part_bytes_};
      });
  if (!batch.ok()) {
    r.status = batch.status();
    return;
  }
  r.batch = std::move(batch).value();
  r.landed.assign(q.n_chunks, 0);
  batches_.fetch_add(1, std::memory_order_relaxed);
}

void KvStoreExecutor::PollRead(Read& r, bool wait) {
  // A waiting poll of a PAGE read is a miss waiting for the device: that counts as the PAGE
  // path's time too, as what a miss costs the path.
  const uint64_t t0 = r.direct ? 0 : NowUs();
  Result<size_t> n = r.batch->Poll(wait, [&](const store::KvChunkView& v) { Land(r, v); });
  if (!r.direct) page_copy_us_.fetch_add(NowUs() - t0, std::memory_order_relaxed);
  if (!n.ok() && r.status.ok()) r.status = n.status();
}

void KvStoreExecutor::Land(Read& r, const store::KvChunkView& v) {
  if (!r.status.ok()) return;
  const ReadRequest& q = r.req;
  const uint64_t ct = chunk_tokens_;
  const uint64_t idx = v.chunk - q.first_chunk;
  const uint64_t t0 = v.chunk * ct;
  if (v.chunk < q.first_chunk || idx >= q.n_chunks || r.landed[idx] != 0 ||
      v.token_begin != t0 || v.n_tokens != std::min(t0 + ct, r.token_end) - t0) {
    r.status = Status::Corruption("the KV store delivered chunk " + std::to_string(v.chunk) +
                                  " (" + std::to_string(v.n_tokens) + " tokens from " +
                                  std::to_string(v.token_begin) + ") to a read of layer " +
                                  std::to_string(q.layer) + " chunks " +
                                  std::to_string(q.first_chunk) + ".." +
                                  std::to_string(q.first_chunk + q.n_chunks - 1));
    return;
  }
  std::span<uint8_t> buf = q.buffers[idx];
  // The store delivers views into the targets; copy only if it ever hands out its own memory.
  const uint64_t bytes = uint64_t{v.n_tokens} * row_bytes_;
  if (v.k != buf.data()) {
    std::memcpy(buf.data(), v.k, bytes);
    bytes_staged_.fetch_add(bytes, std::memory_order_relaxed);
  }
  if (v.v != buf.data() + part_bytes_) {
    std::memcpy(buf.data() + part_bytes_, v.v, bytes);
    bytes_staged_.fetch_add(bytes, std::memory_order_relaxed);
  }
  switch (v.source) {
    case store::KvSource::kPage:
      chunks_page_.fetch_add(1, std::memory_order_relaxed);
      bytes_page_.fetch_add(2 * bytes, std::memory_order_relaxed);
      break;
    case store::KvSource::kDirect:
      chunks_direct_.fetch_add(1, std::memory_order_relaxed);
      bytes_direct_.fetch_add(2 * bytes, std::memory_order_relaxed);
      break;
    case store::KvSource::kMemory: chunks_memory_.fetch_add(1, std::memory_order_relaxed); break;
  }
  r.landed[idx] = 1;
  ++r.n_landed;
  sources_[q.layer * source_stride_ + v.chunk] = static_cast<uint8_t>(v.source);
  Status st = copy_->Start(buf);
  if (!st.ok()) r.status = st;
}

void KvStoreExecutor::Finish(Read& r) {
  if (r.status.ok() && r.n_landed != r.req.n_chunks) {
    r.status = Status::Corruption("a read of layer " + std::to_string(r.req.layer) +
                                  " ended with " +
                                  std::to_string(r.n_landed) + " of " +
                                  std::to_string(r.req.n_chunks) + " chunks delivered");
  }
  r.batch.reset();  // waits for whatever of it is still in the kernel
  Post(PipelineEvent{PipelineEvent::Kind::kRead, r.token, std::move(r.status)});
}

void KvStoreExecutor::CancelBefore(uint64_t gen, std::deque<Read>* fresh) {
  for (std::deque<Read>* q : {&active_, &waiting_, fresh}) {
    std::deque<Read> keep;
    for (Read& r : *q) {
      if (r.cancel_gen >= gen) {
        keep.push_back(std::move(r));
        continue;
      }
      r.batch.reset();  // waits for whatever of it is still in the kernel
      Post(PipelineEvent{PipelineEvent::Kind::kRead, r.token,
                         Status::Busy("read of layer " + std::to_string(r.req.layer) +
                                      " cancelled")});
    }
    q->swap(keep);
  }
}

}  // namespace dualblade
