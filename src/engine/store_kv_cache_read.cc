// StoreKvCache's read side: ReadChunks, the cross-layer prefetch (see store_kv_cache.h for the
// protocol) and the page-cache hit measurement.
#include <algorithm>
#include <cstring>

#include "common/clock.h"
#include "engine/store_kv_cache.h"
#include "residency/residency_probe.h"

namespace dualblade::engine {

uint32_t StoreKvCache::prefetch_depth() const {
  const uint32_t want = controller_ != nullptr
                            ? controller_->plan().depth
                            : static_cast<uint32_t>(std::max(opts_.prefetch_depth, 0));
  // A layer is never prefetched while it is being read itself.
  return std::min<uint32_t>(want, static_cast<uint32_t>(geometry_.n_layer - 1));
}

Status StoreKvCache::ReadChunks(int layer, int64_t token_begin, int64_t token_end,
                                const ChunkFn& fn) {
  DB_CHECK(layer >= 0 && layer < geometry_.n_layer);
  DB_CHECK(0 <= token_begin && token_begin <= token_end && token_end <= n_tokens_[layer]);
  const uint64_t entry_ns = NowNanos();
  const uint64_t row = geometry_.row_bytes();
  const int64_t first_chunk = token_begin / geometry_.chunk_tokens;
  hit_fraction_.clear();
  if (opts_.measure_pagecache_hits) MeasurePageCacheHits(layer, token_begin, token_end);
  uint64_t callback_ns = 0;  // time in fn (compute), not waiting
  int64_t delivered_tokens = 0;
  auto deliver = [&](const store::KvChunkView& c) {
    const uint64_t bytes = 2 * row * c.n_tokens;
    delivered_tokens += c.n_tokens;
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
    const uint64_t t = NowNanos();
    fn(static_cast<int64_t>(c.chunk), static_cast<int64_t>(c.token_begin),
       static_cast<int>(c.n_tokens), c.k, c.v);
    callback_ns += NowNanos() - t;
  };

  // What the prefetch did not cover: the gaps between its DIRECT runs (PAGE runs) and whatever
  // follows them (chunks filled since, the tail).
  std::unique_ptr<Prefetch> pre = TakePrefetch(layer, token_begin, token_end);
  std::vector<store::KvRange> rest;
  auto add_rest = [&](uint64_t b, uint64_t e) {
    if (b < e) rest.push_back({seq_, static_cast<uint32_t>(layer), b, e});
  };
  uint64_t t = static_cast<uint64_t>(token_begin);
  if (pre != nullptr) {
    for (const store::KvRange& r : pre->ranges) {
      add_rest(t, r.token_begin);
      t = r.token_end;
    }
  }
  add_rest(t, static_cast<uint64_t>(token_end));
  std::unique_ptr<store::KvReadBatch> now;
  if (!rest.empty()) {
    DB_ASSIGN_OR_RETURN(now, kv_->StartRead(rest));
    // Submits this layer's reads before any later layer's join the queue.
    DB_ASSIGN_OR_RETURN(size_t n, now->Poll(/*wait=*/false, deliver));
    (void)n;
  }
  DB_RETURN_IF_ERROR(StartPrefetches(layer));
  if (pre != nullptr) {
    for (Prefetch::Copy& c : pre->copies) {
      c.view.k = c.k.data();
      c.view.v = c.v.data();
      deliver(c.view);
    }
    pre->copies.clear();
    // A batch that failed while being started has drained by now (done) and says so only to
    // Poll.
    if (pre->batch != nullptr) {
      DB_ASSIGN_OR_RETURN(size_t n, pre->batch->Poll(/*wait=*/false, deliver));
      (void)n;
    }
  }

  // Both batches until done, each chunk as it lands; block only when neither has one ready.
  struct Source {
    store::KvReadBatch* batch;
    uint64_t done_ns = 0;
    uint64_t stall_ns = 0;
  };
  Source sources[2] = {{now.get()}, {pre != nullptr ? pre->batch.get() : nullptr}};
  uint64_t stall_ns = 0;
  for (;;) {
    size_t got = 0;
    Source* waiting = nullptr;
    for (Source& s : sources) {
      if (s.batch == nullptr || s.done_ns != 0) continue;
      if (!s.batch->done()) {
        DB_ASSIGN_OR_RETURN(size_t n, s.batch->Poll(/*wait=*/false, deliver));
        got += n;
      }
      if (s.batch->done()) {
        s.done_ns = NowNanos();
      } else if (waiting == nullptr) {
        waiting = &s;
      }
    }
    if (waiting == nullptr) break;
    if (got > 0) continue;
    const uint64_t t0 = NowNanos(), cb0 = callback_ns;
    DB_ASSIGN_OR_RETURN(size_t n, waiting->batch->Poll(/*wait=*/true, deliver));
    (void)n;
    const uint64_t waited = NowNanos() - t0 - (callback_ns - cb0);
    waiting->stall_ns += waited;
    stall_ns += waited;
  }
  stall_ns_ += stall_ns;
  if (delivered_tokens != token_end - token_begin) {
    return Status::IOError("the read of layer " + std::to_string(layer) + " delivered " +
                           std::to_string(delivered_tokens) + " of " +
                           std::to_string(token_end - token_begin) + " tokens");
  }

  const uint64_t exit_ns = NowNanos();
  // Compute: since the previous read returned (the rest of that layer, this one's projections),
  // plus this call's time not spent waiting.
  double compute_us = double(exit_ns - entry_ns - stall_ns) / 1e3;
  if (last_read_exit_ns_ != 0) compute_us += double(entry_ns - last_read_exit_ns_) / 1e3;
  // I/O per layer, as the controller means it (the device time a layer's reads take, not their
  // latency, which grows with every layer queued ahead of them): with a stall, the pipeline ran
  // at the I/O's pace, one layer per compute + stall; without one, the reads took no longer than
  // they had, and were hidden by compute.
  double span_us = 0;
  if (sources[0].batch != nullptr) span_us = double(sources[0].done_ns - entry_ns) / 1e3;
  if (pre != nullptr) {
    ++reads_.prefetch_used;
    if (pre->batch != nullptr)
      span_us = std::max(span_us, double(sources[1].done_ns - pre->started_ns) / 1e3);
  }
  const double io_us =
      stall_ns > 0 ? compute_us + double(stall_ns) / 1e3 : std::min(span_us, compute_us);
  ObserveLayer(layer, io_us, compute_us, double(stall_ns) / 1e3);
  last_read_exit_ns_ = exit_ns;
  return Status::OK();
}

Status StoreKvCache::StartPrefetches(int layer) {
  const int n_layer = geometry_.n_layer;
  const auto depth = static_cast<int>(prefetch_depth());
  for (int x = 0; x < n_layer; ++x) {
    const int ahead = (x - layer + n_layer) % n_layer;
    if ((ahead == 0 || ahead > depth) && prefetch_[x] != nullptr) DiscardPrefetch(x);
  }
  for (int i = 1; i <= depth; ++i) {
    const int x = (layer + i) % n_layer;
    if (prefetch_[x] == nullptr) DB_RETURN_IF_ERROR(StartPrefetch(x));
  }
  return Status::OK();
}

Status StoreKvCache::StartPrefetch(int layer) {
  const auto l = static_cast<uint32_t>(layer);
  const auto ct = static_cast<uint64_t>(geometry_.chunk_tokens);
  const uint64_t full = static_cast<uint64_t>(n_tokens_[layer]) / ct;
  if (full == 0) return Status::OK();
  auto p = std::make_unique<Prefetch>();
  p->covered_chunks = full;
  p->started_ns = NowNanos();
  for (uint64_t c = 0; c < full;) {
    DB_ASSIGN_OR_RETURN(store::KvPath path, kv_->ChunkPath(seq_, l, c));
    uint64_t e = c + 1;
    for (; e < full; ++e) {
      Result<store::KvPath> q = kv_->ChunkPath(seq_, l, e);
      if (!q.ok() || *q != path) break;
    }
    const store::KvRange r{seq_, l, c * ct, e * ct};
    if (path == store::KvPath::kDirect) {
      p->ranges.push_back(r);
    } else {
      // The page path's prefetch is the kernel's: read the run into the page cache now. A hint
      // only: if the kernel refuses it, the layer's read still reads the run.
      (void)kv_->Prefetch(r);
    }
    c = e;
  }
  if (!p->ranges.empty()) {
    DB_ASSIGN_OR_RETURN(p->batch, kv_->StartRead(p->ranges));
    const uint64_t row = geometry_.row_bytes();
    // Polling submits the reads; what it delivers already (chunks still being written, served
    // from memory) is kept until the layer's ReadChunks. A failure stays with the batch (every
    // later Poll returns it), so it fails the read of that layer, not of the one computing now.
    Result<size_t> n = p->batch->Poll(/*wait=*/false, [&](const store::KvChunkView& v) {
      Prefetch::Copy c{v, {v.k, v.k + v.n_tokens * row}, {v.v, v.v + v.n_tokens * row}};
      p->copies.push_back(std::move(c));
    });
    (void)n;
  }
  prefetch_[layer] = std::move(p);
  return Status::OK();
}

std::unique_ptr<StoreKvCache::Prefetch> StoreKvCache::TakePrefetch(int layer, int64_t token_begin,
                                                                   int64_t token_end) {
  std::unique_ptr<Prefetch> p = std::move(prefetch_[layer]);
  if (p == nullptr) return nullptr;
  const auto covered_tokens =
      static_cast<int64_t>(p->covered_chunks) * static_cast<int64_t>(geometry_.chunk_tokens);
  if (token_begin != 0 || token_end < covered_tokens) {
    ++reads_.prefetch_discarded;
    return nullptr;  // destroying it waits for its reads still in the kernel
  }
  return p;
}

void StoreKvCache::DiscardPrefetch(int layer) {
  if (prefetch_[layer] == nullptr) return;
  prefetch_[layer].reset();
  ++reads_.prefetch_discarded;
}

void StoreKvCache::ObserveLayer(int layer, double io_us, double compute_us, double stall_us) {
  step_.io_us += io_us;
  step_.compute_us += compute_us;
  step_.stall_us += stall_us;
  ++step_.layers;
  if (layer != geometry_.n_layer - 1) return;
  if (controller_ != nullptr && step_.layers > 0) {
    const double n = step_.layers;
    controller_->Observe(step_.io_us / n, step_.compute_us / n, step_.stall_us / n);
  }
  step_ = {};
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


}  // namespace dualblade::engine
