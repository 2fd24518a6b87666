#include "pipeline/pipeline_stats.h"

#include <algorithm>
#include <cstdio>

namespace dualblade {

double StepStats::overlap_efficiency() const {
  uint64_t bound = std::max(io_busy_us, compute_busy_us);
  return bound == 0 ? 1.0 : static_cast<double>(step_us) / static_cast<double>(bound);
}

std::string StepStats::ToString() const {
  char buf[256];
  std::snprintf(buf, sizeof(buf),
                "step_us=%llu io_busy_us=%llu compute_busy_us=%llu stall_us=%llu "
                "overlap_efficiency=%.3f depth=%u request_chunks=%u queue_depth=%u reads=%llu "
                "compute_tasks=%llu chunks=%llu peak_staging_bytes=%llu",
                static_cast<unsigned long long>(step_us),
                static_cast<unsigned long long>(io_busy_us),
                static_cast<unsigned long long>(compute_busy_us),
                static_cast<unsigned long long>(stall_us), overlap_efficiency(), depth,
                request_chunks, queue_depth, static_cast<unsigned long long>(reads),
                static_cast<unsigned long long>(compute_tasks),
                static_cast<unsigned long long>(chunks_delivered),
                static_cast<unsigned long long>(peak_staging_bytes));
  return buf;
}

}  // namespace dualblade
