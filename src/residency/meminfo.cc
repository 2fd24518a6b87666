#include "residency/meminfo.h"

#include "residency/proc_file.h"

namespace dualblade {

namespace {

struct MeminfoKey {
  std::string_view key;
  uint64_t Meminfo::*field;
};

constexpr MeminfoKey kKeys[] = {
    {"MemTotal", &Meminfo::mem_total_bytes},
    {"MemFree", &Meminfo::mem_free_bytes},
    {"MemAvailable", &Meminfo::mem_available_bytes},
    {"Buffers", &Meminfo::buffers_bytes},
    {"Cached", &Meminfo::cached_bytes},
    {"Shmem", &Meminfo::shmem_bytes},
    {"Active(file)", &Meminfo::active_file_bytes},
    {"Inactive(file)", &Meminfo::inactive_file_bytes},
    {"AnonPages", &Meminfo::anon_pages_bytes},
    {"Dirty", &Meminfo::dirty_bytes},
    {"Writeback", &Meminfo::writeback_bytes},
    {"SwapTotal", &Meminfo::swap_total_bytes},
    {"SwapFree", &Meminfo::swap_free_bytes},
};

}  // namespace

Result<Meminfo> ParseMeminfo(std::string_view text, const std::string& path) {
  Meminfo m;
  bool has_total = false, has_free = false;
  std::string_view line;
  while (NextLine(&text, &line)) {
    if (TrimSpace(line).empty()) continue;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      return Status::Corruption(path + ": line '" + std::string(line) + "' has no ':'");
    }
    std::string_view key = line.substr(0, colon);
    std::string_view rest = line.substr(colon + 1), value, unit, extra;
    if (!NextField(&rest, &value)) {
      return Status::Corruption(path + ": line '" + std::string(line) + "' has no value");
    }
    bool has_unit = NextField(&rest, &unit);
    if ((has_unit && unit != "kB") || NextField(&rest, &extra)) {
      return Status::Corruption(path + ": line '" + std::string(line) +
                                "' is not 'Key: value [kB]'");
    }
    auto n = ParseU64(value);
    if (!n) {
      return Status::Corruption(path + ": line '" + std::string(line) +
                                "' has a value that is not a number");
    }
    for (const auto& k : kKeys) {
      if (k.key != key) continue;
      // A kB figure above 2^54 would overflow bytes; no machine has 16 EiB of memory.
      if (has_unit && *n > (UINT64_MAX >> 10)) {
        return Status::Corruption(path + ": " + std::string(key) + " is out of range");
      }
      m.*(k.field) = has_unit ? *n << 10 : *n;
      if (key == "MemTotal") has_total = true;
      if (key == "MemFree") has_free = true;
      if (key == "MemAvailable") m.has_mem_available = true;
    }
  }
  if (!has_total || !has_free) {
    return Status::Corruption(path + ": missing MemTotal or MemFree");
  }
  if (!m.has_mem_available)
    m.mem_available_bytes = m.mem_free_bytes + m.cached_bytes + m.buffers_bytes;
  return m;
}

Result<Meminfo> ReadMeminfo(const std::string& path) {
  DB_ASSIGN_OR_RETURN(std::string text, ReadTextFile(path));
  return ParseMeminfo(text, path);
}

}  // namespace dualblade
