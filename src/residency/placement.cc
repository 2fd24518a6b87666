#include "residency/placement.h"

#include <algorithm>
#include <cstdio>
#include <numeric>
#include <tuple>

#include "common/units.h"

namespace dualblade {

namespace {

uint64_t SubClamp(uint64_t a, uint64_t b) {
  return a > b ? a - b : 0;
}

}  // namespace

const char* KvPolicyName(KvPolicy p) {
  switch (p) {
    case KvPolicy::kDual:
      return "dual";
    case KvPolicy::kPageCache:
      return "pagecache";
    case KvPolicy::kDirect:
      return "direct";
    case KvPolicy::kMemory:
      return "memory";
  }
  return "?";
}

Result<KvPolicy> ParseKvPolicy(std::string_view text) {
  for (KvPolicy p : {KvPolicy::kDual, KvPolicy::kPageCache, KvPolicy::kDirect, KvPolicy::kMemory})
    if (text == KvPolicyName(p)) return p;
  return Status::InvalidArgument("KV policy must be dual, pagecache, direct or memory, not '" +
                                 std::string(text) + "'");
}

const char* KvPathName(KvPath p) {
  switch (p) {
    case KvPath::kPage:
      return "page";
    case KvPath::kDirect:
      return "direct";
    case KvPath::kMemory:
      return "memory";
  }
  return "?";
}

// Why a per-segment prefix rather than whole layers or the hottest chunks:
//  - Decode reads every chunk of every layer once per step, so no chunk is hotter than another;
//    what matters is only how many bytes hit and how the misses are read.
//  - A segment is K rows then V rows of one (sequence, layer), so the DIRECT suffix of a segment
//    is two contiguous LBA runs (K[p..n) and V[p..n)): the device still sees a few large
//    sequential requests per layer, however the budget falls. Scattered PAGE chunks would cut
//    those runs into chunk-sized requests.
//  - Spreading the budget evenly over segments gives every layer the same mix of copy work and
//    device work, so a pipeline that reads layer l+1 while layer l computes sees the same I/O
//    time at every layer (no bubbles), which whole PAGE layers followed by whole DIRECT layers
//    would not.
//  - New tokens append chunks at the end of a segment, i.e. to the DIRECT suffix: a growing
//    context never reshuffles the PAGE set, and prefill can write every chunk straight to the
//    path it will keep.
std::vector<KvPath> PlanPagePrefixes(const std::vector<ChunkInfo>& inventory,
                                     uint64_t budget_bytes, uint64_t* page_bytes) {
  std::vector<KvPath> paths(inventory.size(), KvPath::kDirect);
  std::vector<size_t> order(inventory.size());
  std::iota(order.begin(), order.end(), size_t{0});
  auto key = [&](size_t i) {
    return std::tuple(inventory[i].seq, inventory[i].layer, inventory[i].chunk);
  };
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return key(a) < key(b); });

  // Segments as [begin, end) ranges of ORDER; pos = the next chunk of each to consider.
  struct Segment {
    size_t pos, end;
  };
  std::vector<Segment> segments;
  for (size_t i = 0; i < order.size();) {
    size_t j = i + 1;
    while (j < order.size() && inventory[order[j]].seq == inventory[order[i]].seq &&
           inventory[order[j]].layer == inventory[order[i]].layer)
      ++j;
    segments.push_back({i, j});
    i = j;
  }

  uint64_t total = 0;
  size_t active = segments.size();
  std::vector<bool> done(segments.size(), false);
  while (active > 0) {
    for (size_t s = 0; s < segments.size(); ++s) {
      if (done[s]) continue;
      Segment& seg = segments[s];
      const size_t idx = seg.pos < seg.end ? order[seg.pos] : 0;
      // A segment stops at its first chunk that does not fit, so its PAGE chunks stay a prefix.
      if (seg.pos == seg.end || total + inventory[idx].bytes > budget_bytes) {
        done[s] = true;
        --active;
        continue;
      }
      paths[idx] = KvPath::kPage;
      total += inventory[idx].bytes;
      ++seg.pos;
    }
  }
  if (page_bytes != nullptr) *page_bytes = total;
  return paths;
}

bool UnderMemoryPressure(const MemoryReading& reading, const PlacementOptions& opts) {
  return reading.has_pressure && reading.psi_some_avg10 >= opts.pressure_some_avg10;
}

PlacementPolicy::PlacementPolicy(const PlacementOptions& opts) : opts_(opts) {}

