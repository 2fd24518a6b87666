// DualPlacement: runs a PlacementPolicy over the layers of one KV sequence. It remembers the
// path every chunk has, builds the policy's inventory from the full chunks, and applies a plan
// through the caller's SetChunkPath-like function: transitions coalesced into runs of adjacent
// chunks, and the chunks not yet full (the tail and the capacity beyond it) set to the path the
// policy gives new chunks, so their writes go straight to the path they will keep.
//
// Shared by the KV-trace benchmark and the store-backed KV cache of `run`, so both place chunks
// the same way. Pure bookkeeping: the function passed to Replan is the only side effect.
//
// Thread-safety: none; one owner (the decode loop).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "common/status.h"
#include "residency/placement.h"

namespace dualblade {

class DualPlacement {
 public:
  // Moves chunks [chunk_begin, chunk_end) of LAYER to PATH.
  using ApplyFn = std::function<Status(uint32_t layer, uint64_t chunk_begin, uint64_t chunk_end,
                                       KvPath path)>;

  // CAPACITY_CHUNKS[l] chunks in layer l, each CHUNK_TOKENS tokens and CHUNK_BYTES (K and V
  // together) on disk, all on path INITIAL (what the store was told at creation).
  DualPlacement(const PlacementOptions& opts, uint64_t seq,
                const std::vector<uint64_t>& capacity_chunks, uint64_t chunk_tokens,
                uint64_t chunk_bytes, KvPath initial);

  // The layer now holds N_TOKENS tokens (chunks below n_tokens / chunk_tokens are full).
  void set_n_tokens(uint32_t layer, uint64_t n_tokens) { layers_.at(layer).n_tokens = n_tokens; }
  uint64_t n_tokens(uint32_t layer) const { return layers_.at(layer).n_tokens; }
  KvPath path(uint32_t layer, uint64_t chunk) const { return layers_.at(layer).paths.at(chunk); }

  // Asks the policy for a plan over every full chunk from READING and applies it through APPLY.
  // On error the chunks already moved keep their new paths here too.
  Result<PlacementPlan> Replan(const MemoryReading& reading, const ApplyFn& apply);

  // Feeds the policy's path balance (PlacementPolicy::ObservePathRates).
  void ObservePathRates(const PathRateSample& sample) { policy_.ObservePathRates(sample); }

  const PlacementPolicy& policy() const { return policy_; }
  uint64_t transitions() const { return transitions_; }  // chunk path changes planned so far
  // Chunks holding tokens (full or the partial tail) now on PAGE and on DIRECT.
  uint64_t page_chunks() const;
  uint64_t direct_chunks() const;

 private:
  struct Layer {
    std::vector<KvPath> paths;  // per chunk of capacity, as last applied
    uint64_t n_tokens = 0;
  };
  Status Apply(uint32_t layer, uint64_t begin, uint64_t end, KvPath path, const ApplyFn& apply);
  uint64_t Count(KvPath p) const;

  PlacementPolicy policy_;
  uint64_t seq_;
  uint64_t chunk_tokens_;
  uint64_t chunk_bytes_;
  std::vector<Layer> layers_;
  uint64_t transitions_ = 0;
};

}  // namespace dualblade
