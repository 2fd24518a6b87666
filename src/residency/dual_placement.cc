#include "residency/dual_placement.h"

#include <algorithm>

#include "common/check.h"

namespace dualblade {

DualPlacement::DualPlacement(const PlacementOptions& opts, uint64_t seq,
                             const std::vector<uint64_t>& capacity_chunks, uint64_t chunk_tokens,
                             uint64_t chunk_bytes, KvPath initial)
    : policy_(opts), seq_(seq), chunk_tokens_(chunk_tokens), chunk_bytes_(chunk_bytes) {
  DB_CHECK(chunk_tokens > 0);
  layers_.resize(capacity_chunks.size());
  for (size_t l = 0; l < capacity_chunks.size(); ++l)
    layers_[l].paths.assign(capacity_chunks[l], initial);
}

Status DualPlacement::Apply(uint32_t layer, uint64_t begin, uint64_t end, KvPath path,
                            const ApplyFn& apply) {
  if (begin >= end) return Status::OK();
  DB_RETURN_IF_ERROR(apply(layer, begin, end, path));
  std::fill(layers_[layer].paths.begin() + static_cast<ptrdiff_t>(begin),
            layers_[layer].paths.begin() + static_cast<ptrdiff_t>(end), path);
  return Status::OK();
}

Result<PlacementPlan> DualPlacement::Replan(const MemoryReading& reading, const ApplyFn& apply) {
  const auto n_layer = static_cast<uint32_t>(layers_.size());
  std::vector<ChunkInfo> inv;
  for (uint32_t l = 0; l < n_layer; ++l) {
    const uint64_t full = std::min<uint64_t>(layers_[l].n_tokens / chunk_tokens_,
                                             layers_[l].paths.size());
    for (uint64_t c = 0; c < full; ++c)
      inv.push_back({seq_, l, static_cast<uint32_t>(c), chunk_bytes_, layers_[l].paths[c]});
  }
  PlacementPlan plan = policy_.Evaluate(inv, reading);
  transitions_ += plan.transitions.size();
  for (size_t i = 0; i < plan.transitions.size();) {
    const ChunkInfo& first = inv[plan.transitions[i].index];
    size_t j = i + 1;
    while (j < plan.transitions.size()) {
      const ChunkInfo& c = inv[plan.transitions[j].index];
      if (c.layer != first.layer || plan.transitions[j].to != plan.transitions[i].to ||
          c.chunk != first.chunk + (j - i))
        break;
      ++j;
    }
    DB_RETURN_IF_ERROR(Apply(first.layer, first.chunk, first.chunk + (j - i),
                             plan.transitions[i].to, apply));
    i = j;
  }
  for (uint32_t l = 0; l < n_layer; ++l) {
    const uint64_t cap = layers_[l].paths.size();
    uint64_t c = layers_[l].n_tokens / chunk_tokens_;
    while (c < cap) {
      const KvPath p = policy_.PathForNewChunk(static_cast<uint32_t>(c), chunk_bytes_, n_layer);
      uint64_t e = c + 1;
      while (e < cap && policy_.PathForNewChunk(static_cast<uint32_t>(e), chunk_bytes_,
                                                n_layer) == p)
        ++e;
      bool differs = false;
      for (uint64_t x = c; x < e; ++x) differs |= layers_[l].paths[x] != p;
      if (differs) DB_RETURN_IF_ERROR(Apply(l, c, e, p, apply));
      c = e;
    }
  }
  return plan;
}

uint64_t DualPlacement::Count(KvPath p) const {
  uint64_t n = 0;
  for (const Layer& l : layers_) {
    const uint64_t used = std::min<uint64_t>((l.n_tokens + chunk_tokens_ - 1) / chunk_tokens_,
                                             l.paths.size());
    n += static_cast<uint64_t>(
        std::count(l.paths.begin(), l.paths.begin() + static_cast<ptrdiff_t>(used), p));
  }
  return n;
}

uint64_t DualPlacement::page_chunks() const { return Count(KvPath::kPage); }
uint64_t DualPlacement::direct_chunks() const { return Count(KvPath::kDirect); }

}  // namespace dualblade
