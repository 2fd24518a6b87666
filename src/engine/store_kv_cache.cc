#include "engine/store_kv_cache.h"

#include <fcntl.h>

#include <algorithm>

#include "common/log.h"
#include "common/units.h"

namespace dualblade::engine {
namespace {

uint64_t RoundDown(uint64_t x, uint64_t unit) { return x / unit * unit; }

// The budget the cache's memory is sized against: --mem-budget, else the limit the process lives
// in (cgroup or MemTotal); 0 when neither can be read (the store's defaults apply then).
uint64_t SizingBudget(const StoreKvCacheOptions& opts) {
  if (opts.mem_budget_bytes > 0) return opts.mem_budget_bytes;
  auto monitor = MemoryMonitor::OpenSystem({});
  if (!monitor.ok()) return 0;
  Result<MemoryReading> r = (*monitor)->Sample();
  return r.ok() ? r->limit_bytes : 0;
}

}  // namespace

KvMemoryPlan PlanKvMemory(uint64_t budget_bytes, int prefetch_depth, uint64_t chunk_bytes) {
  // 0 means unknown: size as for a budget large enough to reach every cap.
  const uint64_t budget = budget_bytes > 0 ? budget_bytes : UINT64_MAX;
  const uint64_t floor_bytes = std::max<uint64_t>(1 * kMiB, AlignUp(2 * chunk_bytes, 4 * kKiB));
  // A 64th of the budget each for reads and writes: a 256 MiB budget spends 4 MiB on a read
  // window and 4 MiB on writes, where the store's defaults (32 + 64 MiB) would take over a third.
  auto share = [&](uint64_t cap) {
    return std::max(floor_bytes, RoundDown(std::min(budget / 64, cap), 32 * kKiB));
  };
  KvMemoryPlan p;
  p.read_staging_bytes = share(32 * kMiB);
  p.write_inflight_bytes = share(64 * kMiB);
  // About eight requests per window keep the device queue busy within it; never below one chunk
  // part (the store's smallest read) and never above 1 MiB, where NVMe reads reach their peak.
  const uint64_t part = AlignUp(std::max<uint64_t>(chunk_bytes / 2, 1), 4 * kKiB);
  p.max_request_bytes = std::max(part, std::min<uint64_t>(p.read_staging_bytes / 8, 1 * kMiB));
  if (prefetch_depth >= 0) {
    p.max_prefetch_depth = static_cast<uint32_t>(prefetch_depth);
  } else {
    const uint64_t per_batch = p.read_staging_bytes + 2 * p.max_request_bytes;
    const uint64_t batches = budget / 8 / per_batch;
    p.max_prefetch_depth =
        static_cast<uint32_t>(std::clamp<uint64_t>(batches > 2 ? batches - 2 : 0, 1, 8));
  }
  return p;
}

Result<std::unique_ptr<StoreKvCache>> StoreKvCache::Create(store::KvStore* kv,
                                                           const KvGeometry& g,
                                                           const StoreKvCacheOptions& opts) {
  store::KvPath path;
  if (opts.policy == "pagecache") {
    path = store::KvPath::kPage;
  } else if (opts.policy == "direct" || opts.policy == "dual") {
    path = store::KvPath::kDirect;
  } else {
    return Status::InvalidArgument("a store-backed KV cache needs policy pagecache, direct or "
                                   "dual, not '" + opts.policy + "'");
  }
  if (g.n_layer <= 0 || g.n_head_kv <= 0 || g.head_dim <= 0 || g.chunk_tokens <= 0 ||
      g.n_ctx <= 0) {
    return Status::InvalidArgument("KV geometry needs positive layers, heads, head size, chunk "
                                   "size and context");
  }
  store::KvGeometry sg;
  sg.n_layer = static_cast<uint32_t>(g.n_layer);
  sg.n_head_kv = static_cast<uint32_t>(g.n_head_kv);
  sg.head_dim = static_cast<uint32_t>(g.head_dim);
  sg.type = g.type == compute::KvElemType::kF16 ? store::KvType::kF16 : store::KvType::kF32;
  sg.chunk_tokens = static_cast<uint32_t>(g.chunk_tokens);
  sg.capacity_tokens = static_cast<uint64_t>(g.n_ctx);
  DB_CHECK(sg.row_bytes() == g.row_bytes());
  if (opts.prefetch_depth < StoreKvCacheOptions::kAutoPrefetch) {
    return Status::InvalidArgument("the prefetch depth must be a number of layers (0 or more) "
                                   "or automatic");
  }
  kv->set_verify_checksums(opts.verify_checksums);
  auto cache = std::unique_ptr<StoreKvCache>(new StoreKvCache(kv, g, opts));
  const uint64_t chunk_bytes = 2 * sg.row_bytes() * sg.chunk_tokens;
  cache->memory_plan_ = PlanKvMemory(SizingBudget(opts), opts.prefetch_depth, chunk_bytes);
  if (opts.policy == "dual" && opts.mem_budget_bytes > 0) {
    DB_RETURN_IF_ERROR(cache->CheckBudgetCoversReserves(chunk_bytes));
  }
  if (opts.prefetch_depth == StoreKvCacheOptions::kAutoPrefetch) {
    const KvMemoryPlan& mp = cache->memory_plan_;
    AdaptiveControllerOptions co;
    // A prefetched layer holds at most one staging window, whatever its size.
    co.layer_bytes = std::max(mp.read_staging_bytes, chunk_bytes);
    co.chunk_bytes = chunk_bytes;
    co.staging_budget_bytes = uint64_t{mp.max_prefetch_depth} * co.layer_bytes;
    co.max_request_bytes = mp.max_request_bytes;
    co.max_depth = mp.max_prefetch_depth;
    cache->controller_ = std::make_unique<AdaptiveController>(co);
  }
  DB_ASSIGN_OR_RETURN(cache->seq_, kv->CreateSequence(sg, opts.model_identity));
  DB_ASSIGN_OR_RETURN(store::KvSequenceInfo info, kv->Describe(cache->seq_));
  for (uint32_t l = 0; l < sg.n_layer; ++l) {
    const uint64_t chunks = info.capacity_tokens[l] / sg.chunk_tokens;
    DB_RETURN_IF_ERROR(kv->SetChunkPath(cache->seq_, l, 0, chunks, path));
  }
  if (opts.policy == "dual") DB_RETURN_IF_ERROR(cache->SetUpPlacement());
  cache->base_stats_ = kv->stats();
  return cache;
}

Status StoreKvCache::SetUpPlacement() {
  DB_RETURN_IF_ERROR(kv_->DisableBufferedReadahead());
  MemoryMonitorOptions mo;
  mo.budget_bytes = opts_.mem_budget_bytes;
  DB_ASSIGN_OR_RETURN(monitor_, MemoryMonitor::OpenSystem(mo));
  DB_ASSIGN_OR_RETURN(store::KvSequenceInfo info, kv_->Describe(seq_));
  const uint64_t chunk_bytes = 2 * info.layout.chunk_part_bytes();
  // The tails (one partial chunk per layer) live in memory until their chunk fills; read
  // staging, chunk writes in flight and the chunks a read batch copies from memory (tails,
  // chunks still being written) are the store's own. What remains is the PAGE set's.
  for (const MemoryReservation& r : OwnReservations(chunk_bytes))
    monitor_->Reserve(r.name, r.bytes, r.kind);
  for (const MemoryReservation& r : opts_.reserves) monitor_->Reserve(r.name, r.bytes, r.kind);
  std::vector<uint64_t> capacity_chunks(static_cast<size_t>(geometry_.n_layer));
  for (size_t l = 0; l < capacity_chunks.size(); ++l)
    capacity_chunks[l] = info.capacity_tokens[l] / static_cast<uint64_t>(geometry_.chunk_tokens);
  PlacementOptions po = opts_.placement;
  po.policy = KvPolicy::kDual;
  placement_ = std::make_unique<DualPlacement>(po, seq_, capacity_chunks,
                                               static_cast<uint64_t>(geometry_.chunk_tokens),
                                               chunk_bytes, KvPath::kDirect);
  // Sizes the PAGE budget before the first write, so prefill chunks inside it go PAGE.
  return Replan();
}

Status StoreKvCache::Replan() {
  if (placement_ == nullptr) return Status::OK();
  DB_ASSIGN_OR_RETURN(MemoryReading reading, monitor_->Sample());
  DB_ASSIGN_OR_RETURN(
      last_plan_,
      placement_->Replan(reading, [&](uint32_t layer, uint64_t begin, uint64_t end, KvPath p) {
        // A prefetch that read these chunks through their old path is stale: drain it first.
        const auto& pre = prefetch_[layer];
        if (pre != nullptr && begin < pre->covered_chunks) DiscardPrefetch(static_cast<int>(layer));
        return kv_->SetChunkPath(seq_, layer, begin, end,
                                 p == KvPath::kPage ? store::KvPath::kPage
                                                    : store::KvPath::kDirect);
      }));
  ++replans_;
  return Status::OK();
}

Result<std::unique_ptr<StoreKvCache>> StoreKvCache::Open(const std::string& store_path,
                                                         const KvGeometry& g,
                                                         const StoreKvCacheOptions& opts) {
  DB_ASSIGN_OR_RETURN(std::unique_ptr<store::Store> st,
                      store::Store::Open(store_path, store::StoreOpenOptions{.read_only = false}));
  store::KvStoreOptions ko;
  ko.verify_checksums = opts.verify_checksums;
  const uint64_t chunk_bytes = 2 * g.row_bytes() * static_cast<uint64_t>(std::max(g.chunk_tokens, 1));
  const KvMemoryPlan mp = PlanKvMemory(SizingBudget(opts), opts.prefetch_depth, chunk_bytes);
  ko.read_staging_bytes = mp.read_staging_bytes;
  ko.max_request_bytes = mp.max_request_bytes;
  ko.write_inflight_bytes = mp.write_inflight_bytes;
  DB_ASSIGN_OR_RETURN(std::unique_ptr<store::KvStore> kv, store::KvStore::Open(st.get(), ko));
  DB_ASSIGN_OR_RETURN(std::unique_ptr<StoreKvCache> cache, Create(kv.get(), g, opts));
  cache->owned_store_ = std::move(st);
  cache->owned_kv_ = std::move(kv);
  return cache;
}

std::vector<MemoryReservation> StoreKvCache::OwnReservations(uint64_t chunk_bytes) const {
  const KvMemoryPlan& mp = memory_plan_;
  return {{"kv-tails", static_cast<uint64_t>(geometry_.n_layer) * chunk_bytes, ReserveKind::kAnon},
          {"kv-read-staging", mp.read_staging_reserve_bytes(), ReserveKind::kAnon},
          {"kv-write-inflight", mp.write_inflight_bytes, ReserveKind::kAnon},
          {"kv-read-copies", mp.read_batches() * chunk_bytes, ReserveKind::kAnon}};
}

Status StoreKvCache::CheckBudgetCoversReserves(uint64_t chunk_bytes) const {
  uint64_t need = 0;
  std::string parts;
  auto add = [&](const MemoryReservation& r) {
    need += r.bytes;
    parts += (parts.empty() ? "" : ", ") + r.name + " " + FormatBytes(r.bytes);
  };
  for (const MemoryReservation& r : opts_.reserves) add(r);
  for (const MemoryReservation& r : OwnReservations(chunk_bytes)) add(r);
  if (opts_.mem_budget_bytes >= need) return Status::OK();
  return Status::InvalidArgument("a memory budget of " + FormatBytes(opts_.mem_budget_bytes) +
                                 " cannot hold the " + FormatBytes(need) +
                                 " the run keeps in memory besides the KV page cache (" + parts +
                                 ")");
}

StoreKvCache::~StoreKvCache() {
  // Reads in flight name the sequence: drain them before it is dropped.
  for (auto& p : prefetch_) p.reset();
  if (opts_.drop_on_close && seq_ != 0) {
    Status st = kv_->Drop(seq_);
    if (!st.ok()) DB_LOG_WARN("dropping the KV sequence failed: %s", st.ToString().c_str());
  }
  owned_kv_.reset();  // before the store it reads through
}

Status StoreKvCache::Append(int layer, const void* k_rows, const void* v_rows, int n_tokens) {
  DB_CHECK(layer >= 0 && layer < geometry_.n_layer && n_tokens >= 0);
  if (n_tokens_[layer] + n_tokens > geometry_.n_ctx) {
    return Status::NoSpace("the KV cache holds " + std::to_string(geometry_.n_ctx) +
                           " tokens and is full (raise -c)");
  }
  DB_RETURN_IF_ERROR(kv_->Append(seq_, static_cast<uint32_t>(layer), k_rows, v_rows,
                                 static_cast<uint64_t>(n_tokens)));
  n_tokens_[layer] += n_tokens;
  if (placement_ != nullptr) {
    placement_->set_n_tokens(static_cast<uint32_t>(layer), static_cast<uint64_t>(n_tokens_[layer]));
    // The engine appends layer by layer: the last layer's append ends a step (or a prefill
    // micro-batch), the one point per step where every layer's chunks are known.
    if (layer == geometry_.n_layer - 1) DB_RETURN_IF_ERROR(Replan());
  }
  return Status::OK();
}

KvStats StoreKvCache::stats() const {
  KvStats s = reads_;
  s.stall_ms = static_cast<double>(stall_ns_) / 1e6;
  s.prefetch_depth = prefetch_depth();
  const store::KvStoreStats& now = kv_->stats();
  s.write_bytes_page = now.write_bytes_page - base_stats_.write_bytes_page;
  s.write_bytes_direct = now.write_bytes_direct - base_stats_.write_bytes_direct;
  return s;
}

}  // namespace dualblade::engine
