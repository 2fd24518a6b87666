#include "residency/memory_monitor.h"

#include <algorithm>
#include <cstdio>

#include "common/clock.h"
#include "common/units.h"

namespace dualblade {

namespace {

uint64_t SubClamp(uint64_t a, uint64_t b) {
  return a > b ? a - b : 0;
}

// Below this the kernel's own reclaim and the estimate's error eat the whole margin.
constexpr uint64_t kMinAutoMarginBytes = 8 * kMiB;
// 1/32 of the limit: about the gap between the kernel's low and high watermarks on small boxes.
constexpr uint64_t kAutoMarginDivisor = 32;

}  // namespace

const char* LimitSourceName(LimitSource s) {
  switch (s) {
    case LimitSource::kCgroup:
      return "cgroup";
    case LimitSource::kBudget:
      return "budget";
    case LimitSource::kMemTotal:
      return "memtotal";
  }
  return "?";
}

MemoryReading ComputeMemoryReading(const MemorySample& s, const ReserveTotals& reserves,
                                   const MemoryMonitorOptions& opts) {
  MemoryReading r;
  r.taken_ns = s.taken_ns;
  r.has_cgroup = s.has_cgroup;
  r.mem_total_bytes = s.meminfo.mem_total_bytes;
  r.available_bytes = s.meminfo.mem_available_bytes;

  // The limit: whichever of the three is smallest.
  r.limit_bytes = s.meminfo.mem_total_bytes;
  r.limit_source = LimitSource::kMemTotal;
  if (opts.budget_bytes != 0 && opts.budget_bytes < r.limit_bytes) {
    r.limit_bytes = opts.budget_bytes;
    r.limit_source = LimitSource::kBudget;
  }
  if (s.has_cgroup) {
    r.cgroup_limit_bytes = s.cgroup.limit_bytes;
    if (s.cgroup.limit_bytes < r.limit_bytes) {
      r.limit_bytes = s.cgroup.limit_bytes;
      r.limit_source = LimitSource::kCgroup;
    }
  }

  // Measured usage: the cgroup's when it confines us (a finite limit: a container, a benchmark
  // run; that is what the limit is enforced against), else the process's own resident set. An
  // unlimited cgroup is typically a shared slice whose other tenants are not ours to count.
  r.confined_by_cgroup = s.has_cgroup && s.cgroup.limit_bytes != kUnlimitedBytes;
  r.oom_kill_events = s.has_cgroup ? s.cgroup.oom.oom_kill_events : 0;
  if (r.confined_by_cgroup) {
    const CgroupMemoryStat& st = s.cgroup.stat;
    r.usage_bytes = s.cgroup.usage_bytes;
    r.anon_bytes = st.anon_bytes;
    r.file_cache_bytes = st.file_bytes;
    // Whatever the cgroup is charged beyond anon and file (slab, stacks, page tables, sockets)
    // counts against its limit and is not reclaimable on demand.
    r.kernel_bytes = st.non_lru_bytes;
    r.dirty_bytes = st.file_dirty_bytes;
    r.writeback_bytes = st.file_writeback_bytes;
  } else {
    r.usage_bytes = s.process_resident_bytes;
    r.anon_bytes = SubClamp(s.process_resident_bytes, s.process_shared_bytes);
    r.file_cache_bytes = s.meminfo.cached_bytes;
    r.dirty_bytes = s.meminfo.dirty_bytes;
    r.writeback_bytes = s.meminfo.writeback_bytes;
  }

  r.reserved_anon_bytes = reserves.anon_bytes;
  r.reserved_file_bytes = reserves.file_bytes;
  r.pinned_bytes =
      std::max(r.anon_bytes, reserves.anon_bytes) + reserves.file_bytes + r.kernel_bytes;
  r.safety_margin_bytes = opts.safety_margin_bytes != MemoryMonitorOptions::kAutoMargin
                              ? opts.safety_margin_bytes
                              : std::max(kMinAutoMarginBytes, r.limit_bytes / kAutoMarginDivisor);

  uint64_t headroom = SubClamp(r.limit_bytes, r.pinned_bytes + r.safety_margin_bytes);
  // The machine as a whole: MemAvailable already counts reclaimable page cache (our KV pages
  // included) as available; reservations not yet allocated will take their share of it.
  const uint64_t not_yet_allocated = SubClamp(reserves.anon_bytes, r.anon_bytes);
  const uint64_t system_headroom =
      SubClamp(r.available_bytes, not_yet_allocated + r.safety_margin_bytes);
  r.kv_headroom_bytes = std::min(headroom, system_headroom);

  r.has_pressure = s.has_pressure;
  if (s.has_pressure) {
    r.psi_some_avg10 = s.pressure.some.avg10;
    r.psi_full_avg10 = s.pressure.full.avg10;
    r.psi_some_total_us = s.pressure.some.total_us;
    r.psi_full_total_us = s.pressure.full.total_us;
  }
  return r;
}

std::string MemoryReading::ToString() const {
  char psi[64] = "n/a";
  if (has_pressure)
    std::snprintf(psi, sizeof(psi), "some %.2f%% full %.2f%%", psi_some_avg10, psi_full_avg10);
  return "limit " + FormatBytes(limit_bytes) + " (" + LimitSourceName(limit_source) + "), usage " +
         FormatBytes(usage_bytes) + ", anon " + FormatBytes(anon_bytes) + ", file " +
         FormatBytes(file_cache_bytes) + ", pinned " + FormatBytes(pinned_bytes) + ", margin " +
         FormatBytes(safety_margin_bytes) + ", available " + FormatBytes(available_bytes) +
         ", kv headroom " + FormatBytes(kv_headroom_bytes) + ", psi " + psi;
}

MemoryMonitor::MemoryMonitor(std::unique_ptr<MemorySource> source, const MemoryMonitorOptions& opts)
    : source_(std::move(source)), opts_(opts) {
  DB_CHECK(source_ != nullptr);
}

Result<std::unique_ptr<MemoryMonitor>> MemoryMonitor::OpenSystem(const MemoryMonitorOptions& opts) {
  DB_ASSIGN_OR_RETURN(std::unique_ptr<SystemMemorySource> src, SystemMemorySource::Open());
  return std::make_unique<MemoryMonitor>(std::move(src), opts);
}

void MemoryMonitor::Reserve(const std::string& name, uint64_t bytes, ReserveKind kind) {
  std::lock_guard<std::mutex> l(mu_);
  reserves_[name] = Reservation{bytes, kind};
}

void MemoryMonitor::Release(const std::string& name) {
  std::lock_guard<std::mutex> l(mu_);
  reserves_.erase(name);
}

ReserveTotals MemoryMonitor::reserve_totals() const {
  std::lock_guard<std::mutex> l(mu_);
  ReserveTotals t;
  for (const auto& [name, r] : reserves_) {
    (r.kind == ReserveKind::kAnon ? t.anon_bytes : t.file_bytes) += r.bytes;
  }
  return t;
}

uint64_t MemoryMonitor::reserved_bytes(const std::string& name) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = reserves_.find(name);
  return it == reserves_.end() ? 0 : it->second.bytes;
}

Result<MemoryReading> MemoryMonitor::Sample() {
  if (!have_sample_ || NowNanos() - last_full_ns_ >= opts_.full_sample_interval_ns) {
    return SampleFull();
  }
  Status st = source_->SampleFast(&sample_);
  if (!st.ok()) {
    have_sample_ = false;
    return st;
  }
  ++fast_samples_;
  last_ = ComputeMemoryReading(sample_, reserve_totals(), opts_);
  return last_;
}

Result<MemoryReading> MemoryMonitor::SampleFull() {
  Status st = source_->Sample(&sample_);
  if (!st.ok()) {
    // A failed full sample leaves sample_ half-written; the next call must start over.
    have_sample_ = false;
    return st;
  }
  have_sample_ = true;
  last_full_ns_ = NowNanos();
  ++full_samples_;
  last_ = ComputeMemoryReading(sample_, reserve_totals(), opts_);
  return last_;
}

}  // namespace dualblade
