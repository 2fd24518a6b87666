// Placement policy: which KV chunks are read and written through the page cache (PAGE) and which
// through O_DIRECT (DIRECT), decided from the memory the monitor says the page cache can really
// keep (MemoryReading::kv_headroom_bytes).
//
// Pure logic: the input is the chunk inventory (every full chunk of every (sequence, layer)
// segment, with the path it has now) and a MemoryReading; the output is the target path of every
// chunk and the transitions that get there. The caller applies them (a demotion is
// POSIX_FADV_DONTNEED on the chunk's range, a promotion is buffered reads from then on; no data
// moves, both paths address the same LBAs). Nothing here touches a file, so every decision can be
// replayed from scripted readings.
//
// Policies:
//   dual       a PAGE set no larger than the headroom, the rest DIRECT (the default); where the
//              caller feeds measured path rates (ObservePathRates), and while compute waits
//              for the reads, also no larger than the split at which the page-cache copies and
//              the device reads finish together;
//   pagecache  every chunk PAGE (the file-based baseline);
//   direct     every chunk DIRECT;
//   memory     KV kept in anonymous memory (every chunk MEMORY; the policy only reports it).
//
// Thread-safety: none; one owner evaluates it (the decode loop, once per step or so).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "residency/memory_monitor.h"

namespace dualblade {

enum class KvPolicy : uint8_t { kDual, kPageCache, kDirect, kMemory };
const char* KvPolicyName(KvPolicy p);  // "dual", "pagecache", "direct", "memory"
// InvalidArgument naming the accepted values for anything else.
Result<KvPolicy> ParseKvPolicy(std::string_view text);

enum class KvPath : uint8_t { kPage, kDirect, kMemory };
const char* KvPathName(KvPath p);  // "page", "direct", "memory"

// One full chunk of a segment, as the store knows it.
struct ChunkInfo {
  uint64_t seq = 0;
  uint32_t layer = 0;
  uint32_t chunk = 0;  // index within the segment, 0 = oldest tokens
  uint64_t bytes = 0;  // K and V bytes together
  KvPath path = KvPath::kDirect;  // the path the chunk has now
};

struct PathTransition {
  size_t index = 0;  // into the inventory passed to Evaluate
  KvPath from = KvPath::kDirect;
  KvPath to = KvPath::kDirect;
};

struct PlacementPlan {
  std::vector<KvPath> paths;                // parallel to the inventory
  std::vector<PathTransition> transitions;  // chunks whose path changes, in inventory order
  uint64_t page_bytes = 0;                  // bytes of the chunks planned PAGE
  uint64_t page_budget_bytes = 0;           // what the dual policy allowed the PAGE set
  uint64_t balance_cap_bytes = 0;           // the path balance's cap on it (0 = none)
  uint64_t demoted_bytes = 0;
  uint64_t promoted_bytes = 0;
  std::string reason;  // why the budget is what it is, for logs ("hold", "shrink: ...")
};

// What each path delivered over a stretch of reads (a decode step) and the time it took: the
// PAGE path's CPU time copying out of the page cache (misses waited for included), the DIRECT
// path's time with a read outstanding.
struct PathRateSample {
  uint64_t page_bytes = 0;
  uint64_t page_us = 0;
  uint64_t direct_bytes = 0;
  uint64_t direct_us = 0;
  // The step these reads fed, and the part of it compute waited for them (0, 0: not known, taken
  // as reads on the critical path).
  uint64_t step_us = 0;
  uint64_t stall_us = 0;
};

struct PlacementOptions {
  KvPolicy policy = KvPolicy::kDual;
  // Hysteresis band: the PAGE budget grows only when the headroom exceeds it by more than
  // max(band_fraction * headroom, band_min_bytes). 5% / 8 MiB: above the noise of a cgroup's
  // usage between two samples (a few MiB of slab and page tables), below a chunk-row of a layer
  // on the shapes this runs.
  double band_fraction = 0.05;
  uint64_t band_min_bytes = 8ull << 20;
  // Growth waits for this many consecutive readings that all allow it, so a headroom that
  // oscillates never makes the set grow and shrink in turn. Shrinking never waits.
  uint32_t grow_confirm_readings = 3;
  // Each growth adds at most this much (0 = no cap): a promoted chunk costs one buffered miss,
  // so growing in steps spreads that cost and lets the next readings see its effect.
  uint64_t grow_step_bytes = 64ull << 20;
  // Memory pressure (system PSI "some" avg10, percent) at or above which the set shrinks a band
  // below the headroom instead of to it, and never grows.
  double pressure_some_avg10 = 20.0;

