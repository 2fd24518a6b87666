#include "bench/cpu_stats.h"

#include <time.h>

#include <algorithm>

#include "common/clock.h"
#include "residency/proc_file.h"

namespace dualblade {

namespace {

uint64_t Delta(uint64_t before, uint64_t after) { return after >= before ? after - before : 0; }

uint64_t ClockNs(clockid_t id) {
  timespec ts{};
  if (clock_gettime(id, &ts) != 0) return 0;
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace

Result<ProcStatCpu> ParseProcStatCpu(std::string_view text, const std::string& path) {
  ProcStatCpu s;
  bool found = false;
  std::string_view line;
  while (NextLine(&text, &line)) {
    std::string_view name;
    if (!NextField(&line, &name) || name.substr(0, 3) != "cpu") continue;
    if (name != "cpu") {
      ++s.cpus;  // "cpu0", "cpu1", ...
      continue;
    }
    uint64_t v[8] = {};
    size_t n = 0;
    std::string_view field;
    while (n < 8 && NextField(&line, &field)) {
      std::optional<uint64_t> x = ParseU64(field);
      if (!x) return Status::Corruption(path + ": cpu field " + std::to_string(n + 1) + " ('" +
                                        std::string(field) + "') is not a number");
      v[n++] = *x;
    }
    if (n < 8)
      return Status::Corruption(path + ": the cpu line has " + std::to_string(n) +
                                " numbers, expected at least 8");
    s.user = v[0];
    s.nice = v[1];
    s.system = v[2];
    s.idle = v[3];
    s.iowait = v[4];
    s.irq = v[5];
    s.softirq = v[6];
    s.steal = v[7];
    found = true;
  }
  if (!found) return Status::Corruption(path + " has no aggregate cpu line");
  return s;
}

Result<ProcStatCpu> ReadProcStatCpu(const std::string& path) {
  DB_ASSIGN_OR_RETURN(std::string text, ReadTextFile(path));
  return ParseProcStatCpu(text, path);
}

CpuSample SampleCpu() {
  CpuSample s;
  s.process_cpu_ns = ClockNs(CLOCK_PROCESS_CPUTIME_ID);
  s.wall_ns = NowNanos();
  Result<ProcStatCpu> m = ReadProcStatCpu();
  if (m.ok()) s.machine = *m;
  return s;
}

CpuUsage DiffCpu(const CpuSample& before, const CpuSample& after) {
  CpuUsage u;
  u.wall_ms = static_cast<double>(Delta(before.wall_ns, after.wall_ns)) * 1e-6;
  u.process_cpu_ms = static_cast<double>(Delta(before.process_cpu_ns, after.process_cpu_ns)) * 1e-6;
  if (!before.machine || !after.machine) return u;
  const ProcStatCpu& a = *before.machine;
  const ProcStatCpu& b = *after.machine;
  const uint64_t total = Delta(a.total(), b.total());
  const uint64_t steal = Delta(a.steal, b.steal);
  const uint64_t busy = Delta(a.busy(), b.busy());
  u.has_machine = true;
  u.cpus = b.cpus;
  if (total > 0) u.steal_fraction = static_cast<double>(steal) / static_cast<double>(total);
  if (total > steal)
    u.busy_fraction = std::min(1.0, static_cast<double>(busy) / static_cast<double>(total - steal));
  return u;
}

}  // namespace dualblade