uint64_t PlacementPolicy::Band(uint64_t headroom_bytes) const {
  const auto frac = static_cast<uint64_t>(opts_.band_fraction * static_cast<double>(headroom_bytes));
  return std::max(frac, opts_.band_min_bytes);
}

// The budget's state machine (dual only):
//
//   first reading      budget = headroom (a band below it under pressure)
//   budget > headroom  shrink at once to the headroom (a band below under pressure): the set
//                      must fit now, or LRU starts evicting it and every step misses
//   under pressure     never grow; trim to a band below the headroom
//   headroom > budget + band for grow_confirm_readings readings in a row
//                      grow to half a band below the headroom, at most grow_step_bytes at once
//   otherwise          hold (and reset the growth streak)
//
// Shrinking is immediate and growing slow and banded, so an oscillating headroom costs at most
// the shrinks it forces and never a grow-shrink cycle.
std::string PlacementPolicy::UpdateBudget(const MemoryReading& reading) {
  const uint64_t headroom = reading.kv_headroom_bytes;
  const uint64_t band = Band(headroom);
  const bool pressure = UnderMemoryPressure(reading, opts_);
  const uint64_t old = budget_bytes_;
  std::string reason;
  if (!sized_) {
    sized_ = true;
    budget_bytes_ = pressure ? SubClamp(headroom, band) : headroom;
    grow_streak_ = 0;
    reason = pressure ? "initial, under pressure" : "initial";
  } else if (budget_bytes_ > headroom) {
    budget_bytes_ = pressure ? SubClamp(headroom, band) : headroom;
    grow_streak_ = 0;
    reason = "shrink: headroom " + FormatBytes(headroom) + " below the PAGE budget";
  } else if (pressure) {
    grow_streak_ = 0;
    if (budget_bytes_ > SubClamp(headroom, band)) {
      budget_bytes_ = SubClamp(headroom, band);
      reason = "shrink: memory pressure";
    } else {
      reason = "hold: memory pressure";
    }
  } else if (headroom > budget_bytes_ + band) {
    if (++grow_streak_ >= opts_.grow_confirm_readings) {
      uint64_t target = headroom - band / 2;
      if (opts_.grow_step_bytes != 0) target = std::min(target, budget_bytes_ + opts_.grow_step_bytes);
      budget_bytes_ = target;
      grow_streak_ = 0;
      reason = "grow: headroom " + FormatBytes(headroom);
    } else {
      reason = "hold: growth pending " + std::to_string(grow_streak_) + "/" +
               std::to_string(opts_.grow_confirm_readings);
    }
  } else {
    grow_streak_ = 0;
    reason = "hold";
  }
  if (budget_bytes_ != old) ++budget_changes_;
  return reason;
}

void PlacementPolicy::ObservePathRates(const PathRateSample& s) {
  const double w = opts_.balance_rate_weight;
  // The moving averages start at their first sample (AVG unset: below 0 for the stall share, 0
  // for a rate, which a measured rate never is).
  auto average = [w](double* avg, bool unset, double sample) {
    *avg = unset ? sample : w * sample + (1 - w) * *avg;
  };
  // Samples smaller than the minimum add up until they reach it, so a small KV is measured too.
  auto blend = [&](double* rate, uint64_t* acc_bytes, uint64_t* acc_us, uint64_t bytes,
                   uint64_t us) {
    *acc_bytes += bytes;
    *acc_us += us;
    if (*acc_bytes < opts_.balance_min_sample_bytes || *acc_us == 0) return;
    average(rate, *rate == 0, static_cast<double>(*acc_bytes) / static_cast<double>(*acc_us));
    *acc_bytes = *acc_us = 0;
  };
  if (s.step_us > 0) {
    average(&stall_fraction_, stall_fraction_ < 0,
            static_cast<double>(std::min(s.stall_us, s.step_us)) / static_cast<double>(s.step_us));
  }
  blend(&page_rate_, &pending_.page_bytes, &pending_.page_us, s.page_bytes, s.page_us);
  blend(&direct_rate_, &pending_.direct_bytes, &pending_.direct_us, s.direct_bytes, s.direct_us);
}