  // Path balance (dual). The two paths use different resources: a PAGE read is a CPU copying
  // out of the page cache, a DIRECT read the device's DMA. Where the headroom holds more than
  // the split at which both finish together, reading the rest through the page cache leaves the
  // device idle while a CPU copies, so the PAGE set is also capped at
  //   inventory x page_rate / (page_rate + direct_rate)
  // from the rates measured while reading (ObservePathRates). Off: the PAGE set is the headroom.
  bool balance_paths = true;
  // Before any DIRECT read has been measured (the headroom holds everything), this share of the
  // inventory is read direct, to measure the device; the next plans follow the measured rates.
  double balance_probe_direct_fraction = 0.125;
  // The cap moves only when the measured split moves by more than this share of the inventory:
  // each move demotes or promotes chunks (a promoted chunk misses once).
  double balance_band_fraction = 0.03;
  // Weight of the newest sample in the rates' moving averages.
  double balance_rate_weight = 0.5;
  // A path's samples add up until they hold at least this many bytes (a few requests say little).
  uint64_t balance_min_sample_bytes = 4ull << 20;
  // The balance applies only while compute waits for the reads for at least this share of a
  // step (moving average). Below it compute is the bottleneck: a faster split of the reads does
  // not shorten the step, and DIRECT reads' completions compete with compute for the CPUs (on a
  // 2-vCPU VM at 1 GiB, depth 1, compute = I/O: 107-117 ms a step balanced, 89-94 not).
  double balance_min_stall_fraction = 0.25;
};

// Whether READING reports memory pressure as OPTS judges it (PSI "some" avg10 at or above
// pressure_some_avg10): the PAGE set then stops growing, and a pipeline sheds staging.
bool UnderMemoryPressure(const MemoryReading& reading, const PlacementOptions& opts);

class PlacementPolicy {
 public:
  explicit PlacementPolicy(const PlacementOptions& opts);

  KvPolicy policy() const { return opts_.policy; }
  const PlacementOptions& options() const { return opts_; }

  // Decides the path of every chunk in INVENTORY (any order; chunk indices of one segment need
  // not be dense) from READING, and updates the policy's hysteresis state. The first call sizes
  // the PAGE set straight from the reading; later calls shrink at once when the set no longer
  // fits and grow only after grow_confirm_readings consecutive readings with room to spare.
  //
  // Guarantees for dual, after every call: page_bytes <= page_budget_bytes <=
  // reading.kv_headroom_bytes; in every segment the PAGE chunks are a prefix (the oldest
  // chunks) and the DIRECT chunks the contiguous rest.
  //
  // With balance_paths, a measured page rate, and room for more than the balanced split, the
  // PAGE set is also capped by the path balance (see PlacementOptions).
  PlacementPlan Evaluate(const std::vector<ChunkInfo>& inventory, const MemoryReading& reading);

  // Feeds the path balance with what the reads since the last sample measured. A path's rate
  // changes once its samples add up to balance_min_sample_bytes.
  void ObservePathRates(const PathRateSample& sample);
  // The moving averages, bytes per second (0 = not measured yet), and the cap in force (0 = none).
  double page_rate_bytes_per_s() const { return page_rate_ * 1e6; }
  double direct_rate_bytes_per_s() const { return direct_rate_ * 1e6; }
  uint64_t balance_cap_bytes() const { return balance_cap_bytes_; }
  double stall_fraction() const { return stall_fraction_; }  // < 0: not known

  // The path a chunk about to be written should take (prefill, or a decode chunk filling up),
  // before it is in any inventory: PAGE only when chunk CHUNK_INDEX of a segment falls inside
  // the even per-segment share of the current budget (N_SEGMENTS segments of CHUNK_BYTES chunks),
  // so dirty page cache never builds up for chunks that will be read direct. Conservative: it
  // ignores the remainder that Evaluate hands out one chunk per segment.
  KvPath PathForNewChunk(uint32_t chunk_index, uint64_t chunk_bytes, uint64_t n_segments) const;

  // The PAGE budget currently in force (0 before the first Evaluate for dual): the headroom's,
  // under the path balance's cap where there is one.
  uint64_t page_budget_bytes() const { return EffectiveBudget(); }
  uint64_t evaluations() const { return evaluations_; }
  uint64_t budget_changes() const { return budget_changes_; }

 private:
  uint64_t Band(uint64_t headroom_bytes) const;
  // Updates budget_bytes_ from READING; returns the reason.
  std::string UpdateBudget(const MemoryReading& reading);
  // Moves the balance cap toward the measured split of INVENTORY_BYTES; returns the reason, or
  // "" when there is no cap.
  std::string UpdateBalance(uint64_t inventory_bytes);
  uint64_t EffectiveBudget() const {
    return balance_cap_bytes_ == 0 ? budget_bytes_ : std::min(budget_bytes_, balance_cap_bytes_);
  }

  PlacementOptions opts_;
  bool sized_ = false;
  uint64_t budget_bytes_ = 0;
  uint32_t grow_streak_ = 0;
  uint64_t evaluations_ = 0;
  uint64_t budget_changes_ = 0;
  double page_rate_ = 0;    // bytes per microsecond
  double direct_rate_ = 0;
  double stall_fraction_ = -1;  // moving average; < 0: not known
  PathRateSample pending_;  // what has not reached balance_min_sample_bytes yet, per path
  uint64_t balance_cap_bytes_ = 0;
};

// Assigns PAGE to a prefix of every segment, spreading BUDGET_BYTES evenly across segments
// (round-robin, one chunk per segment per round, oldest chunk first), DIRECT to the rest.
// Exposed for tests and for callers that want a one-shot layout.
std::vector<KvPath> PlanPagePrefixes(const std::vector<ChunkInfo>& inventory,
                                     uint64_t budget_bytes, uint64_t* page_bytes);

}  // namespace dualblade
