#include "bench/trace_pipeline.h"

#include <algorithm>
#include <string>

#include "common/clock.h"
#include "common/log.h"
#include "common/units.h"

namespace dualblade {

namespace {

uint64_t Mix(uint64_t x) {  // splitmix64 finalizer
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Spins until SW has run for NS nanoseconds.
void BusyUntil(const Stopwatch& sw, uint64_t ns) {
  volatile uint64_t sink = 0;
  uint64_t x = 1;
  while (sw.ElapsedNanos() < ns) {
    for (int i = 0; i < 256; ++i) x = Mix(x);
    sink = x;
  }
  (void)sink;
}

}  // namespace

void BusyCompute(uint64_t us) {
  if (us == 0) return;
  Stopwatch sw;
  BusyUntil(sw, us * 1000);
}

// Nothing to merge in the trace: the layer tail stands for the merge and the rest of the layer.
class TracePipeline::Consumer final : public ChunkConsumer {
 public:
  void OnChunk(uint64_t, uint32_t, uint32_t, std::span<const uint8_t>) override {}
  void OnLayerEnd(uint64_t, uint32_t) override {}
};

TracePipeline::TracePipeline(store::KvStore* kv, const TracePipelineOptions& opts)
    : kv_(kv), opts_(opts) {}
TracePipeline::~TracePipeline() {
  // The pool's memory must leave the engine before the pool unmaps it, and the engine may be
  // touched only by the KvStore's owner: stop the executor (its I/O thread owns the store while
  // reads are out) first, then unregister on this thread, then let the pool go.
  executor_.reset();
  const store::KvStoreStats& st = kv_->stats();
  DB_LOG_DEBUG("KV store since open: %llu of %llu DIRECT read requests were fixed-buffer reads "
               "(staging pool %sregistered)",
               static_cast<unsigned long long>(st.read_requests_registered),
               static_cast<unsigned long long>(st.read_requests_direct),
               staging_registered_ ? "" : "not ");
  DropStaging();
}

void TracePipeline::DropStaging() {
  if (pool_ == nullptr) return;
  if (staging_registered_) (void)kv_->UnregisterMemory(pool_->arena().data());
  staging_registered_ = false;
  pool_.reset();
}

uint64_t TracePipeline::wanted_staging_buffers() const {
  // Depth 0: the whole layer lands before it computes.
  if (opts_.prefetch_depth == 0) return layer_chunks_;
  const uint64_t depth = controller_ != nullptr ? controller_->plan().depth
                                                : static_cast<uint64_t>(opts_.prefetch_depth);
  return std::max<uint64_t>(1, std::min((depth + 1) * layer_chunks_, budget_buffers_));
}

Status TracePipeline::ResizeStaging(uint64_t buffers) {
  if (pool_ != nullptr && pool_->capacity_buffers() == buffers) return Status::OK();
  // Between steps: every lease is home and the executor's threads are idle, so this thread owns
  // the KvStore and may change what is registered with its engine.
  Stopwatch sw;
  DropStaging();  // unmapped before the new one is faulted in: never both at once
  const double drop_ms = sw.ElapsedMillis();
  DB_ASSIGN_OR_RETURN(pool_, StagingPool::Create({.buffer_bytes = executor_->chunk_staging_bytes(),
                                                  .budget_bytes = buffers * buffer_bytes_}));
  const double create_ms = sw.ElapsedMillis() - drop_ms;
  staging_registered_ = kv_->RegisterMemory(pool_->arena());
  DB_LOG_DEBUG("staging pool now %s: old one dropped in %.1f ms, new one faulted in in %.1f ms, "
               "registered in %.1f ms",
               FormatBytes(pool_->capacity_bytes()).c_str(), drop_ms, create_ms,
               sw.ElapsedMillis() - drop_ms - create_ms);
  if (!staging_registered_) {
    DB_LOG_DEBUG("the %s staging pool is not registered with the KV store's I/O engine; "
                 "its reads pin their pages per request",
                 FormatBytes(pool_->capacity_bytes()).c_str());
  }
  return Status::OK();
}

Result<std::unique_ptr<TracePipeline>> TracePipeline::Create(store::KvStore* kv,
                                                             const TracePipelineOptions& opts) {
  if (opts.prefetch_depth < TracePipelineOptions::kAuto)
    return Status::InvalidArgument("the prefetch depth must be auto or at least 0");
  if (opts.attention_fraction < 0 || opts.attention_fraction > 1)
    return Status::InvalidArgument("the attention fraction must lie in [0, 1]");
  auto p = std::unique_ptr<TracePipeline>(new TracePipeline(kv, opts));
  DB_ASSIGN_OR_RETURN(store::KvSequenceInfo info, kv->Describe(opts.seq));
  p->n_layer_ = info.geometry.n_layer;
  KvStoreExecutorOptions xo;
  xo.seq = opts.seq;
  xo.compute = [raw = p.get()](const KvComputeUnit& t, std::span<const uint8_t> d) {
    return raw->Compute(t, d);
  };
  xo.before_layer_read = opts.before_layer_read;
  DB_ASSIGN_OR_RETURN(p->executor_, KvStoreExecutor::Create(kv, xo));

  const uint64_t ct = info.geometry.chunk_tokens;
  uint64_t max_tokens = opts.max_tokens;
  for (uint64_t t : info.n_tokens) max_tokens = std::max(max_tokens, t);
  p->layer_chunks_ = std::max<uint64_t>(1, (max_tokens + ct - 1) / ct);
  const uint64_t chunk_bytes = p->executor_->chunk_staging_bytes();
  p->buffer_bytes_ = AlignUp(chunk_bytes, 4096);
  p->request_chunks_ = static_cast<uint32_t>(
      std::max<uint64_t>(1, opts.max_request_bytes / p->executor_->kv_part_bytes()));
  p->budget_buffers_ = opts.staging_budget_bytes / p->buffer_bytes_;
  if (p->budget_buffers_ == 0 && opts.prefetch_depth != 0)
    return Status::InvalidArgument("a staging budget of " + FormatBytes(opts.staging_budget_bytes) +
                                   " does not hold one " + FormatBytes(chunk_bytes) + " chunk");
  if (opts.prefetch_depth == TracePipelineOptions::kAuto) {
    AdaptiveControllerOptions co;
    co.layer_bytes = p->layer_chunks_ * chunk_bytes;
    co.chunk_bytes = chunk_bytes;
    co.staging_budget_bytes = p->budget_buffers_ * chunk_bytes;  // what the pool may grow to
    co.max_request_bytes = uint64_t{p->request_chunks_} * chunk_bytes;
    co.max_queue_depth = opts.max_queue_depth;
    p->controller_ = std::make_unique<AdaptiveController>(co);
  }
  DB_RETURN_IF_ERROR(p->ResizeStaging(p->wanted_staging_buffers()));
  p->consumer_ = std::make_unique<Consumer>();
  return p;
}

Status TracePipeline::Compute(const KvComputeUnit& t, std::span<const uint8_t> data) {
  const double layer_ns = static_cast<double>(opts_.compute_us_per_layer) * 1000.0;
  Stopwatch sw;
  if (t.layer_tail) {
    BusyUntil(sw, static_cast<uint64_t>(layer_ns * (1 - opts_.attention_fraction)));
    return Status::OK();
  }
  const uint64_t ct = executor_->chunk_tokens();
  const uint64_t t0 = uint64_t{t.chunk} * ct;
  if (opts_.check) {
    store::KvChunkView v;
    v.seq = opts_.seq;
    v.layer = t.layer;
    v.chunk = t.chunk;
    v.token_begin = t0;
    v.n_tokens = static_cast<uint32_t>(std::min(ct, n_tokens_ - t0));
    v.k = data.data();
    v.v = data.data() + executor_->kv_part_bytes();
    v.source = executor_->source(t.layer, t.chunk);
    DB_RETURN_IF_ERROR(opts_.check(t.layer, v));
  }
  // The check is part of the chunk's share of the layer's compute, not extra.
  BusyUntil(sw, static_cast<uint64_t>(layer_ns * opts_.attention_fraction / chunks_per_layer_));
  return Status::OK();
}

Result<StepStats> TracePipeline::RunStep(uint64_t step, uint64_t n_tokens) {
  const uint64_t ct = executor_->chunk_tokens();
  if (n_tokens == 0) return Status::InvalidArgument("a decode step needs a context of at least 1");
  n_tokens_ = n_tokens;
  chunks_per_layer_ = static_cast<uint32_t>((n_tokens + ct - 1) / ct);
  PrefetcherOptions po;
  po.n_layer = n_layer_;
  po.chunks_per_layer = chunks_per_layer_;
  po.chunk_bytes = executor_->chunk_staging_bytes();
  po.controller = controller_.get();
  const uint32_t depth = static_cast<uint32_t>(std::max(opts_.prefetch_depth, 0));
  const uint64_t requests_per_layer = (chunks_per_layer_ + request_chunks_ - 1) / request_chunks_;
  po.fixed_plan.depth = depth;
  po.fixed_plan.request_chunks = request_chunks_;
  po.fixed_plan.queue_depth = static_cast<uint32_t>(
      std::clamp<uint64_t>(requests_per_layer * (depth + 1), 1, opts_.max_queue_depth));
  po.stream_chunks = opts_.prefetch_depth != 0;
  po.max_chunks_per_compute = opts_.max_chunks_per_compute;
  // Each layer's reads start at its first DIRECT chunk (dual's DIRECT chunks are the suffix after
  // its PAGE prefix): the device gets the layer's direct reads while the I/O thread copies its
  // page-cache chunks, not once they are copied. Looked up now, while this thread owns the store.
  std::vector<uint32_t> start(n_layer_, 0);
  const uint64_t full = n_tokens / ct;
  for (uint32_t l = 0; l < n_layer_; ++l) {
    for (uint64_t c = 0; c < full; ++c) {
      Result<store::KvPath> path = kv_->ChunkPath(opts_.seq, l, c);
      if (path.ok() && *path == store::KvPath::kDirect) {
        start[l] = static_cast<uint32_t>(c);
        break;
      }
    }
  }
  po.issue_start_chunk = [&start](uint32_t layer) { return start[layer]; };
  Prefetcher prefetcher(po, pool_.get(), executor_.get(), consumer_.get());
  StepStats stats;
  DB_RETURN_IF_ERROR(prefetcher.RunStep(step, &stats).Annotate("decode step " +
                                                               std::to_string(step)));
  return stats;
}

}  // namespace dualblade
