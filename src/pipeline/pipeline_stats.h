// StepStats: what one pipelined decode step did, for the engine's stats JSON and the controller.
// Plain data; thread-safety: none.
#pragma once

#include <cstdint>
#include <string>

namespace dualblade {

struct StepStats {
  uint64_t step_us = 0;          // first read issued .. last task completed
  uint64_t io_busy_us = 0;       // time with at least one read in flight
  uint64_t compute_busy_us = 0;  // time the compute resource was running a task
  uint64_t stall_us = 0;         // step_us - compute_busy_us: compute waiting for KV
  uint32_t depth = 0;            // the plan this step ran with
  uint32_t request_chunks = 0;
  uint32_t queue_depth = 0;
  uint64_t reads = 0;            // read requests issued
  uint64_t compute_tasks = 0;    // tasks handed to compute (chunk batches and layer tails)
  uint64_t chunks_delivered = 0;
  uint64_t peak_staging_bytes = 0;  // leases held at most during the step, in bytes

  // step time / max(I/O time, compute time): 1.0 is perfect overlap, 2.0 none (for equal parts).
  double overlap_efficiency() const;
  std::string ToString() const;
};

}  // namespace dualblade
