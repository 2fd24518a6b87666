// AdaptiveController: picks the prefetch depth (layers read ahead of the one computing), the
// request size and the queue depth from measured per-layer I/O and compute times and the staging
// memory available. Pure logic: every input is an explicit argument (no clocks, no threads), so
// the simulation drives it exactly as the engine would.
//
// Decision rule (evaluated by Decide, after each Observe / SetHeadroom):
//   io, compute  = EWMA (alpha) of per-layer I/O busy time and compute busy time.
//   ratio        = io / compute. Reads of layer l+d have d compute windows to land in, so depth
//                  d hides the I/O once d * compute >= io * (1 + jitter_margin):
//                  want = ceil(ratio * (1 + jitter_margin)), at least 1 while there is any I/O
//                  (0 when io < 1% of compute: everything came from memory).
//   stall feedback: when the smoothed stall per layer still exceeds stall_tolerance * compute
//                  while running at the model's depth (or deeper), want grows by one over the
//                  model (the model underestimates queueing), unless that depth has been
//                  measured and was no faster (below).
//   measured choice: the controller keeps, per depth it has run, the per-layer critical path
//                  (compute + stall) of its last few steps; a depth's cost is the least of them
//                  (one slow step, a hiccup of the shared machine, does not condemn a depth),
//                  and it is judged once min_samples_to_judge steps have fed it and while its
//                  newest sample is at most rejudge_after_steps old. Once the model's depth is
//                  judged, the controller takes the shallowest judged depth up to the model's
//                  whose cost is within min_depth_gain of the cheapest there: the least staging
//                  memory that is as fast. Judged depths below ceil(ratio / (1 + jitter_margin))
//                  count too (a step's time is the ground truth; I/O busy time grows with the
//                  reads in flight, so at a deeper depth it overstates the reads' own time), but
//                  no depth below that is tried unmeasured: well below it the reads cannot keep
//                  up. The next shallower depth at or above that floor whose cost has gone stale
//                  is measured again, so a deeper depth is not kept for good against an old
//                  reading. Where reads cost CPU (page-cache copies on a machine with few
//                  cores), reading further ahead competes with compute instead of hiding behind
//                  it, and only measuring shows that. The run's first warmup_steps steps are
//                  left out of the costs (cold caches, the prefill's writeback: slow at whatever
//                  depth), and the depth grows only once the depth running has been judged after
//                  them, so the comparison is never against a warm-up.
//   free memory: where the model's depth's staging is memory nothing else wants (free bytes
//                  reported by SetGrowthCost cover it), a shallower depth saves nothing and the
//                  tie goes the other way: the model's depth is kept unless a shallower one was
//                  measured min_depth_gain faster (at a depth with no slack the reads' jitter
//                  stalls compute, and measured costs are too noisy to see a few percent).
//   nothing to gain: a deeper depth can at best remove the stall. While the smoothed stall per
//                  layer is within min_depth_gain of the critical path, no deeper depth could be
//                  judged faster than the one running, so the controller does not grow the pool
//                  (faulting a larger one in costs a step) to measure one. A depth already judged
//                  faster is still taken back.
//   memory cap   = floor(available / layer_bytes), available = min(staging budget, headroom
//                  reported by the memory monitor). Depth never exceeds it. A staging budget
//                  shorter than one layer still allows depth 1 while the headroom covers it
//                  (no pressure): the pool is already charged, and streaming the next layer's
//                  reads into buffers the computing layer frees keeps the device busy.
//   hysteresis   = a smaller depth is taken at once (pressure must be relieved now); a larger
//                  one only after grow_after consecutive decisions that all want it and whose
//                  headroom (when one is reported) covers the larger depth plus
//                  grow_margin_layers of slack, so a headroom that hovers at a boundary does not
//                  flap the depth. A depth whose layers exceed the pool is still safe: the pool
//                  is the hard limit and a short pool streams chunk by chunk.
//   request size = the largest multiple of chunk_bytes <= max_request_bytes and <= layer_bytes;
//                  one chunk when the memory cap is below one layer (small requests keep a
//                  tight pool streaming instead of waiting for a large one to fill).
//   queue depth  = requests of (depth + 1) layers, clamped to [1, max_queue_depth]: enough to
//                  keep every staged read in the device queue.
//
// Thread-safety: none.
#pragma once

