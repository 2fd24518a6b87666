#include "residency/cgroup_memory.h"

#include <algorithm>
#include <cstddef>

namespace dualblade {

namespace {

// memory.stat key -> field. v1 lists each key twice, plain (this cgroup only) and total_*
// (this cgroup and its descendants); the total_ form wins because usage_in_bytes is
// hierarchical too.
struct StatKey {
  std::string_view key;
  uint64_t CgroupMemoryStat::*field;
};

constexpr StatKey kV2Keys[] = {
    {"anon", &CgroupMemoryStat::anon_bytes},
    {"file", &CgroupMemoryStat::file_bytes},
    {"shmem", &CgroupMemoryStat::shmem_bytes},
    {"file_mapped", &CgroupMemoryStat::file_mapped_bytes},
    {"file_dirty", &CgroupMemoryStat::file_dirty_bytes},
    {"file_writeback", &CgroupMemoryStat::file_writeback_bytes},
    {"active_file", &CgroupMemoryStat::active_file_bytes},
    {"inactive_file", &CgroupMemoryStat::inactive_file_bytes},
    {"active_anon", &CgroupMemoryStat::active_anon_bytes},
    {"inactive_anon", &CgroupMemoryStat::inactive_anon_bytes},
    {"unevictable", &CgroupMemoryStat::unevictable_bytes},
    {"kernel", &CgroupMemoryStat::kernel_bytes},
};

constexpr StatKey kV1Keys[] = {
    {"rss", &CgroupMemoryStat::anon_bytes},
    {"cache", &CgroupMemoryStat::file_bytes},
    {"shmem", &CgroupMemoryStat::shmem_bytes},
    {"mapped_file", &CgroupMemoryStat::file_mapped_bytes},
    {"dirty", &CgroupMemoryStat::file_dirty_bytes},
    {"writeback", &CgroupMemoryStat::file_writeback_bytes},
    {"active_file", &CgroupMemoryStat::active_file_bytes},
    {"inactive_file", &CgroupMemoryStat::inactive_file_bytes},
    {"active_anon", &CgroupMemoryStat::active_anon_bytes},
    {"inactive_anon", &CgroupMemoryStat::inactive_anon_bytes},
    {"unevictable", &CgroupMemoryStat::unevictable_bytes},
};

// Kernels before 6.1 have no "kernel" key in v2 memory.stat; these parts add up to most of it.
constexpr std::string_view kV2KernelParts[] = {"kernel_stack", "pagetables", "sock", "slab"};

template <size_t N>
const StatKey* FindKey(const StatKey (&table)[N], std::string_view key) {
  for (const auto& k : table)
    if (k.key == key) return &k;
  return nullptr;
}

Status LineError(const std::string& path, std::string_view line, const char* why) {
  return Status::Corruption(path + ": line '" + std::string(line) + "' " + why);
}

}  // namespace

Result<uint64_t> ParseCgroupLimit(CgroupVersion version, std::string_view text,
                                  const std::string& path) {
  std::string_view v = TrimSpace(text);
  if (version == CgroupVersion::kV2 && v == "max") return kUnlimitedBytes;
  auto n = ParseU64(v);
  if (!n) {
    return Status::Corruption(path + ": '" + std::string(v) + "' is not a byte count" +
                              (version == CgroupVersion::kV2 ? " or 'max'" : ""));
  }
  if (version == CgroupVersion::kV1 && *n >= kV1UnlimitedThresholdBytes) return kUnlimitedBytes;
  return *n;
}

Result<uint64_t> ParseCgroupCounter(std::string_view text, const std::string& path) {
  std::string_view v = TrimSpace(text);
  auto n = ParseU64(v);
  if (!n) return Status::Corruption(path + ": '" + std::string(v) + "' is not a number");
  return *n;
}

Result<CgroupMemoryStat> ParseCgroupMemoryStat(CgroupVersion version, std::string_view text,
                                               const std::string& path) {
  CgroupMemoryStat st;
  CgroupMemoryStat plain;                   // v1 keys without the total_ prefix
  uint64_t seen_total = 0, seen_plain = 0;  // bit per table index
  bool saw_kernel = false;
  uint64_t kernel_parts = 0;
  std::string_view line;
  while (NextLine(&text, &line)) {
    std::string_view rest = line, key, value, extra;
    if (!NextField(&rest, &key)) continue;  // blank line
    if (!NextField(&rest, &value) || NextField(&rest, &extra)) {
      return LineError(path, line, "is not 'key value'");
    }
    auto n = ParseU64(value);
    if (!n) return LineError(path, line, "has a value that is not a number");
    if (version == CgroupVersion::kV2) {
      if (const StatKey* k = FindKey(kV2Keys, key)) {
        st.*(k->field) = *n;
        seen_plain |= uint64_t{1} << (k - kV2Keys);
        if (key == "kernel") saw_kernel = true;
      } else if (std::find(std::begin(kV2KernelParts), std::end(kV2KernelParts), key) !=
                 std::end(kV2KernelParts)) {
        kernel_parts += *n;
      }
    } else {
      if (key == "hierarchical_memory_limit") {
        st.hierarchical_limit_bytes = *n >= kV1UnlimitedThresholdBytes ? kUnlimitedBytes : *n;
      } else if (key.starts_with("total_")) {
        if (const StatKey* k = FindKey(kV1Keys, key.substr(6))) {
          st.*(k->field) = *n;
          seen_total |= uint64_t{1} << (k - kV1Keys);
        }
      } else if (const StatKey* k = FindKey(kV1Keys, key)) {
        plain.*(k->field) = *n;
        seen_plain |= uint64_t{1} << (k - kV1Keys);
      }
    }
  }
  if (version == CgroupVersion::kV1) {
    for (size_t i = 0; i < std::size(kV1Keys); ++i) {
      if (!(seen_total & (uint64_t{1} << i))) st.*(kV1Keys[i].field) = plain.*(kV1Keys[i].field);
    }
    if (!((seen_plain | seen_total) & 1) || !((seen_plain | seen_total) & 2)) {
      return Status::Corruption(path + ": missing the 'rss' or 'cache' key of a v1 memory.stat");
    }
  } else {
    if (!saw_kernel) st.kernel_bytes = kernel_parts;
    if (!(seen_plain & 1) || !(seen_plain & 2)) {
      return Status::Corruption(path + ": missing the 'anon' or 'file' key of a v2 memory.stat");
    }
  }
  return st;
}

Result<CgroupOomCounters> ParseCgroupOomCounters(CgroupVersion version, std::string_view text,
                                                 const std::string& path) {
  CgroupOomCounters c;
  std::string_view line;
  while (NextLine(&text, &line)) {
    std::string_view rest = line, key, value;
    if (!NextField(&rest, &key)) continue;
    if (!NextField(&rest, &value)) return LineError(path, line, "is not 'key value'");
    auto n = ParseU64(value);
    if (!n) return LineError(path, line, "has a value that is not a number");
    if (key == "oom_kill") {
      c.oom_kill_events = *n;
      c.has_oom_kill = true;
    } else if (key == "oom" && version == CgroupVersion::kV2) {
      c.oom_events = *n;
    } else if (key == "under_oom" && version == CgroupVersion::kV1) {
      c.under_oom = *n != 0;
    }
  }
  if (version == CgroupVersion::kV1) c.oom_events = c.oom_kill_events;
  return c;
}

Result<CgroupMemoryReader> CgroupMemoryReader::Open(const MemoryCgroup& cgroup) {
  CgroupMemoryReader r;
  r.cgroup_ = cgroup;
  const bool v2 = cgroup.version == CgroupVersion::kV2;
  const std::string& d = cgroup.dir;
  DB_ASSIGN_OR_RETURN(r.limit_,
                      ProcFile::Open(d + (v2 ? "/memory.max" : "/memory.limit_in_bytes")));
  DB_ASSIGN_OR_RETURN(r.usage_,
                      ProcFile::Open(d + (v2 ? "/memory.current" : "/memory.usage_in_bytes")));
  DB_ASSIGN_OR_RETURN(r.stat_, ProcFile::Open(d + "/memory.stat"));
  if (auto p = ProcFile::Open(d + (v2 ? "/memory.peak" : "/memory.max_usage_in_bytes")); p.ok()) {
    r.peak_ = std::move(p).value();
  }
  if (auto p = ProcFile::Open(d + (v2 ? "/memory.events" : "/memory.oom_control")); p.ok()) {
    r.oom_ = std::move(p).value();
  }
  if (v2) {
    // A parent's memory.max caps this cgroup too; v2 has no hierarchical_memory_limit to say so.
    std::string dir = d;
    for (;;) {
      size_t slash = dir.rfind('/');
      if (slash == std::string::npos || slash == 0) break;
      dir.resize(slash);
      if (dir.size() <= cgroup.mount_point.size()) break;  // the root has no memory.max
      auto f = ProcFile::Open(dir + "/memory.max");
      if (f.ok()) r.ancestor_limits_.push_back(std::move(f).value());
    }
  }
  return r;
}

Status CgroupMemoryReader::SampleCounters(CgroupMemoryState* out) {
  const CgroupVersion ver = cgroup_.version;
  DB_ASSIGN_OR_RETURN(std::string_view text, limit_.Read());
  DB_ASSIGN_OR_RETURN(uint64_t limit, ParseCgroupLimit(ver, text, limit_.path()));
  for (ProcFile& f : ancestor_limits_) {
    DB_ASSIGN_OR_RETURN(text, f.Read());
    DB_ASSIGN_OR_RETURN(uint64_t l, ParseCgroupLimit(ver, text, f.path()));
    limit = std::min(limit, l);
  }
  // v1: an ancestor's limit is only visible through memory.stat; keep the last one seen.
  out->limit_bytes = std::min(limit, out->stat.hierarchical_limit_bytes);
  DB_ASSIGN_OR_RETURN(text, usage_.Read());
  DB_ASSIGN_OR_RETURN(out->usage_bytes, ParseCgroupCounter(text, usage_.path()));
  return Status::OK();
}

Status CgroupMemoryReader::Sample(CgroupMemoryState* out, bool with_extras) {
  const CgroupVersion ver = cgroup_.version;
  out->stat.hierarchical_limit_bytes = kUnlimitedBytes;
  DB_RETURN_IF_ERROR(SampleCounters(out));
  DB_ASSIGN_OR_RETURN(std::string_view text, stat_.Read());
  DB_ASSIGN_OR_RETURN(out->stat, ParseCgroupMemoryStat(ver, text, stat_.path()));
  out->limit_bytes = std::min(out->limit_bytes, out->stat.hierarchical_limit_bytes);
  const uint64_t lru = out->stat.anon_bytes + out->stat.file_bytes;
  out->stat.non_lru_bytes = out->usage_bytes > lru ? out->usage_bytes - lru : 0;
  if (with_extras) {
    if (peak_.is_open()) {
      DB_ASSIGN_OR_RETURN(text, peak_.Read());
      DB_ASSIGN_OR_RETURN(uint64_t peak, ParseCgroupCounter(text, peak_.path()));
      out->peak_bytes = peak;
    } else {
      out->peak_bytes.reset();
    }
    if (oom_.is_open()) {
      DB_ASSIGN_OR_RETURN(text, oom_.Read());
      DB_ASSIGN_OR_RETURN(out->oom, ParseCgroupOomCounters(ver, text, oom_.path()));
    } else {
      out->oom = CgroupOomCounters{};
    }
  }
  return Status::OK();
}

Result<CgroupMemoryState> ReadCgroupMemory(const MemoryCgroup& cgroup) {
  DB_ASSIGN_OR_RETURN(CgroupMemoryReader r, CgroupMemoryReader::Open(cgroup));
  CgroupMemoryState st;
  DB_RETURN_IF_ERROR(r.Sample(&st));
  return st;
}

}  // namespace dualblade
