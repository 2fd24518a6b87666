// ScriptedMemorySource: a MemorySource that plays back a script of samples, for tests of the
// monitor and of placement policies that must see exact, repeatable readings (what a real
// machine cannot promise). Not used by the shipped binary.
//
// Each Sample() returns the next scripted step; after the last one it keeps returning the last.
// A step may be an error, to test how callers survive a failed sample.
//
// Thread-safety: none; the test drives it from one thread.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <variant>

#include "common/status.h"
#include "residency/memory_source.h"

namespace dualblade {

class ScriptedMemorySource final : public MemorySource {
 public:
  ScriptedMemorySource() = default;

  // Appends a step.
  void Push(const MemorySample& s) { steps_.emplace_back(s); }
  void PushError(const Status& st) { steps_.emplace_back(st); }

  Status Sample(MemorySample* out) override {
    if (steps_.empty()) return Status::NotFound("scripted memory source: empty script");
    // Keep the last step so the script need not be as long as the test.
    std::variant<MemorySample, Status> step = steps_.front();
    if (steps_.size() > 1) steps_.pop_front();
    ++samples_taken_;
    if (auto* st = std::get_if<Status>(&step)) return *st;
    *out = std::get<MemorySample>(step);
    out->taken_ns = samples_taken_;  // strictly increasing, like a clock
    return Status::OK();
  }

  std::string Describe() const override { return "scripted"; }
  uint64_t samples_taken() const { return samples_taken_; }

  // A sample of a cgroup-limited process: LIMIT of which ANON anonymous, FILE page cache and
  // KERNEL other charges; the machine has TOTAL bytes, AVAILABLE of them available.
  static MemorySample CgroupSample(uint64_t limit_bytes, uint64_t anon_bytes, uint64_t file_bytes,
                                   uint64_t total_bytes, uint64_t available_bytes,
                                   uint64_t kernel_bytes = 0) {
    MemorySample s;
    s.has_cgroup = true;
    s.cgroup.limit_bytes = limit_bytes;
    s.cgroup.usage_bytes = anon_bytes + file_bytes + kernel_bytes;
    s.cgroup.stat.anon_bytes = anon_bytes;
    s.cgroup.stat.file_bytes = file_bytes;
    s.cgroup.stat.non_lru_bytes = kernel_bytes;
    s.meminfo.mem_total_bytes = total_bytes;
    s.meminfo.mem_available_bytes = available_bytes;
    s.meminfo.has_mem_available = true;
    return s;
  }

  // A sample without a cgroup: the process has RESIDENT bytes, SHARED of them file-backed.
  static MemorySample ProcessSample(uint64_t resident_bytes, uint64_t shared_bytes,
                                    uint64_t total_bytes, uint64_t available_bytes) {
    MemorySample s;
    s.process_resident_bytes = resident_bytes;
    s.process_shared_bytes = shared_bytes;
    s.meminfo.mem_total_bytes = total_bytes;
    s.meminfo.mem_available_bytes = available_bytes;
    s.meminfo.has_mem_available = true;
    return s;
  }

 private:
  std::deque<std::variant<MemorySample, Status>> steps_;
  uint64_t samples_taken_ = 0;
};

}  // namespace dualblade
