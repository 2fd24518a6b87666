#include "bench/trace_replay.h"

#include <fcntl.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <memory>

#include "bench/cpu_stats.h"
#include "bench/device_stats.h"
#include "bench/trace_pipeline.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/units.h"
#include "residency/dual_placement.h"
#include "residency/residency_probe.h"
#include "store/kv_store.h"
#include "store/store.h"

namespace dualblade {

namespace {

// The store's read staging (one arena, mapped at Open): the pipeline reads every chunk straight
// into its own staging pool (StartReadInto), so the store's staging is only a fallback. Requests
// of at most 1 MiB (rather than the device's max transfer, often 4 MiB) keep more requests in
// flight per byte of staging. Read batches in flight cost no memory beyond the pool they land
// in, so the queue is deep enough for a whole layer and more (the pool is the limit).
constexpr uint64_t kReadStagingBytes = 4 * kMiB;
constexpr uint64_t kMaxRequestBytes = 1 * kMiB;
constexpr uint32_t kMaxQueueDepth = 64;
constexpr uint64_t kWriteInflightBytes = 16 * kMiB;
// Share of a layer's compute that is per-chunk attention (runs as chunks land); the rest (output
// projection, MLP) needs the whole attention output.
constexpr double kAttentionFraction = 0.5;

// The pipeline's staging pool: a quarter of the budget, within [8 MiB, 256 MiB] (64 MiB with no
// budget). Depth beyond what it holds streams through it chunk by chunk. A quarter rather than
// less: under a tight budget the pool decides whether the next layer's reads can run during a
// layer's tail at all (an eighth of 128 MiB is half a layer of the benchmark shape, and every
// depth then stalls), which is worth more than the same bytes in the PAGE set, whose hits only
// save a share of the device reads.
uint64_t StagingBudget(uint64_t budget_bytes) {
  if (budget_bytes == 0) return 64 * kMiB;
  return std::clamp<uint64_t>(budget_bytes / 4, 8 * kMiB, 256 * kMiB);
}

uint64_t Mix(uint64_t x) {  // splitmix64 finalizer
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Row content of (layer, token, K or V): finite f16 values in [-2, -1] U [1, 2], so a reader
// that treated them as numbers would see plausible activations.
void FillRow(uint32_t layer, uint64_t token, int kv, uint64_t n_elems, uint16_t* out) {
  uint64_t h = Mix((uint64_t{layer} << 40) ^ (token << 1) ^ static_cast<uint64_t>(kv));
  for (uint64_t i = 0; i < n_elems; ++i) {
    if (i % 4 == 0) h = Mix(h);
    const auto bits = static_cast<uint16_t>(h >> (16 * (i % 4)));
    out[i] = static_cast<uint16_t>(0x3C00 | (bits & 0x83FF));
  }
}

store::KvPath ToStorePath(KvPath p) {
  return p == KvPath::kPage ? store::KvPath::kPage : store::KvPath::kDirect;
}

// The replay's view of one layer (chunk paths live in the DualPlacement).
struct LayerView {
  uint64_t n_tokens = 0;
};

class Replay {
 public:
  explicit Replay(const TraceReplayOptions& o) : o_(o), s_(o.shape) {}
  Result<TraceReplayResult> Run();

 private:
  Status Open();
  Status Replan();
  Status FitStaging();
  Status Prefill();
  Status DecodeStep(uint32_t step);
  Status ProbeLayer(uint32_t layer);
  Status Consume(uint32_t layer, const store::KvChunkView& v);
  Status AppendRows(uint32_t layer, uint64_t token_begin, uint64_t n_tokens);

  const TraceReplayOptions& o_;
  const TraceShape& s_;
  TraceReplayResult r_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<store::KvStore> kv_;
  std::unique_ptr<MemoryMonitor> monitor_;
  std::unique_ptr<DualPlacement> placement_;
  std::optional<ResidencyProbe> probe_;
  store::SeqId seq_ = 0;
  std::vector<LayerView> layers_;
  uint64_t chunk_bytes_ = 0;  // K and V parts of one chunk on disk
  std::vector<uint16_t> k_rows_, v_rows_;
  uint64_t consumed_tokens_ = 0;
  double append_ms_ = 0;
  std::vector<uint16_t> check_row_;
  std::unique_ptr<TracePipeline> pipeline_;
  // Memory the KV leaves free beyond the pool, at the last re-plan (see FitStaging).
  uint64_t staging_free_bytes_ = 0;
  bool staging_under_pressure_ = false;  // at the last re-plan
  // Per decode step.
  std::vector<double> stalls_, overlaps_, io_ms_, compute_ms_, compute_run_ms_;
  std::vector<double> depths_;
};

Status Replay::Open() {
  store::StoreOpenOptions so;
  so.read_only = false;
  DB_ASSIGN_OR_RETURN(store_, store::Store::Open(o_.store_path, so));
  store::KvStoreOptions ko;
  ko.verify_checksums = o_.verify_checksums;
  ko.read_staging_bytes = kReadStagingBytes;
  ko.write_inflight_bytes = kWriteInflightBytes;
  ko.max_request_bytes = kMaxRequestBytes;
  ko.default_path = o_.placement.policy == KvPolicy::kPageCache ? store::KvPath::kPage
                                                                 : store::KvPath::kDirect;
  DB_ASSIGN_OR_RETURN(kv_, store::KvStore::Open(store_.get(), ko));
  if (o_.placement.policy == KvPolicy::kDual) {
    // Readahead past a PAGE run (read_ahead_kb is 8 MiB on some virtual disks) evicted the PAGE
    // set here: hit ratio 0.13-0.19 with it, about 1.0 without.
    DB_RETURN_IF_ERROR(kv_->DisableBufferedReadahead());
  }
  r_.engine = std::string(kv_->engine_name());
  r_.device = store_->device().info().disk_name;

  store::KvGeometry g;
  g.n_layer = s_.n_layer;
  g.n_head_kv = s_.n_head_kv;
  g.head_dim = s_.n_embd_head;
  g.type = store::KvType::kF16;
  g.chunk_tokens = s_.chunk_tokens;
  g.capacity_tokens = s_.n_ctx + s_.n_gen;
  DB_ASSIGN_OR_RETURN(seq_, kv_->CreateSequence(g, "kv-trace"));
  DB_ASSIGN_OR_RETURN(store::KvSequenceInfo info, kv_->Describe(seq_));
  chunk_bytes_ = 2 * info.layout.chunk_part_bytes();
  layers_.resize(s_.n_layer);
  std::vector<uint64_t> capacity_chunks(s_.n_layer);
  for (uint32_t l = 0; l < s_.n_layer; ++l)
    capacity_chunks[l] = info.capacity_tokens[l] / s_.chunk_tokens;
  uint64_t region_begin = UINT64_MAX, region_end = 0;
  for (uint32_t l = 0; l < s_.n_layer; ++l) {
    for (uint64_t c = 0; c < capacity_chunks[l]; ++c) {
      DB_ASSIGN_OR_RETURN(store::KvChunkLocation loc, kv_->ChunkLocation(seq_, l, c));
      region_begin = std::min({region_begin, loc.k_offset_bytes, loc.v_offset_bytes});
      region_end = std::max({region_end, loc.k_offset_bytes + loc.part_bytes,
                             loc.v_offset_bytes + loc.part_bytes});
    }
  }
  if (region_end > region_begin) {
    r_.kv_region_offset_bytes = region_begin;
    r_.kv_region_len_bytes = region_end - region_begin;
  }

  MemoryMonitorOptions mo;
  mo.budget_bytes = o_.budget_bytes;
  DB_ASSIGN_OR_RETURN(monitor_, MemoryMonitor::OpenSystem(mo));
  TracePipelineOptions po;
  po.seq = seq_;
  po.max_tokens = s_.n_ctx + s_.n_gen;
  po.compute_us_per_layer = o_.compute_us_per_layer;
  po.attention_fraction = kAttentionFraction;
  po.prefetch_depth = o_.prefetch_depth == TraceReplayOptions::kAutoPrefetch
                          ? TracePipelineOptions::kAuto
                          : std::max(o_.prefetch_depth, 0);
  po.staging_budget_bytes = StagingBudget(o_.budget_bytes);
  po.max_request_bytes = kMaxRequestBytes;
  po.max_queue_depth = kMaxQueueDepth;
  po.check = [this](uint32_t layer, const store::KvChunkView& v) { return Consume(layer, v); };
  po.before_layer_read = [this](uint32_t layer) { return ProbeLayer(layer); };
  DB_ASSIGN_OR_RETURN(pipeline_, TracePipeline::Create(kv_.get(), po));
  // What is not KV page cache: the pipeline's staging pool, the store's read staging arena,
  // chunk writes in flight, the tails, and this replay's row buffers.
  monitor_->Reserve("pipeline-staging", pipeline_->staging_bytes());
  monitor_->Reserve("kv-read-staging", kReadStagingBytes);
  monitor_->Reserve("kv-write-inflight", kWriteInflightBytes);
  monitor_->Reserve("kv-tails", uint64_t{s_.n_layer} * chunk_bytes_);
  monitor_->Reserve("trace-rows", 2 * s_.chunk_tokens * s_.row_bytes());
  placement_ = std::make_unique<DualPlacement>(
      o_.placement, seq_, capacity_chunks, s_.chunk_tokens, chunk_bytes_,
      o_.placement.policy == KvPolicy::kPageCache ? KvPath::kPage : KvPath::kDirect);

  auto probe = ResidencyProbe::Open(o_.store_path);
  if (probe.ok()) probe_.emplace(std::move(probe).value());
  k_rows_.resize(s_.chunk_tokens * s_.row_bytes() / 2);
  v_rows_.resize(k_rows_.size());
  return Status::OK();
}

// Auto depth: the staging pool follows the controller's depth. Memory moves between staging and
// the PAGE set in the safe order: a shrinking pool is unmapped before the PAGE set may grow into
// its bytes; a growing pool is charged first, and the PAGE set re-planned (and demoted chunks
// dropped from the page cache) before the new pool is faulted in.
Status Replay::FitStaging() {
  const uint64_t want = pipeline_->wanted_staging_buffers();
  const uint64_t want_bytes = pipeline_->staging_bytes_for(want);
  if (want_bytes == pipeline_->staging_bytes()) return Status::OK();
  // A pool larger than the depth needs is kept while the KV leaves memory free and nothing
  // reports pressure: shrinking it would give the page cache bytes it has no use for, and the
  // next growth would fault a new pool in again (one step about 70 ms longer at 1 GiB here).
  if (want_bytes < pipeline_->staging_bytes() && staging_free_bytes_ > 0 &&
      !staging_under_pressure_)
    return Status::OK();
  if (want_bytes > pipeline_->staging_bytes()) {
    monitor_->Reserve("pipeline-staging", want_bytes);
    DB_RETURN_IF_ERROR(Replan());
    DB_RETURN_IF_ERROR(pipeline_->ResizeStaging(want));
  } else {
    DB_RETURN_IF_ERROR(pipeline_->ResizeStaging(want));
    monitor_->Reserve("pipeline-staging", pipeline_->staging_bytes());
  }
  ++r_.staging_resizes;
  return Status::OK();
}

// Samples the monitor, then plans and applies paths through the shared DualPlacement.
Status Replay::Replan() {
  DB_ASSIGN_OR_RETURN(MemoryReading reading, monitor_->Sample());
  DB_ASSIGN_OR_RETURN(
      PlacementPlan plan,
      placement_->Replan(reading, [&](uint32_t layer, uint64_t begin, uint64_t end, KvPath path) {
        return kv_->SetChunkPath(seq_, layer, begin, end, ToStorePath(path));
      }));
  r_.page_set_bytes_max = std::max(r_.page_set_bytes_max, plan.page_bytes);
  r_.page_set_bytes_last = plan.page_bytes;
  DB_LOG_DEBUG("plan: PAGE %s of budget %s: %s", FormatBytes(plan.page_bytes).c_str(),
               FormatBytes(plan.page_budget_bytes).c_str(), plan.reason.c_str());
  if (r_.kv_headroom_bytes_min == 0 || reading.kv_headroom_bytes < r_.kv_headroom_bytes_min)
    r_.kv_headroom_bytes_min = reading.kv_headroom_bytes;
  if (o_.placement.policy == KvPolicy::kDual && plan.page_bytes > reading.kv_headroom_bytes)
    r_.page_within_headroom = false;
  r_.path_transitions = placement_->transitions();
  r_.page_budget_changes = placement_->policy().budget_changes();
  // Auto depth: staging beyond what the KV leaves free comes out of its PAGE set, and each layer
  // of it is then read from the device every step (spread over the model's layers).
  if (pipeline_ != nullptr) {
    const uint64_t cached_kv = o_.placement.policy == KvPolicy::kDirect
                                   ? 0
                                   : static_cast<uint64_t>(plan.paths.size()) * chunk_bytes_;
    const uint64_t free_bytes =
        reading.kv_headroom_bytes > cached_kv ? reading.kv_headroom_bytes - cached_kv : 0;
    const double direct_rate = placement_->policy().direct_rate_bytes_per_s();
    const double us_per_layer =
        direct_rate > 0 ? static_cast<double>(pipeline_->layer_staging_bytes()) / direct_rate *
                              1e6 / s_.n_layer
                        : 0;
    pipeline_->SetStagingGrowthCost(free_bytes, us_per_layer);
    staging_free_bytes_ = free_bytes;
    // Memory pressure (as the placement judges it): a layer of staging less per re-plan while it
    // lasts, after the PAGE set's own trim; grown back through the controller's hysteresis.
    staging_under_pressure_ = UnderMemoryPressure(reading, o_.placement);
    if (const AdaptiveController* c = pipeline_->controller()) {
      pipeline_->SetStagingHeadroom(StagingHeadroom(staging_under_pressure_, c->plan().depth,
                                                    pipeline_->layer_staging_bytes()));
    }
  }
  return Status::OK();
}

Status Replay::AppendRows(uint32_t layer, uint64_t token_begin, uint64_t n_tokens) {
  const uint64_t elems = s_.row_bytes() / 2;
  for (uint64_t t = 0; t < n_tokens; ++t) {
    FillRow(layer, token_begin + t, 0, elems, k_rows_.data() + t * elems);
    FillRow(layer, token_begin + t, 1, elems, v_rows_.data() + t * elems);
  }
  Stopwatch sw;
  Status st = kv_->Append(seq_, layer, k_rows_.data(), v_rows_.data(), n_tokens);
  append_ms_ += sw.ElapsedMillis();
  layers_[layer].n_tokens += n_tokens;
  placement_->set_n_tokens(layer, layers_[layer].n_tokens);
  return st;
}

Status Replay::Prefill() {
  // Sized before the first write, so prefill writes every chunk on the path it will keep: the
  // PAGE prefix buffered, the rest DIRECT, so dirty page cache never builds up for chunks read
  // direct. Writing the PAGE prefix direct too and letting the first step's misses fill the
  // cache was measured slower overall: with readahead off (see Open) every later all-hit step
  // took 3-4x longer than after buffered writes, likely because misses fill the cache with
  // single pages where writes allocate large folios.
  DB_RETURN_IF_ERROR(Replan());
  append_ms_ = 0;
  Stopwatch sw;
  double generate_ms = 0;
  for (uint32_t l = 0; l < s_.n_layer; ++l) {
    BusyCompute(o_.compute_us_per_layer);
    for (uint64_t t = 0; t < s_.n_ctx; t += s_.chunk_tokens) {
      const double before = append_ms_;
      Stopwatch gen;
      DB_RETURN_IF_ERROR(AppendRows(l, t, std::min<uint64_t>(s_.chunk_tokens, s_.n_ctx - t)));
      generate_ms += gen.ElapsedMillis() - (append_ms_ - before);
    }
  }
  DB_RETURN_IF_ERROR(kv_->Flush());
  // Generating the rows is the test's own work, not the store's.
  r_.prefill_ms = sw.ElapsedMillis() - generate_ms;
  return Status::OK();
}

// Measures how much of LAYER's PAGE chunks is in the page cache right before they are read: the
// hit ratio measured, not inferred from timings.
Status Replay::ProbeLayer(uint32_t layer) {
  if (!probe_) return Status::OK();
  const uint64_t full = layers_[layer].n_tokens / s_.chunk_tokens;
  uint64_t run_off = 0, run_len = 0;
  auto flush_run = [&]() -> Status {
    if (run_len == 0) return Status::OK();
    DB_ASSIGN_OR_RETURN(PageCacheResidency res, probe_->Probe(run_off, run_len));
    r_.probed_page_bytes += res.length_bytes;
    r_.resident_page_bytes += res.resident_bytes;
    run_len = 0;
    return Status::OK();
  };
  for (int part = 0; part < 2; ++part) {
    for (uint64_t c = 0; c < full; ++c) {
      if (placement_->path(layer, c) != KvPath::kPage) continue;
      DB_ASSIGN_OR_RETURN(store::KvChunkLocation loc, kv_->ChunkLocation(seq_, layer, c));
      const uint64_t off = part == 0 ? loc.k_offset_bytes : loc.v_offset_bytes;
      if (run_len > 0 && run_off + run_len == off) {
        run_len += loc.part_bytes;
        continue;
      }
      DB_RETURN_IF_ERROR(flush_run());
      run_off = off;
      run_len = loc.part_bytes;
    }
    DB_RETURN_IF_ERROR(flush_run());
  }
  return Status::OK();
}

// Checks the first row of every delivered chunk against the generator (a path that returned
// stale or misplaced data fails the run) and counts what arrived.
Status Replay::Consume(uint32_t layer, const store::KvChunkView& v) {
  if (v.n_tokens == 0) return Status::OK();
  const uint64_t elems = s_.row_bytes() / 2;
  std::vector<uint16_t>& want = check_row_;
  want.resize(elems);
  FillRow(layer, v.token_begin, 0, elems, want.data());
  bool ok = std::memcmp(want.data(), v.k, s_.row_bytes()) == 0;
  FillRow(layer, v.token_begin, 1, elems, want.data());
  ok = ok && std::memcmp(want.data(), v.v, s_.row_bytes()) == 0;
  if (!ok)
    return Status::Corruption("layer " + std::to_string(layer) + " token " +
                              std::to_string(v.token_begin) + " read back different rows (" +
                              store::KvSourceName(v.source) + " path)");
  consumed_tokens_ += v.n_tokens;
  return Status::OK();
}

// One decode step through the pipeline: every layer's chunks read (reads for the next layers in
// flight while one computes), checked and computed chunk by chunk as they land, then the layer's
// tail; then the new token's row is appended to every layer. The appends wait for the step's end
// because the executor's I/O thread owns the store during the step; the new rows are in the
// model's hands already, and the next step is the first to read them.
Status Replay::DecodeStep(uint32_t step) {
  // The step's time includes its re-plan and any staging change: the engine pays both per token.
  Stopwatch sw;
  DB_RETURN_IF_ERROR(FitStaging());
  DB_RETURN_IF_ERROR(Replan());
  const uint64_t n_tokens = layers_[0].n_tokens;
  for (const LayerView& l : layers_) {
    if (l.n_tokens != n_tokens)
      return Status::Corruption("layers hold different token counts before step " +
                                std::to_string(step));
  }
  consumed_tokens_ = 0;
  const KvExecutorStats ex0 = pipeline_->executor_stats();
  const uint64_t direct_ns0 = kv_->stats().read_direct_busy_ns;
  DB_ASSIGN_OR_RETURN(StepStats st, pipeline_->RunStep(step, n_tokens));
  const KvExecutorStats ex1 = pipeline_->executor_stats();
  // What the path balance needs: the PAGE path's copy time as the I/O thread spent it, the
  // DIRECT path's time in the device as the store saw it.
  placement_->ObservePathRates(
      {.page_bytes = ex1.bytes_page - ex0.bytes_page,
       .page_us = ex1.page_copy_us - ex0.page_copy_us,
       .direct_bytes = ex1.bytes_direct - ex0.bytes_direct,
       .direct_us = (kv_->stats().read_direct_busy_ns - direct_ns0) / 1000,
       .step_us = st.step_us,
       .stall_us = st.stall_us});
  if (consumed_tokens_ != uint64_t{s_.n_layer} * n_tokens)
    return Status::Corruption("step " + std::to_string(step) + ": read " +
                              std::to_string(consumed_tokens_) + " of " +
                              std::to_string(uint64_t{s_.n_layer} * n_tokens) + " tokens");
  for (uint32_t l = 0; l < s_.n_layer; ++l) DB_RETURN_IF_ERROR(AppendRows(l, n_tokens, 1));
  r_.decode_step_ms.push_back(sw.ElapsedMillis());
  stalls_.push_back(static_cast<double>(st.stall_us) / 1000.0);
  overlaps_.push_back(st.overlap_efficiency());
  io_ms_.push_back(static_cast<double>(st.io_busy_us) / 1000.0);
  compute_ms_.push_back(static_cast<double>(st.compute_busy_us) / 1000.0);
  compute_run_ms_.push_back(static_cast<double>(ex1.compute_run_us - ex0.compute_run_us) / 1000.0);
  depths_.push_back(st.depth);
  return Status::OK();
}

Result<TraceReplayResult> Replay::Run() {
  DB_RETURN_IF_ERROR(s_.Validate());
  r_.policy = KvPolicyName(o_.placement.policy);
  r_.budget_bytes = o_.budget_bytes;
  if (o_.placement.policy == KvPolicy::kMemory)
    return Status::NotSupported("the memory policy needs the model engine's in-memory KV cache; "
                                "the trace replays the store's paths only");
  DB_RETURN_IF_ERROR(Open());
  DB_RETURN_IF_ERROR(Prefill());
  const store::KvStoreStats before = kv_->stats();
  Result<BlockDeviceStat> dev_before = ReadBlockDeviceStat(r_.device);
  Stopwatch decode;
  const CpuSample cpu_before = SampleCpu();
  for (uint32_t step = 0; step < s_.n_gen; ++step) DB_RETURN_IF_ERROR(DecodeStep(step));
  const CpuUsage cpu = DiffCpu(cpu_before, SampleCpu());
  r_.decode_total_ms = decode.ElapsedMillis();
  if (s_.n_gen > 0) r_.decode_cpu_ms_per_step = cpu.process_cpu_ms / s_.n_gen;
  r_.cpus = cpu.cpus;
  r_.cpu_busy_fraction = cpu.busy_fraction;
  r_.cpu_steal_fraction = cpu.steal_fraction;
  Result<BlockDeviceStat> dev_after = ReadBlockDeviceStat(r_.device);
  if (dev_before.ok() && dev_after.ok()) {
    BlockDeviceDelta d = DiffBlockDeviceStat(*dev_before, *dev_after);
    r_.device_read_bytes = d.read_bytes;
    r_.device_busy_ms = d.busy_ms;
  }
  const store::KvStoreStats& after = kv_->stats();
  r_.read_bytes_page = after.read_bytes_page - before.read_bytes_page;
  r_.read_bytes_direct = after.read_bytes_direct - before.read_bytes_direct;
  r_.read_bytes_memory = after.read_bytes_memory - before.read_bytes_memory;
  r_.write_bytes_page = after.write_bytes_page;
  r_.write_bytes_direct = after.write_bytes_direct;
  r_.checksum_ms = static_cast<double>(after.checksum_ns) * 1e-6;
  r_.decode_step_ms_p50 = Percentile(r_.decode_step_ms, 0.5);
  r_.decode_step_ms_p99 = Percentile(r_.decode_step_ms, 0.99);
  r_.stall_ms = Percentile(stalls_, 0.5);
  r_.overlap_efficiency = Percentile(overlaps_, 0.5);
  r_.io_busy_ms = Percentile(io_ms_, 0.5);
  r_.compute_busy_ms = Percentile(compute_ms_, 0.5);
  r_.compute_run_ms = Percentile(compute_run_ms_, 0.5);
  r_.prefetch_depth = static_cast<uint32_t>(Percentile(depths_, 0.5));
  r_.page_rate_bytes_per_s = placement_->policy().page_rate_bytes_per_s();
  r_.direct_rate_bytes_per_s = placement_->policy().direct_rate_bytes_per_s();
  r_.pagecache_hit_ratio =
      r_.probed_page_bytes > 0
          ? static_cast<double>(r_.resident_page_bytes) / static_cast<double>(r_.probed_page_bytes)
          : 0;
  return r_;
}

}  // namespace

Status TraceShape::Validate() const {
  auto bad = [](const char* what) {
    return Status::InvalidArgument(std::string(what) + " must be at least 1");
  };
  if (n_layer == 0) return bad("--layers");
  if (n_head_kv == 0) return bad("--kv-heads");
  if (n_embd_head == 0) return bad("--head-dim");
  if (n_ctx == 0) return bad("--ctx");
  if (chunk_tokens == 0) return bad("--chunk-tokens");
  if (n_layer > 4096 || n_head_kv > 4096 || n_embd_head > 4096 || n_ctx > (uint64_t{1} << 32) ||
      chunk_tokens > 65536)
    return Status::InvalidArgument("the trace shape is implausibly large");
  return Status::OK();
}

double Percentile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const double rank = q * static_cast<double>(values.size());
  size_t idx = rank <= 1 ? 0 : static_cast<size_t>(rank + 0.999999) - 1;
  return values[std::min(idx, values.size() - 1)];
}

Result<TraceReplayResult> RunTraceReplay(const TraceReplayOptions& opts) {
  Replay replay(opts);
  return replay.Run();
}

}  // namespace dualblade
