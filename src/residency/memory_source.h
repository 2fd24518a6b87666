// MemorySource: where the memory monitor gets its raw figures. The system implementation reads
// the process's memory cgroup, /proc/meminfo, /proc/pressure/memory and /proc/self/statm through
// descriptors kept open (a sample is a handful of preads, no open/close). Tests that need
// deterministic readings use ScriptedMemorySource (scripted_memory_source.h) instead.
//
// Thread-safety: a source is sampled by one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "common/status.h"
#include "residency/cgroup.h"
#include "residency/cgroup_memory.h"
#include "residency/meminfo.h"
#include "residency/pressure.h"
#include "residency/proc_file.h"

namespace dualblade {

// Raw figures from one sampling instant. Absent parts are flagged, never guessed.
struct MemorySample {
  uint64_t taken_ns = 0;  // NowNanos() at the sample

  bool has_cgroup = false;  // a non-root memory cgroup whose files could be read
  CgroupVersion cgroup_version = CgroupVersion::kV2;
  CgroupMemoryState cgroup;

  Meminfo meminfo;

  bool has_pressure = false;  // PSI present and enabled
  MemoryPressure pressure;

  // The calling process, from /proc/self/statm: all resident pages, and those of them that are
  // file-backed or shared (mapped weights, shmem). resident - shared is its anonymous memory.
  uint64_t process_resident_bytes = 0;
  uint64_t process_shared_bytes = 0;
};

class MemorySource {
 public:
  virtual ~MemorySource() = default;
  // Fills *out with fresh figures. On error *out is unspecified.
  virtual Status Sample(MemorySample* out) = 0;
  // Refreshes only the cheap, fast-moving figures (the cgroup's limit and usage, and the
  // process's own resident set unless a cgroup limit confines it) of a sample that Sample()
  // filled before; the rest keeps its previous values. The default takes a full sample.
  virtual Status SampleFast(MemorySample* inout) { return Sample(inout); }
  // One line for logs: which files feed this source.
  virtual std::string Describe() const = 0;
};

struct SystemMemorySourceOptions {
  std::string proc_root = "/proc";
  // Use this cgroup instead of discovering the process's own; nullopt = discover.
  std::optional<MemoryCgroup> cgroup;
  // Ignore cgroups entirely (meminfo and the process's own figures only).
  bool use_cgroup = true;
  // Also read the cgroup's peak and OOM files on every sample (two more preads).
  bool cgroup_extras = true;
};

class SystemMemorySource final : public MemorySource {
 public:
  // Opens every file once. A missing memory cgroup, a v2 root cgroup (no memory.current) or a
  // kernel without PSI is not an error: those parts are flagged absent in every sample.
  // /proc/meminfo and /proc/self/statm are required.
  static Result<std::unique_ptr<SystemMemorySource>> Open(
      const SystemMemorySourceOptions& opts = {});

  Status Sample(MemorySample* out) override;
  Status SampleFast(MemorySample* inout) override;
  std::string Describe() const override;

  // Why there is no cgroup in the samples ("" when there is one).
  const std::string& no_cgroup_reason() const { return no_cgroup_reason_; }

 private:
  SystemMemorySource() = default;
  Status ReadStatm(MemorySample* out);

  bool cgroup_extras_ = true;
  std::optional<CgroupMemoryReader> cgroup_;
  std::string no_cgroup_reason_;
  ProcFile meminfo_;
  ProcFile pressure_;  // may be closed
  ProcFile statm_;
  uint64_t page_bytes_ = 4096;
};

}  // namespace dualblade
