// Pressure stall information for memory (/proc/pressure/memory, or a v2 cgroup's
// memory.pressure): the share of wall time in which some (or all) runnable tasks stalled waiting
// for memory, averaged over 10 s, 60 s and 300 s, and the cumulative stall time.
// Thread-safety: stateless functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace dualblade {

struct PressureLine {
  double avg10 = 0;  // percent of wall time, 0..100
  double avg60 = 0;
  double avg300 = 0;
  uint64_t total_us = 0;  // cumulative stall time
};

struct MemoryPressure {
  PressureLine some;      // at least one task stalled
  PressureLine full;      // all non-idle tasks stalled at once
  bool has_full = false;  // the "full" line appeared (every kernel since 5.2 for memory)
};

// Parses "some avg10=0.00 avg60=0.00 avg300=0.00 total=0" and "full ..." lines. PATH names the
// file in errors. Corruption for a malformed line or a missing "some" line.
Result<MemoryPressure> ParseMemoryPressure(std::string_view text, const std::string& path);

// Reads and parses PATH ("/proc/pressure/memory"). NotFound when the kernel lacks PSI;
// NotSupported when PSI is compiled in but disabled (psi=0: reads fail with EOPNOTSUPP).
Result<MemoryPressure> ReadMemoryPressure(const std::string& path = "/proc/pressure/memory");

}  // namespace dualblade
