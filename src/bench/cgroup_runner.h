// Runs a function or a command in a fresh child process inside a new memory cgroup limited to a
// budget, so a benchmark point measures what the kernel really does under that budget (page
// cache reclaim, OOM kills) rather than what the program believes it uses.
//
// v2: the cgroup is created under the process's own cgroup (or a given delegated one), with
// "+memory" enabled in the parent's cgroup.subtree_control where needed, memory.max set,
// memory.swap.max = 0 and memory.oom.group = 1 where present.
// v1: the cgroup is created under the process's own memory cgroup (or a given one), with
// memory.limit_in_bytes set (and memory.memsw.limit_in_bytes equal to it where swap accounting
// exists, so the run cannot swap its way past the budget).
//
// The child is moved into the cgroup before it runs any of the caller's code (it waits on a
// pipe until the parent has written its pid to cgroup.procs). Afterwards every process left in
// the cgroup is killed and the directory removed.
//
// Thread-safety: the functions may run concurrently (each run has its own cgroup). Running a
// function forks the calling process: REQUIRES no other thread holds a lock the child needs
// (malloc, stdio); callers with worker threads should run a command instead.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "residency/cgroup.h"

namespace dualblade {

struct CgroupRunOptions {
  uint64_t memory_limit_bytes = 0;  // required
  // Files or block devices whose page-cache pages are written back and dropped
  // (fdatasync + POSIX_FADV_DONTNEED) before the child starts, so every run starts cold.
  std::vector<std::string> drop_cache_paths;
  // Directory under which the run's cgroup is created. "" = $DUALBLADE_CGROUP_PARENT when set,
  // else the caller's own memory cgroup (on v2, its parent when the own cgroup cannot delegate
  // the memory controller because it holds processes).
  std::string parent_dir;
  // How often memory.current is sampled for the peak when the kernel has no peak file (v2
  // before 5.19); also the granularity of the timeout.
  uint32_t poll_interval_ms = 2;
  // Sample memory.current even where the kernel keeps a peak (to check one against the other).
  bool always_sample_peak = false;
  // Kill the run after this long; 0 = wait forever.
  uint64_t timeout_ms = 0;
};

struct CgroupRunResult {
  bool exited = false;  // exited normally: exit_code is valid
  int exit_code = -1;
  int term_signal = 0;  // the signal that ended the child, 0 when it exited
  bool oom_killed = false;
  uint64_t oom_kill_events = 0;  // the cgroup's OOM kill counter at the end
  bool timed_out = false;
  uint64_t peak_bytes = 0;          // the cgroup's peak memory (page cache included)
  bool peak_from_kernel = false;    // memory.peak / max_usage_in_bytes, not sampled
  uint64_t sampled_peak_bytes = 0;  // largest usage seen while polling; 0 when not sampled
  uint64_t limit_bytes = 0;         // the limit as the kernel reads it back
  CgroupVersion version = CgroupVersion::kV2;
  std::string cgroup_dir;    // where the run's cgroup was (removed by now)
  double wall_ms = 0;        // from the child's release to its reaping
  std::string child_report;  // what the function wrote to its report (WithReport only)

  std::string ToString() const;  // one line for logs and test failures
};

// Why runs cannot be confined here, or nullopt when they can. Probes by creating and removing
// a cgroup under PARENT_DIR ("" = the caller's own memory cgroup).
std::optional<std::string> CgroupRunnerUnavailableReason(const std::string& parent_dir = "");

// Runs FN in a forked child confined to a new memory cgroup; the child exits with FN's return
// value (a killed child has none). Returns an error, with the path concerned, when the cgroup
// cannot be created or configured; the child's own failure (non-zero exit, OOM kill) is a
// successful result that says so. The cgroup is removed on every path.
Result<CgroupRunResult> RunFunctionInMemoryCgroup(const CgroupRunOptions& opts,
                                                  const std::function<int()>& fn);

// Like RunFunctionInMemoryCgroup, for a function that measures something: what FN leaves in
// *REPORT (JSON, say) reaches the parent over a pipe and lands in CgroupRunResult::child_report.
// A child killed before FN returns (an OOM kill) delivers an empty report.
Result<CgroupRunResult> RunFunctionInMemoryCgroupWithReport(
    const CgroupRunOptions& opts, const std::function<int(std::string* report)>& fn);

// Same, for a command (ARGV[0] looked up in PATH). NotFound/IOError naming the program when it
// cannot be executed.
Result<CgroupRunResult> RunCommandInMemoryCgroup(const CgroupRunOptions& opts,
                                                 const std::vector<std::string>& argv);

// Writes back and drops PATH's pages from the page cache (fdatasync + POSIX_FADV_DONTNEED).
Status DropPageCache(const std::string& path);

}  // namespace dualblade