#include <cstddef>
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dualblade {

struct AdaptiveControllerOptions {
  uint64_t layer_bytes = 0;        // staging one layer's KV chunks needs (REQUIRES > 0)
  uint64_t chunk_bytes = 0;        // one chunk (REQUIRES 0 < chunk_bytes <= layer_bytes)
  uint64_t staging_budget_bytes = 0;
  uint64_t max_request_bytes = 1 << 20;  // 1 MiB: where NVMe sequential reads reach peak
  uint32_t max_queue_depth = 64;
  uint32_t max_depth = 8;          // beyond this the memory is better spent on the page cache
  double alpha = 0.3;              // EWMA weight of the newest sample
  double jitter_margin = 0.2;      // head room for I/O latency variance
  double stall_tolerance = 0.05;   // stall per layer tolerated before the feedback term kicks in
  uint32_t grow_after = 3;
  double grow_margin_layers = 0.5;
  uint32_t min_samples_to_judge = 2;  // steps run at a depth before its cost is trusted
  // The first steps of a run are slow at any depth (cold caches, the prefill's writeback still
  // going, a pool being faulted in): they feed the model but no depth's cost, and the depth
  // does not grow before the one running has been judged after them.
  uint32_t warmup_steps = 3;
  // A deeper depth must cut the critical path by this much to be worth its staging: within it,
  // the shallower one is as fast (5%: about the step-to-step noise of a shared machine).
  double min_depth_gain = 0.05;
  // A depth's cost older than this is measured again: conditions drift (other work on the
  // machine, the page cache), and a cost measured long ago would be compared with a fresh one.
  uint32_t rejudge_after_steps = 12;
};

struct PipelinePlan {
  uint32_t depth = 1;
  uint32_t request_chunks = 1;  // adjacent chunks per read request
  uint32_t queue_depth = 1;     // read requests in flight at most
};

// Why the last decision came out as it did (for stats and logs).
struct ControllerDecision {
  PipelinePlan plan;
  uint32_t wanted_depth = 0;  // before the memory cap and hysteresis
  uint32_t memory_cap_depth = 0;
  double io_us_ewma = 0;
  double compute_us_ewma = 0;
  double stall_us_ewma = 0;
  bool held_by_hysteresis = false;
  // A deeper depth was wanted, but its staging would come out of the page cache's KV and cost
  // more than the stall it could remove (SetGrowthCost).
  bool held_for_page_cache = false;
  std::string ToString() const;
};

class AdaptiveController {
 public:
  explicit AdaptiveController(const AdaptiveControllerOptions& opts);

  // One finished step's per-layer averages (microseconds).
  void Observe(double io_us_per_layer, double compute_us_per_layer, double stall_us_per_layer);
  // Staging bytes the memory monitor can spare now (its headroom); UINT64_MAX = no pressure.
  // Decides again only when the headroom changed (a decision is a growth vote), so a caller may
  // report it after every reading.
  void SetHeadroom(uint64_t headroom_bytes);
  // What a larger pool would cost where memory is spoken for: FREE_BYTES the pool can grow into
  // with memory nothing else wants (UINT64_MAX, the default: any), and US_PER_LAYER_TAKEN, what
  // each layer of staging taken beyond that from the page cache's KV adds to a layer's critical
  // path (those KV bytes are read from the device from then on). A growth that takes from the
  // page cache is made only while the smoothed stall per layer exceeds what it adds. Without
  // this, growing to measure a deeper depth shrinks the PAGE set, and growing it back costs a
  // buffered miss per promoted chunk: at a budget where memory binds, trying a deeper depth
  // costs steps after it as well.
  void SetGrowthCost(uint64_t free_bytes, double us_per_layer_taken);

  const PipelinePlan& plan() const { return decision_.plan; }
  const ControllerDecision& last_decision() const { return decision_; }
  uint32_t decisions() const { return decisions_; }

 private:
  void Decide();
  uint32_t MemoryCapDepth() const;
  // Staging bytes a pool for DEPTH holds: (depth + 1) layers, at most the staging budget.
  double PoolBytes(uint32_t depth) const;
  // Growing the pool from depth FROM to depth TO takes only memory reported free
  // (SetGrowthCost; true while none was reported).
  bool GrowthFitsFreeMemory(uint32_t from, uint32_t to) const;
  // Measured per-layer critical path at DEPTH (us), or nothing while it is not judged.
  std::optional<double> JudgedCost(uint32_t depth) const;
  // DEEPER and a depth at or below SHALLOWER are judged, and DEEPER is not min_depth_gain
  // cheaper.
  bool MeasuredNoFaster(uint32_t deeper, uint32_t shallower) const;
  // The shallowest judged depth in [1, HI] within min_depth_gain of the cheapest there, once HI
  // itself is judged; HI otherwise (it must be measured first). The depth just below that choice
  // instead when it is at or above FLOOR and its cost has gone stale (measure it again). With
  // PREFER_DEEP (HI's staging is free memory), HI while it is within min_depth_gain of the
  // cheapest.
  uint32_t MeasuredChoice(uint32_t floor, uint32_t hi, bool prefer_deep) const;

  AdaptiveControllerOptions opts_;
  bool have_sample_ = false;
  double io_us_ = 0;
  double compute_us_ = 0;
  double stall_us_ = 0;
  uint64_t headroom_bytes_ = UINT64_MAX;
  uint64_t growth_free_bytes_ = UINT64_MAX;
  double growth_cost_us_per_layer_ = 0;
  uint32_t grow_votes_ = 0;
  uint32_t decisions_ = 0;
  // Per depth run so far: the per-layer compute + stall (us) of its last kCostWindow steps.
  static constexpr uint32_t kCostWindow = 3;
  struct DepthCosts {
    std::array<double, kCostWindow> recent_us{};
    uint32_t samples = 0;      // steps that fed it since it was last judged afresh
    uint64_t last_step = 0;    // observations_ when the newest sample came
  };
  std::vector<DepthCosts> costs_;
  uint64_t observations_ = 0;
  ControllerDecision decision_;
};

// What a pipeline reports to AdaptiveController::SetHeadroom after a memory reading: UINT64_MAX
// (no limit beyond the staging budget) while memory is not under pressure; under pressure, room
// for one layer fewer than DEPTH reads ahead, so every reading that still reports pressure takes
// the depth down a layer at once (to 0: chunk by chunk into a one-layer pool), and once it clears
// the depth grows back through the controller's hysteresis.
uint64_t StagingHeadroom(bool under_pressure, uint32_t depth, uint64_t layer_bytes);

}  // namespace dualblade
