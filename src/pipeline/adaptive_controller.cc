#include "pipeline/adaptive_controller.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "common/check.h"

namespace dualblade {

std::string ControllerDecision::ToString() const {
  char buf[256];
  std::snprintf(buf, sizeof(buf),
                "depth=%u (wanted %u, memory cap %u%s) request_chunks=%u queue_depth=%u "
                "io_us=%.1f compute_us=%.1f stall_us=%.1f",
                plan.depth, wanted_depth, memory_cap_depth,
                held_for_page_cache ? ", held: page cache" : held_by_hysteresis ? ", held" : "",
                plan.request_chunks, plan.queue_depth, io_us_ewma, compute_us_ewma,
                stall_us_ewma);
  return buf;
}

AdaptiveController::AdaptiveController(const AdaptiveControllerOptions& opts) : opts_(opts) {
  DB_CHECK(opts_.layer_bytes > 0);
  DB_CHECK(opts_.chunk_bytes > 0 && opts_.chunk_bytes <= opts_.layer_bytes);
  DB_CHECK(opts_.alpha > 0 && opts_.alpha <= 1);
  // Before any measurement: one layer ahead, the cheapest depth that overlaps at all.
  Decide();
}

void AdaptiveController::Observe(double io_us_per_layer, double compute_us_per_layer,
                                 double stall_us_per_layer) {
  ++observations_;
  // The step just observed ran at the current plan's depth. Warm-up steps feed the model, not
  // the depth's cost.
  const uint32_t ran = decision_.plan.depth;
  if (observations_ > opts_.warmup_steps) {
    if (costs_.size() <= ran) costs_.resize(ran + 1);
    DepthCosts& c = costs_[ran];
    // A cost gone stale is measured afresh: the old samples describe another moment.
    if (c.samples > 0 && observations_ - c.last_step > opts_.rejudge_after_steps) c.samples = 0;
    c.recent_us[c.samples % kCostWindow] = compute_us_per_layer + stall_us_per_layer;
    ++c.samples;
    c.last_step = observations_;
  }
  if (!have_sample_) {
    io_us_ = io_us_per_layer;
    compute_us_ = compute_us_per_layer;
    stall_us_ = stall_us_per_layer;
    have_sample_ = true;
  } else {
    io_us_ += opts_.alpha * (io_us_per_layer - io_us_);
    compute_us_ += opts_.alpha * (compute_us_per_layer - compute_us_);
    stall_us_ += opts_.alpha * (stall_us_per_layer - stall_us_);
  }
  Decide();
}

void AdaptiveController::SetHeadroom(uint64_t headroom_bytes) {
  // An unchanged headroom is no news, and each decision counts as a growth vote.
  if (headroom_bytes == headroom_bytes_) return;
  headroom_bytes_ = headroom_bytes;
  Decide();
}

void AdaptiveController::SetGrowthCost(uint64_t free_bytes, double us_per_layer_taken) {
  growth_free_bytes_ = free_bytes;
  growth_cost_us_per_layer_ = std::max(0.0, us_per_layer_taken);
}

double AdaptiveController::PoolBytes(uint32_t depth) const {
  return std::min<double>((depth + 1.0) * static_cast<double>(opts_.layer_bytes),
                          static_cast<double>(opts_.staging_budget_bytes));
}

bool AdaptiveController::GrowthFitsFreeMemory(uint32_t from, uint32_t to) const {
  return growth_free_bytes_ == UINT64_MAX ||
         PoolBytes(to) - PoolBytes(from) <= static_cast<double>(growth_free_bytes_);
}

std::optional<double> AdaptiveController::JudgedCost(uint32_t depth) const {
  if (depth >= costs_.size()) return std::nullopt;
  const DepthCosts& c = costs_[depth];
  if (c.samples < opts_.min_samples_to_judge ||
      observations_ - c.last_step > opts_.rejudge_after_steps)
    return std::nullopt;
  const uint32_t n = std::min(c.samples, kCostWindow);
  return *std::min_element(c.recent_us.begin(), c.recent_us.begin() + n);
}

bool AdaptiveController::MeasuredNoFaster(uint32_t deeper, uint32_t shallower) const {
  std::optional<double> deep = JudgedCost(deeper);
  if (deeper <= shallower || !deep) return false;
  // Against the deepest judged depth at or below SHALLOWER (often the depth the run started at:
  // the hysteresis may have jumped over SHALLOWER itself).
  for (uint32_t d = shallower; d >= 1; --d) {
    if (std::optional<double> shallow = JudgedCost(d))
      return *deep >= *shallow * (1 - opts_.min_depth_gain);
  }
  return false;
}

uint32_t AdaptiveController::MeasuredChoice(uint32_t floor, uint32_t hi, bool prefer_deep) const {
  const std::optional<double> hi_cost = JudgedCost(hi);
  if (!hi_cost) return hi;  // the model's depth is measured first
  // Every judged depth up to the model's is a candidate, those below the floor too: a step's
  // time is the ground truth, and a shallow depth measured as fast means the I/O busy time that
  // set the floor was inflated (it grows with the reads in flight), not that the reads cannot
  // keep up. The floor only keeps the controller from trying such depths unmeasured.
  double best = *hi_cost;
  for (uint32_t d = 1; d < hi; ++d) {
    if (std::optional<double> c = JudgedCost(d)) best = std::min(best, *c);
  }
  // Staging in memory nothing else wants: a shallower depth saves nothing, so the tie goes the
  // other way, to the model's depth (its slack absorbs the reads' jitter), unless a shallower one
  // was measured min_depth_gain faster. Nor is a stale shallower depth measured again for it.
  if (prefer_deep && *hi_cost * (1 - opts_.min_depth_gain) <= best) return hi;
  uint32_t choice = hi;
  for (uint32_t d = 1; d < hi; ++d) {
    std::optional<double> c = JudgedCost(d);
    if (c && *c * (1 - opts_.min_depth_gain) <= best) {
      choice = d;
      break;
    }
  }
  // The next shallower depth, at or above the floor, not measured lately: measure it again. A
  // deeper depth taken against a cost that has since gone stale would otherwise be kept for good,
  // while the stale one is the depth that uses less staging.
  if (!prefer_deep && choice > floor && choice > 1 && !JudgedCost(choice - 1)) return choice - 1;
  return choice;
}

uint32_t AdaptiveController::MemoryCapDepth() const {
  uint64_t available = std::min(opts_.staging_budget_bytes, headroom_bytes_);
  uint64_t cap = available / opts_.layer_bytes;
  // A pool shorter than a layer, with no pressure reported: depth 1 costs no memory beyond the
  // pool (already charged) and lets the next layer's reads take the buffers the computing layer
  // frees, so the device keeps reading through the layer's tail instead of idling.
  if (cap == 0 && headroom_bytes_ >= opts_.staging_budget_bytes) cap = 1;
  return static_cast<uint32_t>(std::min<uint64_t>(cap, opts_.max_depth));
}

void AdaptiveController::Decide() {
  ++decisions_;
  ControllerDecision d;
  d.io_us_ewma = io_us_;
  d.compute_us_ewma = compute_us_;
  d.stall_us_ewma = stall_us_;

  uint32_t want = 1;
  if (have_sample_) {
    if (compute_us_ <= 0) {
      want = opts_.max_depth;  // no compute to hide I/O behind: read as far ahead as allowed
    } else if (io_us_ < 0.01 * compute_us_) {
      want = 0;
    } else {
      double need = io_us_ / compute_us_ * (1 + opts_.jitter_margin);
      want = static_cast<uint32_t>(std::min<double>(std::ceil(need), opts_.max_depth));
      want = std::max<uint32_t>(want, 1);
      // Stalls that persist at the model's depth (or deeper; at a shallower one they are what
      // the model's depth is there to remove) say the model underestimates the I/O: one layer
      // more, unless that depth has been measured and was no faster than the model's.
      // Nor when the model's depth was measured no faster than a shallower one: where one more
      // layer did not help, the next will not either (the stall is not the reads' latency).
      if (decision_.plan.depth >= want && stall_us_ > opts_.stall_tolerance * compute_us_ &&
          !MeasuredNoFaster(std::min(want + 1, opts_.max_depth), want) &&
          !(want > 1 && MeasuredNoFaster(want, want - 1)))
        want = want + 1;
      want = std::min(want, opts_.max_depth);
      // Well below io / compute the reads cannot keep up: no depth below that is tried unmeasured.
      // Up to the model's depth, measurement decides.
      const auto floor_depth = static_cast<uint32_t>(std::clamp<double>(
          std::ceil(io_us_ / compute_us_ / (1 + opts_.jitter_margin)), 1, want));
      // The model's depth's staging is memory reported free (SetGrowthCost): nothing to save
      // below it. Not without a report (UINT64_MAX): then the least staging is still preferred.
      const bool prefer_deep =
          growth_free_bytes_ != UINT64_MAX && growth_free_bytes_ > 0 &&
          GrowthFitsFreeMemory(std::min(decision_.plan.depth, want), want);
      want = MeasuredChoice(floor_depth, want, prefer_deep);
    }
  }
  want = std::min(want, opts_.max_depth);
  d.wanted_depth = want;
  uint32_t cap = MemoryCapDepth();
  d.memory_cap_depth = cap;
  uint32_t target = std::min(want, cap);

  uint32_t current = decisions_ == 1 ? target : decision_.plan.depth;
  uint32_t depth = target;
  if (target > current) {
    // Grow only when the larger depth has slack in memory, and it has been wanted for a while.
    // The slack is asked of the headroom only: the staging budget is a fixed pool, not a signal.
    double need_bytes =
        (target + opts_.grow_margin_layers) * static_cast<double>(opts_.layer_bytes);
    bool roomy = headroom_bytes_ == UINT64_MAX ||
                 static_cast<double>(headroom_bytes_) >= need_bytes;
    // Staging taken from the page cache's KV: worth it only against a larger stall.
    const bool costly =
        !GrowthFitsFreeMemory(current, target) &&
        stall_us_ <= (PoolBytes(target) - PoolBytes(current) -
                      static_cast<double>(growth_free_bytes_)) /
                         static_cast<double>(opts_.layer_bytes) * growth_cost_us_per_layer_;
    if (costly) roomy = false;
    // A deeper depth can at best remove the stall. While the stall is within min_depth_gain of
    // the critical path, no deeper depth could be judged faster than this one, so its growth,
    // which faults a larger pool in, is not paid to measure it. (A depth already judged faster
    // is taken back below: that measurement stands.)
    const bool stall_small = have_sample_ && !JudgedCost(target) &&
                             stall_us_ <= opts_.min_depth_gain * (compute_us_ + stall_us_);
    if (stall_small) roomy = false;
    grow_votes_ = roomy ? grow_votes_ + 1 : 0;
    // Back to a depth measured lately as the faster one (after a shallower one was measured
    // again): the measurement is the evidence the votes stand for, so no waiting, only the slack.
    if (roomy && JudgedCost(target)) grow_votes_ = std::max(grow_votes_, opts_.grow_after);
    // Not before the depth running has been judged after the warm-up: a deeper depth measured
    // later would otherwise be compared with the warm-up's slow steps.
    const bool judged_here =
        observations_ >= uint64_t{opts_.warmup_steps} + opts_.min_samples_to_judge;
    if (grow_votes_ < opts_.grow_after || !judged_here) {
      depth = current;
      d.held_by_hysteresis = true;
      d.held_for_page_cache = costly;
    } else {
      grow_votes_ = 0;
    }
  } else {
    grow_votes_ = 0;
  }
  d.plan.depth = depth;

  uint64_t request_bytes = std::min(opts_.max_request_bytes, opts_.layer_bytes);
  if (cap == 0) request_bytes = opts_.chunk_bytes;
  uint32_t request_chunks =
      static_cast<uint32_t>(std::max<uint64_t>(1, request_bytes / opts_.chunk_bytes));
  d.plan.request_chunks = request_chunks;
  uint64_t chunks_per_layer = (opts_.layer_bytes + opts_.chunk_bytes - 1) / opts_.chunk_bytes;
  uint64_t requests_per_layer = (chunks_per_layer + request_chunks - 1) / request_chunks;
  uint64_t qd = requests_per_layer * (uint64_t{depth} + 1);
  d.plan.queue_depth = static_cast<uint32_t>(std::clamp<uint64_t>(qd, 1, opts_.max_queue_depth));
  decision_ = d;
}

uint64_t StagingHeadroom(bool under_pressure, uint32_t depth, uint64_t layer_bytes) {
  if (!under_pressure) return UINT64_MAX;
  return depth > 1 ? (depth - 1) * layer_bytes : 0;
}

}  // namespace dualblade
