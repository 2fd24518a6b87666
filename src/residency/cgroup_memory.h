// Memory accounting of one cgroup, v1 or v2: the limit, the usage, the breakdown of memory.stat,
// the OOM counters and the peak. Parsers take the file text (tests feed fixture text); the reader
// takes the cgroup directory and keeps its files open so that sampling costs a few preads.
//
// File names by version:
//            v2                  v1
//   limit    memory.max          memory.limit_in_bytes (+ hierarchical_memory_limit in memory.stat)
//   usage    memory.current      memory.usage_in_bytes
//   peak     memory.peak (5.19+) memory.max_usage_in_bytes
//   stat     memory.stat         memory.stat (total_* keys: hierarchical)
//   OOM      memory.events       memory.oom_control (oom_kill since 4.13)
//
// Thread-safety: parsers are stateless; a CgroupMemoryReader is used by one thread at a time.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "residency/cgroup.h"
#include "residency/proc_file.h"

namespace dualblade {

// A limit that does not limit.
inline constexpr uint64_t kUnlimitedBytes = UINT64_MAX;

// v1 reports "no limit" as PAGE_COUNTER_MAX rounded down to a page (9223372036854771712 on
// x86-64); any value at or above 2^62 is treated as unlimited.
inline constexpr uint64_t kV1UnlimitedThresholdBytes = uint64_t{1} << 62;

// The memory.stat figures the residency logic uses, in bytes. Unknown keys are ignored; keys a
// kernel lacks stay 0.
struct CgroupMemoryStat {
  uint64_t anon_bytes = 0;  // v2 anon; v1 total_rss (rss)
  uint64_t file_bytes = 0;  // v2 file; v1 total_cache (cache); both include shmem
  uint64_t shmem_bytes = 0;
  uint64_t file_mapped_bytes = 0;     // v2 file_mapped; v1 total_mapped_file
  uint64_t file_dirty_bytes = 0;      // v2 file_dirty; v1 total_dirty
  uint64_t file_writeback_bytes = 0;  // v2 file_writeback; v1 total_writeback
  uint64_t active_file_bytes = 0;
  uint64_t inactive_file_bytes = 0;
  uint64_t active_anon_bytes = 0;
  uint64_t inactive_anon_bytes = 0;
  uint64_t unevictable_bytes = 0;
  // v2 only: "kernel" (6.1+), else kernel_stack + pagetables + sock + slab. v1 leaves it 0.
  uint64_t kernel_bytes = 0;
  // v1 only: the limit in force counting every ancestor. kUnlimitedBytes on v2.
  uint64_t hierarchical_limit_bytes = kUnlimitedBytes;
  // Usage charged beyond anon and file (kernel objects, page tables, sockets): the usage read
  // together with this memory.stat minus anon and file. Filled by CgroupMemoryReader, not by
  // the parser, so a later counters-only sample cannot skew it.
  uint64_t non_lru_bytes = 0;
};

struct CgroupOomCounters {
  uint64_t oom_events = 0;       // v2 "oom"; v1 has no such counter and copies oom_kill
  uint64_t oom_kill_events = 0;  // processes killed by the cgroup's OOM killer
  bool has_oom_kill = false;     // false on v1 kernels before 4.13
  bool under_oom = false;        // v1 only: an OOM is in progress (oom_kill_disable set)
};

// memory.max ("max" or bytes) or memory.limit_in_bytes (bytes; huge = unlimited).
Result<uint64_t> ParseCgroupLimit(CgroupVersion version, std::string_view text,
                                  const std::string& path);
// A single-number file: memory.current, memory.usage_in_bytes, memory.peak, ...
Result<uint64_t> ParseCgroupCounter(std::string_view text, const std::string& path);
// memory.stat. Corruption for a malformed line or when the anon/file keys are missing.
Result<CgroupMemoryStat> ParseCgroupMemoryStat(CgroupVersion version, std::string_view text,
                                               const std::string& path);
// v2 memory.events or v1 memory.oom_control.
Result<CgroupOomCounters> ParseCgroupOomCounters(CgroupVersion version, std::string_view text,
                                                 const std::string& path);

struct CgroupMemoryState {
  // Effective limit: the smallest of this cgroup's and its ancestors' limits.
  uint64_t limit_bytes = kUnlimitedBytes;
  uint64_t usage_bytes = 0;
  std::optional<uint64_t> peak_bytes;  // absent when the kernel has no peak file
  CgroupMemoryStat stat;
  CgroupOomCounters oom;  // all zero when the OOM file is absent or events were not sampled
};

// Keeps the memory files of one cgroup open for repeated, cheap sampling.
class CgroupMemoryReader {
 public:
  CgroupMemoryReader(CgroupMemoryReader&&) noexcept = default;
  CgroupMemoryReader& operator=(CgroupMemoryReader&&) noexcept = default;
  CgroupMemoryReader(const CgroupMemoryReader&) = delete;
  CgroupMemoryReader& operator=(const CgroupMemoryReader&) = delete;

  // Opens the limit, usage and stat files (required: NotFound naming the file otherwise, as on a
  // v2 root cgroup, which has no memory.current) and the peak and OOM files where present. On v2
  // the memory.max of every ancestor below the mount point is opened too.
  static Result<CgroupMemoryReader> Open(const MemoryCgroup& cgroup);

  // Reads fresh values into *out. WITH_EXTRAS also reads the peak and OOM files (two more
  // preads); without it those fields of *out are left untouched. On error *out is unspecified.
  Status Sample(CgroupMemoryState* out, bool with_extras = true);

  // Reads only the limit and usage counters (no memory.stat, whose generation dominates the
  // cost of a sample); every other field of *out is left untouched.
  Status SampleCounters(CgroupMemoryState* out);

  const MemoryCgroup& cgroup() const { return cgroup_; }

 private:
  CgroupMemoryReader() = default;

  MemoryCgroup cgroup_;
  ProcFile limit_;
  std::vector<ProcFile> ancestor_limits_;  // v2 only
  ProcFile usage_;
  ProcFile stat_;
  ProcFile peak_;  // may be closed
  ProcFile oom_;   // may be closed
};

// One-shot read of a cgroup's memory state (opens, samples, closes).
Result<CgroupMemoryState> ReadCgroupMemory(const MemoryCgroup& cgroup);

}  // namespace dualblade
