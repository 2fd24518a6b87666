// MemoryMonitor: turns raw memory figures (cgroup, /proc/meminfo, PSI, the process itself) and
// the caller's own accounting into one MemoryReading, whose kv_headroom_bytes answers the
// question the placement policy asks: how much KV can the page cache really keep?
//
//   limit       = min(cgroup limit, explicit budget, MemTotal)
//   pinned      = max(measured anon, declared anon reserves) + declared file-backed reserves
//                 + kernel memory charged to the cgroup
//   headroom    = limit - pinned - safety margin
//   kv_headroom = min(headroom, MemAvailable - declared-but-not-yet-allocated anon - margin),
//                 never negative
//
// Declared reserves are the memory that is not KV page cache and cannot be reclaimed: weights,
// activations, staging buffers, tails. Taking the larger of measured and declared anon counts a
// reservation before its allocation lands, and undeclared overhead once it exists, without
// counting anything twice. File-backed reserves (mmapped weights) are page cache too, so the
// measured figures cannot tell them from KV: only the declaration can.
//
// "Measured" means the cgroup's figures when a finite cgroup limit confines the process (a
// container, a benchmark run: what the kernel enforces), else the process's own (statm), since
// an unlimited cgroup is usually shared with others. Sampling is two-tier: everything at most
// every full_sample_interval_ns, only the limit and usage counters in between (see the bench in
// bench/memory_monitor_bench.cc for the cost of each).
//
// Thread-safety: Reserve/Release may be called from any thread; Sample() from one thread at a
// time (it owns the source).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/status.h"
#include "residency/memory_source.h"

namespace dualblade {

enum class ReserveKind {
  kAnon,        // heap or anonymous mappings: weights copied in, activations, staging, tails
  kFileBacked,  // file pages that must stay cached: mmapped weights
};

enum class LimitSource { kCgroup, kBudget, kMemTotal };
const char* LimitSourceName(LimitSource s);  // "cgroup", "budget", "memtotal"

struct MemoryMonitorOptions {
  uint64_t budget_bytes = 0;  // --mem-budget; 0 = none
  // Kept free for the kernel and for estimation error. kAutoMargin = limit / 32, at least 8 MiB.
  static constexpr uint64_t kAutoMargin = UINT64_MAX;
  uint64_t safety_margin_bytes = kAutoMargin;
  // Sample() reads everything (memory.stat, meminfo, PSI: tens of microseconds) at most this
  // often and only the limit and usage counters (a few microseconds) in between. The breakdown
  // moves slowly and declared reserves take effect at once either way. 0 = always everything.
  uint64_t full_sample_interval_ns = 100'000'000;
};

struct MemoryReading {
  uint64_t taken_ns = 0;
  uint64_t limit_bytes = 0;
  LimitSource limit_source = LimitSource::kMemTotal;
  uint64_t cgroup_limit_bytes = kUnlimitedBytes;  // kUnlimitedBytes when none or no cgroup
  // The cgroup's figures when it has a finite limit (confined_by_cgroup); otherwise the
  // process's own (statm) and the system page cache.
  bool confined_by_cgroup = false;
  uint64_t usage_bytes = 0;
  uint64_t anon_bytes = 0;
  uint64_t file_cache_bytes = 0;
  uint64_t kernel_bytes = 0;  // charged to the cgroup beyond anon and file; 0 when not confined
  uint64_t dirty_bytes = 0;
  uint64_t writeback_bytes = 0;
  uint64_t mem_total_bytes = 0;
  uint64_t available_bytes = 0;  // MemAvailable
  uint64_t reserved_anon_bytes = 0;
  uint64_t reserved_file_bytes = 0;
  uint64_t pinned_bytes = 0;  // what the headroom subtracts from the limit
  uint64_t safety_margin_bytes = 0;
  uint64_t kv_headroom_bytes = 0;
  bool has_cgroup = false;
  bool has_pressure = false;
  double psi_some_avg10 = 0;  // percent
  double psi_full_avg10 = 0;
  uint64_t psi_some_total_us = 0;
  uint64_t psi_full_total_us = 0;
  uint64_t oom_kill_events = 0;

  std::string ToString() const;  // one line for logs
};

// Declared reserves, summed by kind.
struct ReserveTotals {
  uint64_t anon_bytes = 0;
  uint64_t file_bytes = 0;
};

// The pure computation behind MemoryMonitor::Sample, exposed for tests.
MemoryReading ComputeMemoryReading(const MemorySample& sample, const ReserveTotals& reserves,
                                   const MemoryMonitorOptions& opts);

class MemoryMonitor {
 public:
  // Takes ownership of SOURCE.
  MemoryMonitor(std::unique_ptr<MemorySource> source, const MemoryMonitorOptions& opts);
  MemoryMonitor(const MemoryMonitor&) = delete;
  MemoryMonitor& operator=(const MemoryMonitor&) = delete;

  // A monitor over the live system (SystemMemorySource with default options).
  static Result<std::unique_ptr<MemoryMonitor>> OpenSystem(const MemoryMonitorOptions& opts);

  // Declares (or, for an existing NAME, replaces) BYTES that are not KV page cache.
  void Reserve(const std::string& name, uint64_t bytes, ReserveKind kind = ReserveKind::kAnon);
  // Removes a declaration; unknown names are ignored.
  void Release(const std::string& name);
  ReserveTotals reserve_totals() const;
  uint64_t reserved_bytes(const std::string& name) const;  // 0 when unknown

  // Reads the source and computes a fresh reading: a full sample when the last one is older
  // than full_sample_interval_ns (or there is none), else the counters only. On error, last()
  // keeps the previous reading.
  Result<MemoryReading> Sample();
  // Always a full sample.
  Result<MemoryReading> SampleFull();
  uint64_t full_samples() const { return full_samples_; }
  uint64_t fast_samples() const { return fast_samples_; }
  // The latest successful reading (all zero before the first).
  const MemoryReading& last() const { return last_; }

  const MemoryMonitorOptions& options() const { return opts_; }
  MemorySource* source() { return source_.get(); }

 private:
  struct Reservation {
    uint64_t bytes;
    ReserveKind kind;
  };

  std::unique_ptr<MemorySource> source_;
  MemoryMonitorOptions opts_;
  MemorySample sample_;  // reused so steady-state sampling does not allocate
  MemoryReading last_;
  bool have_sample_ = false;
  uint64_t last_full_ns_ = 0;  // NowNanos() of the last full sample
  uint64_t full_samples_ = 0;
  uint64_t fast_samples_ = 0;

  mutable std::mutex mu_;
  std::map<std::string, Reservation> reserves_;  // GUARDED_BY(mu_)
};

}  // namespace dualblade
