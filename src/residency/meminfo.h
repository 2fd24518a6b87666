// /proc/meminfo: the machine-wide memory figures (MemTotal, MemAvailable, Cached, Dirty, ...).
// Thread-safety: stateless functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace dualblade {

struct Meminfo {
  uint64_t mem_total_bytes = 0;
  uint64_t mem_free_bytes = 0;
  // The kernel's estimate of memory available to a new workload without swapping (3.14+): free
  // memory plus the reclaimable parts of the page cache and slab. Estimated as MemFree + Cached +
  // Buffers on kernels without it (has_mem_available false).
  uint64_t mem_available_bytes = 0;
  bool has_mem_available = false;
  uint64_t buffers_bytes = 0;
  uint64_t cached_bytes = 0;  // page cache, includes Shmem
  uint64_t shmem_bytes = 0;
  uint64_t active_file_bytes = 0;
  uint64_t inactive_file_bytes = 0;
  uint64_t anon_pages_bytes = 0;
  uint64_t dirty_bytes = 0;
  uint64_t writeback_bytes = 0;
  uint64_t swap_total_bytes = 0;
  uint64_t swap_free_bytes = 0;
};

// Parses meminfo text ("MemTotal:  24684120 kB" lines; values in kB unless unit-less). PATH
// names the file in errors. Corruption for a malformed line or a missing MemTotal/MemFree.
Result<Meminfo> ParseMeminfo(std::string_view text, const std::string& path);

// Reads and parses PATH ("/proc/meminfo" on a live system).
Result<Meminfo> ReadMeminfo(const std::string& path = "/proc/meminfo");

}  // namespace dualblade
