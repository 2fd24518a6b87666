#include "engine/store_kv_cache.h"

#include "common/log.h"

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
  cache->base_stats_ = kv->stats();
  return cache;
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
  return Status::OK();
}

Status StoreKvCache::ReadChunks(int layer, int64_t token_begin, int64_t token_end,
                                const ChunkFn& fn) {
  DB_CHECK(layer >= 0 && layer < geometry_.n_layer);
  DB_CHECK(0 <= token_begin && token_begin <= token_end && token_end <= n_tokens_[layer]);
  const uint64_t row = geometry_.row_bytes();
  store::KvRange range{seq_, static_cast<uint32_t>(layer), static_cast<uint64_t>(token_begin),
                       static_cast<uint64_t>(token_end)};
  return kv_->ReadChunks({&range, 1}, [&](const store::KvChunkView& c) {
    const uint64_t bytes = 2 * row * c.n_tokens;
    switch (c.source) {
      case store::KvSource::kMemory: reads_.read_bytes_memory += bytes; break;
      case store::KvSource::kPage: reads_.read_bytes_page += bytes; break;
      case store::KvSource::kDirect: reads_.read_bytes_direct += bytes; break;
    }
    fn(static_cast<int64_t>(c.chunk), static_cast<int64_t>(c.token_begin),
       static_cast<int>(c.n_tokens), c.k, c.v);
  });
}

KvStats StoreKvCache::stats() const {
  KvStats s = reads_;
  const store::KvStoreStats& now = kv_->stats();
  s.write_bytes_page = now.write_bytes_page - base_stats_.write_bytes_page;
  s.write_bytes_direct = now.write_bytes_direct - base_stats_.write_bytes_direct;
  return s;
}

}  // namespace dualblade::engine
