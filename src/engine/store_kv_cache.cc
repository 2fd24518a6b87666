#include "engine/store_kv_cache.h"

#include <fcntl.h>

#include <algorithm>

#include "common/log.h"
#include "residency/residency_probe.h"

namespace dualblade::engine {

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
  kv->set_verify_checksums(opts.verify_checksums);
  auto cache = std::unique_ptr<StoreKvCache>(new StoreKvCache(kv, g, opts));
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
  // The tails (one partial chunk per layer) live in memory until their chunk fills.
  monitor_->Reserve("kv-tails", static_cast<uint64_t>(geometry_.n_layer) * chunk_bytes);
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
  DB_ASSIGN_OR_RETURN(std::unique_ptr<store::KvStore> kv, store::KvStore::Open(st.get(), ko));
  DB_ASSIGN_OR_RETURN(std::unique_ptr<StoreKvCache> cache, Create(kv.get(), g, opts));
  cache->owned_store_ = std::move(st);
  cache->owned_kv_ = std::move(kv);
  return cache;
}

StoreKvCache::~StoreKvCache() {
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

Status StoreKvCache::ReadChunks(int layer, int64_t token_begin, int64_t token_end,
                                const ChunkFn& fn) {
  DB_CHECK(layer >= 0 && layer < geometry_.n_layer);
  DB_CHECK(0 <= token_begin && token_begin <= token_end && token_end <= n_tokens_[layer]);
  const uint64_t row = geometry_.row_bytes();
  const int64_t first_chunk = token_begin / geometry_.chunk_tokens;
  hit_fraction_.clear();
  if (opts_.measure_pagecache_hits) MeasurePageCacheHits(layer, token_begin, token_end);
  store::KvRange range{seq_, static_cast<uint32_t>(layer), static_cast<uint64_t>(token_begin),
                       static_cast<uint64_t>(token_end)};
  return kv_->ReadChunks({&range, 1}, [&](const store::KvChunkView& c) {
    const uint64_t bytes = 2 * row * c.n_tokens;
    switch (c.source) {
      case store::KvSource::kMemory: reads_.read_bytes_memory += bytes; break;
      case store::KvSource::kPage: {
        reads_.read_bytes_page += bytes;
        // Only chunks the store really read through the page cache count as hits: a PAGE
        // chunk whose write is still in flight is delivered from memory.
        const auto i = static_cast<size_t>(static_cast<int64_t>(c.chunk) - first_chunk);
        if (i < hit_fraction_.size())
          reads_.pagecache_hit_bytes += static_cast<uint64_t>(hit_fraction_[i] *
                                                              static_cast<double>(bytes));
        break;
      }
      case store::KvSource::kDirect: reads_.read_bytes_direct += bytes; break;
    }
    fn(static_cast<int64_t>(c.chunk), static_cast<int64_t>(c.token_begin),
       static_cast<int>(c.n_tokens), c.k, c.v);
  });
}

void StoreKvCache::MeasurePageCacheHits(int layer, int64_t token_begin, int64_t token_end) {
  if (!CachestatSupported()) return;
  const auto l = static_cast<uint32_t>(layer);
  const int64_t ct = geometry_.chunk_tokens;
  const int64_t first = token_begin / ct;
  const int64_t end = token_end / ct;  // chunks past the last full one come from memory
  hit_fraction_.assign(static_cast<size_t>(std::max<int64_t>(end - first, 0)), 0.0);
  const int fd = kv_->store().device().buffered_fd();
  const std::string& path = kv_->store().device().info().path;
  for (int64_t c = first; c < end;) {
    Result<store::KvPath> p = kv_->ChunkPath(seq_, l, static_cast<uint64_t>(c));
    if (!p.ok() || *p != store::KvPath::kPage) {
      ++c;
      continue;
    }
    // A run of PAGE chunks adjacent on disk is one probe per part.
    Result<store::KvChunkLocation> loc0 = kv_->ChunkLocation(seq_, l, static_cast<uint64_t>(c));
    if (!loc0.ok()) return;
    int64_t run = 1;
    while (c + run < end) {
      Result<store::KvPath> q = kv_->ChunkPath(seq_, l, static_cast<uint64_t>(c + run));
      Result<store::KvChunkLocation> loc =
          kv_->ChunkLocation(seq_, l, static_cast<uint64_t>(c + run));
      if (!q.ok() || *q != store::KvPath::kPage || !loc.ok() ||
          loc->k_offset_bytes != loc0->k_offset_bytes + static_cast<uint64_t>(run) * loc0->part_bytes) {
        break;
      }
      ++run;
    }
    const uint64_t len = static_cast<uint64_t>(run) * loc0->part_bytes;
    double fraction = 0;  // resident share of the run, K and V parts weighing alike
    for (uint64_t off : {loc0->k_offset_bytes, loc0->v_offset_bytes}) {
      Result<PageCacheResidency> r =
          ProbeResidency(fd, path, off, len, ResidencyMethod::kCachestat);
      if (!r.ok()) return;  // a measurement only: never fail the read for it
      fraction += r->fraction() / 2;
    }
    for (int64_t x = c; x < c + run; ++x) hit_fraction_[static_cast<size_t>(x - first)] = fraction;
    c += run;
  }
}

KvStats StoreKvCache::stats() const {
  KvStats s = reads_;
  const store::KvStoreStats& now = kv_->stats();
  s.write_bytes_page = now.write_bytes_page - base_stats_.write_bytes_page;
  s.write_bytes_direct = now.write_bytes_direct - base_stats_.write_bytes_direct;
  return s;
}

}  // namespace dualblade::engine
