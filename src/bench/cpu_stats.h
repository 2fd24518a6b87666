// CPU use over an interval: the process's own CPU time (CLOCK_PROCESS_CPUTIME_ID: every thread,
// io_uring's workers included) and what the machine's CPUs did, from the aggregate "cpu" line of
// /proc/stat (Documentation/filesystems/proc.rst): user, nice, system, idle, iowait, irq,
// softirq, steal, in USER_HZ ticks. A benchmark samples both before and after its timed phase,
// so a run reports whether its CPUs were the bottleneck, and how much of them the hypervisor
// took (steal), beside the times it measured.
//
// Busy time is everything but idle, iowait and steal: the process, the interrupts and softirqs
// of its I/O completions, the kernel's reclaim threads. A run is CPU bound when busy time nears
// the time the CPUs were there for it (total - steal). The machine's counters tick at USER_HZ
// (100 a second): intervals of a few ticks give coarse fractions, none at all give 0.
//
// Thread-safety: stateless functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace dualblade {

// The machine's CPU counters, summed over every CPU, in USER_HZ ticks.
struct ProcStatCpu {
  uint64_t user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  uint32_t cpus = 0;  // "cpuN" lines: the CPUs online

  uint64_t total() const { return user + nice + system + idle + iowait + irq + softirq + steal; }
  uint64_t busy() const { return user + nice + system + irq + softirq; }
};

// Parses /proc/stat's text; PATH names it in errors. Corruption when the aggregate "cpu" line is
// missing or has fewer than 8 numbers (guest time, when present, is already part of user).
Result<ProcStatCpu> ParseProcStatCpu(std::string_view text, const std::string& path);
Result<ProcStatCpu> ReadProcStatCpu(const std::string& path = "/proc/stat");

struct CpuSample {
  uint64_t process_cpu_ns = 0;
  uint64_t wall_ns = 0;                // NowNanos() (steady clock)
  std::optional<ProcStatCpu> machine;  // empty where /proc/stat cannot be read
};

// Now. Never fails: without /proc/stat only the process's time is sampled.
CpuSample SampleCpu();

struct CpuUsage {
  double wall_ms = 0;
  double process_cpu_ms = 0;
  // Machine-wide, present when both samples have /proc/stat:
  bool has_machine = false;
  uint32_t cpus = 0;
  double busy_fraction = 0;   // busy / (total - steal): the CPUs this VM got, how much was used
  double steal_fraction = 0;  // steal / total
};

// AFTER - BEFORE. Counters that went backwards count as 0.
CpuUsage DiffCpu(const CpuSample& before, const CpuSample& after);

}  // namespace dualblade
