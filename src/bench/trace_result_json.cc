// JSON form of a TraceReplayResult: how a replay child hands its result to the benchmark.
#include <nlohmann/json.hpp>

#include "bench/trace_replay.h"

namespace dualblade {

#define DB_TRACE_FIELDS(X)                                                                      \
  X(policy) X(budget_bytes) X(prefill_ms) X(decode_step_ms) X(decode_step_ms_p50)                \
  X(decode_step_ms_p99) X(read_bytes_page) X(read_bytes_direct) X(read_bytes_memory)             \
  X(write_bytes_page) X(write_bytes_direct) X(device) X(device_read_bytes) X(device_busy_ms)     \
  X(decode_total_ms) X(probed_page_bytes) X(resident_page_bytes) X(pagecache_hit_ratio)          \
  X(page_set_bytes_max) X(kv_headroom_bytes_min) X(page_within_headroom) X(path_transitions)    \
  X(page_budget_changes) X(prefetch_depth) X(stall_ms) X(overlap_efficiency) X(checksum_ms)     \
  X(engine) X(io_busy_ms) X(compute_busy_ms) X(staging_resizes) X(kv_region_offset_bytes)      \
  X(kv_region_len_bytes) X(page_set_bytes_last) X(page_rate_bytes_per_s)                       \
  X(direct_rate_bytes_per_s) X(decode_cpu_ms_per_step) X(cpus) X(cpu_busy_fraction)            \
  X(cpu_steal_fraction) X(compute_run_ms)

std::string TraceReplayResultToJson(const TraceReplayResult& r) {
  nlohmann::json j;
#define DB_TO_JSON(f) j[#f] = r.f;
  DB_TRACE_FIELDS(DB_TO_JSON)
#undef DB_TO_JSON
  return j.dump();
}

Result<TraceReplayResult> TraceReplayResultFromJson(std::string_view text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return Status::Corruption("a trace replay result is not a JSON object");
  TraceReplayResult r;
  try {
#define DB_FROM_JSON(f) j.at(#f).get_to(r.f);
    DB_TRACE_FIELDS(DB_FROM_JSON)
#undef DB_FROM_JSON
  } catch (const nlohmann::json::exception& e) {
    return Status::Corruption(std::string("a trace replay result lacks a field: ") + e.what());
  }
  return r;
}

#undef DB_TRACE_FIELDS

}  // namespace dualblade
