// The KV-trace replay: the KV traffic of inference for a model shape, without a model. A
// prefill appends the whole context to every layer (f16 rows with deterministic content), then
// each decode step reads every layer's full context and appends one row per layer, with a
// configurable per-layer compute time (busy CPU work, not sleep). The placement policy decides
// each chunk's path from the memory monitor's readings, re-evaluated before every step.
//
// RunTraceReplay runs one (policy, budget) point in the calling process; the benchmark
// (trace_bench.h) runs it in a fresh child inside a memory cgroup limited to the budget. It
// never commits: the sequence it creates lives only in memory, so the store's committed state
// is the same afterwards (only free space was written).
//
// Thread-safety: RunTraceReplay uses only its own objects; one call per process at a time is
// what the measurements assume.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "residency/placement.h"

namespace dualblade {

struct TraceShape {
  uint32_t n_layer = 16;
  uint32_t n_head_kv = 8;
  uint32_t n_embd_head = 64;  // head_dim
  uint64_t n_ctx = 16384;     // tokens the prefill appends
  uint32_t n_gen = 8;         // decode steps
  uint32_t chunk_tokens = 256;

  uint64_t row_bytes() const { return uint64_t{n_head_kv} * n_embd_head * 2; }  // f16
  // K and V of every layer after the prefill.
  uint64_t kv_bytes() const { return 2 * row_bytes() * n_ctx * n_layer; }
  // InvalidArgument naming the bad field.
  Status Validate() const;
};

struct TraceReplayOptions {
  TraceShape shape;
  std::string store_path;
  PlacementOptions placement;  // placement.policy: the policy replayed
  // The monitor's explicit budget (the cgroup enforces it too where there is one). 0 = none.
  uint64_t budget_bytes = 0;
  uint64_t compute_us_per_layer = 0;
  // Layers read ahead of the one computing: 0 = none; kAutoPrefetch picks one.
  static constexpr int32_t kAutoPrefetch = -1;
  int32_t prefetch_depth = 0;
  bool verify_checksums = false;
};

struct TraceReplayResult {
  std::string policy;
  uint64_t budget_bytes = 0;
  double prefill_ms = 0;  // appends (and the writes they start) of every layer, then Flush
  std::vector<double> decode_step_ms;
  double decode_step_ms_p50 = 0;
  double decode_step_ms_p99 = 0;
  uint64_t read_bytes_page = 0;  // decode reads, by the path that served them
  uint64_t read_bytes_direct = 0;
  uint64_t read_bytes_memory = 0;
  uint64_t write_bytes_page = 0;
  uint64_t write_bytes_direct = 0;
  // The device under the store during the decode steps.
  std::string device;
  uint64_t device_read_bytes = 0;
  uint64_t device_busy_ms = 0;
  double decode_total_ms = 0;
  // Measured residency of PAGE chunks just before each layer's read: resident / probed.
  uint64_t probed_page_bytes = 0;
  uint64_t resident_page_bytes = 0;
  double pagecache_hit_ratio = 0;
  // The placement: the largest PAGE set planned, and whether every plan fit its headroom.
  uint64_t page_set_bytes_max = 0;
  uint64_t page_set_bytes_last = 0;  // planned for the last step
  // The path balance's rates at the end (dual; 0 = not measured): the PAGE path's copy rate
  // and the DIRECT path's read rate, moving averages over the steps.
  double page_rate_bytes_per_s = 0;
  double direct_rate_bytes_per_s = 0;
  uint64_t kv_headroom_bytes_min = 0;
  bool page_within_headroom = true;
  uint64_t path_transitions = 0;
  uint64_t page_budget_changes = 0;
  // The pipeline, medians over the decode steps: the depth used (fixed, or the controller's), the
  // time compute waited for KV, step time / max(I/O busy, compute busy) (1.0 = full overlap,
  // 2.0 = none for equal parts), and the time with a read in flight and with compute running.
  uint32_t prefetch_depth = 0;
  double stall_ms = 0;
  double overlap_efficiency = 0;
  double io_busy_ms = 0;
  double compute_busy_ms = 0;
  // The compute thread's own time in the step's compute tasks (KvExecutorStats::compute_run_us):
  // compute_busy_ms less the hand-offs. For the same work it rises with the CPU time the
  // compute thread lost (on a VM, the host's steal).
  double compute_run_ms = 0;
  // Auto depth: times the staging pool followed the controller's depth to a new size.
  uint64_t staging_resizes = 0;
  double checksum_ms = 0;
  // CPUs over the decode steps (cpu_stats.h): the process's CPU time per step, and how busy the
  // machine's CPUs were of the time the hypervisor gave them (1.0 = no CPU was ever idle: the
  // run was CPU bound), and the share it kept (steal).
  double decode_cpu_ms_per_step = 0;
  uint32_t cpus = 0;
  double cpu_busy_fraction = 0;
  double cpu_steal_fraction = 0;
  std::string engine;
  // The store bytes the sequence's segments span (K and V of every layer, capacity included):
  // where the decode reads land, for a yardstick measured on the same blocks.
  uint64_t kv_region_offset_bytes = 0;
  uint64_t kv_region_len_bytes = 0;
};

// Runs the replay described above. Errors (the store, I/O, a row that reads back wrong) are
// returned with context; the store is left as it was committed.
Result<TraceReplayResult> RunTraceReplay(const TraceReplayOptions& opts);

// One JSON object per result, so a child process can hand its result to its parent.
std::string TraceReplayResultToJson(const TraceReplayResult& r);
Result<TraceReplayResult> TraceReplayResultFromJson(std::string_view text);

// The value at quantile Q (0..1) of VALUES, nearest rank; 0 for none.
double Percentile(std::vector<double> values, double q);

}  // namespace dualblade