// The balanced split: PAGE bytes P and DIRECT bytes D = T - P take P / page_rate and
// D / direct_rate, run at once; both finish together at P = T x page_rate / (page_rate +
// direct_rate), and any other split leaves one resource idle while the other finishes. Without a
// DIRECT rate yet, a probe share goes direct to measure one. Only a cap: a headroom below it
// still decides (that is memory, not speed).
std::string PlacementPolicy::UpdateBalance(uint64_t inventory_bytes) {
  if (!opts_.balance_paths || page_rate_ == 0 || inventory_bytes == 0) {
    balance_cap_bytes_ = 0;
    return "";
  }
  if (stall_fraction_ >= 0 && stall_fraction_ < opts_.balance_min_stall_fraction) {
    balance_cap_bytes_ = 0;
    char why[96];
    std::snprintf(why, sizeof why, "no balance: compute-bound (stalled %.0f%% of a step)",
                  100 * stall_fraction_);
    return why;
  }
  const double t = static_cast<double>(inventory_bytes);
  const bool probe = direct_rate_ == 0;
  const double share = probe ? 1 - opts_.balance_probe_direct_fraction
                             : page_rate_ / (page_rate_ + direct_rate_);
  // At least a byte: a cap of 0 means none.
  const uint64_t target =
      std::max<uint64_t>(1, static_cast<uint64_t>(std::clamp(share, 0.0, 1.0) * t));
  const auto band = static_cast<uint64_t>(opts_.balance_band_fraction * t);
  const uint64_t old = balance_cap_bytes_;
  if (old == 0 || target > old + band || target + band < old) balance_cap_bytes_ = target;
  std::string why = std::string(probe ? "balance probe" : "balance") + ": PAGE cap " +
                    FormatBytes(balance_cap_bytes_) + " (page " +
                    FormatBytes(static_cast<uint64_t>(page_rate_ * 1e6)) + "/s, direct " +
                    FormatBytes(static_cast<uint64_t>(direct_rate_ * 1e6)) + "/s)";
  return why;
}

PlacementPlan PlacementPolicy::Evaluate(const std::vector<ChunkInfo>& inventory,
                                        const MemoryReading& reading) {
  ++evaluations_;
  PlacementPlan plan;
  uint64_t inventory_bytes = 0;
  for (const ChunkInfo& c : inventory) inventory_bytes += c.bytes;

  switch (opts_.policy) {
    case KvPolicy::kDual:
      plan.reason = UpdateBudget(reading);
      if (std::string why = UpdateBalance(inventory_bytes); !why.empty())
        plan.reason += "; " + why;
      plan.balance_cap_bytes = balance_cap_bytes_;
      plan.page_budget_bytes = EffectiveBudget();
      plan.paths = PlanPagePrefixes(inventory, plan.page_budget_bytes, &plan.page_bytes);
      break;
    case KvPolicy::kPageCache:
      plan.paths.assign(inventory.size(), KvPath::kPage);
      plan.page_bytes = inventory_bytes;
      plan.page_budget_bytes = inventory_bytes;
      plan.reason = "pagecache: every chunk PAGE";
      break;
    case KvPolicy::kDirect:
      plan.paths.assign(inventory.size(), KvPath::kDirect);
      plan.reason = "direct: every chunk DIRECT";
      break;
    case KvPolicy::kMemory:
      plan.paths.assign(inventory.size(), KvPath::kMemory);
      plan.reason = "memory: KV in anonymous memory";
      break;
  }

  for (size_t i = 0; i < inventory.size(); ++i) {
    if (inventory[i].path == plan.paths[i]) continue;
    plan.transitions.push_back({i, inventory[i].path, plan.paths[i]});
    if (inventory[i].path == KvPath::kPage) plan.demoted_bytes += inventory[i].bytes;
    if (plan.paths[i] == KvPath::kPage) plan.promoted_bytes += inventory[i].bytes;
  }
  return plan;
}

KvPath PlacementPolicy::PathForNewChunk(uint32_t chunk_index, uint64_t chunk_bytes,
                                        uint64_t n_segments) const {
  switch (opts_.policy) {
    case KvPolicy::kPageCache:
      return KvPath::kPage;
    case KvPolicy::kDirect:
      return KvPath::kDirect;
    case KvPolicy::kMemory:
      return KvPath::kMemory;
    case KvPolicy::kDual:
      break;
  }
  if (chunk_bytes == 0 || n_segments == 0) return KvPath::kDirect;
  const uint64_t per_segment_chunks = EffectiveBudget() / chunk_bytes / n_segments;
  return chunk_index < per_segment_chunks ? KvPath::kPage : KvPath::kDirect;
}

}  // namespace dualblade
