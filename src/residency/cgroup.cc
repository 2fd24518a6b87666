#include "residency/cgroup.h"

#include <sys/stat.h>

#include <cerrno>

#include "residency/proc_file.h"

namespace dualblade {

namespace {

std::vector<std::string> SplitComma(std::string_view s) {
  std::vector<std::string> out;
  while (!s.empty()) {
    size_t c = s.find(',');
    std::string_view item = s.substr(0, c);
    if (!item.empty()) out.emplace_back(item);
    if (c == std::string_view::npos) break;
    s.remove_prefix(c + 1);
  }
  return out;
}

bool Contains(const std::vector<std::string>& v, std::string_view x) {
  for (const auto& s : v)
    if (s == x) return true;
  return false;
}

// mountinfo escapes space, tab, newline and backslash as \ooo (octal), see show_mountinfo().
std::string DecodeOctalEscapes(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' &&
        s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
      out.push_back(
          static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// Maps a cgroup path (relative to the hierarchy root) onto a mount of that hierarchy whose root
// is a prefix of it. Returns "" when this mount does not expose the path.
std::string ResolveUnder(const MountInfoEntry& m, const std::string& cg_path) {
  if (m.root == "/") return cg_path == "/" ? m.mount_point : m.mount_point + cg_path;
  if (cg_path == m.root) return m.mount_point;
  if (cg_path.size() > m.root.size() && cg_path.compare(0, m.root.size(), m.root) == 0 &&
      cg_path[m.root.size()] == '/') {
    return m.mount_point + cg_path.substr(m.root.size());
  }
  return "";
}

bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Chooses among the mounts of one hierarchy the one that exposes CG_PATH with the longest root
// (bind mounts of sub-trees are common in containers).
Result<MemoryCgroup> Resolve(CgroupVersion version,
                             const std::vector<const MountInfoEntry*>& mounts,
                             const std::string& cg_path) {
  const MountInfoEntry* best = nullptr;
  std::string best_dir;
  for (const MountInfoEntry* m : mounts) {
    std::string dir = ResolveUnder(*m, cg_path);
    if (dir.empty()) continue;
    if (best == nullptr || m->root.size() > best->root.size()) {
      best = m;
      best_dir = std::move(dir);
    }
  }
  if (best == nullptr) {
    return Status::NotFound(
        "memory cgroup " + cg_path + " (" + CgroupVersionName(version) +
        ") is not visible under any mount of its hierarchy (first: " + mounts.front()->mount_point +
        " with root " + mounts.front()->root + ")");
  }
  if (!IsDirectory(best_dir)) {
    return Status::NotFound("memory cgroup directory " + best_dir + " does not exist");
  }
  MemoryCgroup cg;
  cg.version = version;
  cg.dir = std::move(best_dir);
  cg.mount_point = best->mount_point;
  return cg;
}

}  // namespace

const char* CgroupVersionName(CgroupVersion v) {
  return v == CgroupVersion::kV1 ? "v1" : "v2";
}

Result<std::vector<ProcCgroupEntry>> ParseProcCgroup(std::string_view text,
                                                     const std::string& source) {
  std::vector<ProcCgroupEntry> out;
  std::string_view line;
  int line_no = 0;
  while (NextLine(&text, &line)) {
    ++line_no;
    if (TrimSpace(line).empty()) continue;
    size_t c1 = line.find(':');
    size_t c2 = c1 == std::string_view::npos ? c1 : line.find(':', c1 + 1);
    if (c2 == std::string_view::npos) {
      return Status::Corruption(source + " line " + std::to_string(line_no) + " '" +
                                std::string(line) + "' is not 'id:controllers:path'");
    }
    auto id = ParseU64(line.substr(0, c1));
    std::string_view path = line.substr(c2 + 1);
    if (!id || *id > 1'000'000 || path.empty() || path[0] != '/') {
      return Status::Corruption(source + " line " + std::to_string(line_no) + " '" +
                                std::string(line) + "' is not 'id:controllers:path'");
    }
    ProcCgroupEntry e;
    e.hierarchy_id = static_cast<int>(*id);
    e.controllers = SplitComma(line.substr(c1 + 1, c2 - c1 - 1));
    e.path = std::string(path);
    // Kernels append " (deleted)" when the cgroup was removed under a live process.
    constexpr std::string_view kDeleted = " (deleted)";
    if (e.path.size() > kDeleted.size() &&
        e.path.compare(e.path.size() - kDeleted.size(), kDeleted.size(), kDeleted) == 0) {
      e.path.resize(e.path.size() - kDeleted.size());
    }
    out.push_back(std::move(e));
  }
  if (out.empty()) return Status::Corruption(source + " lists no cgroup");
  return out;
}

Result<std::vector<MountInfoEntry>> ParseMountInfo(std::string_view text,
                                                   const std::string& source) {
  std::vector<MountInfoEntry> out;
  std::string_view line;
  int line_no = 0;
  while (NextLine(&text, &line)) {
    ++line_no;
    if (TrimSpace(line).empty()) continue;
    auto bad = [&](const char* why) {
      return Status::Corruption(source + " line " + std::to_string(line_no) + ": " + why);
    };
    std::string_view rest = line;
    std::string_view f[5];
    for (auto& field : f)
      if (!NextField(&rest, &field)) return bad("fewer than 5 fields before the separator");
    // Optional fields ("shared:1", "master:2") run up to a lone "-".
    std::string_view tok;
    bool separator = false;
    while (NextField(&rest, &tok)) {
      if (tok == "-") {
        separator = true;
        break;
      }
    }
    if (!separator) return bad("no ' - ' separator");
    std::string_view fs_type, mount_source, super_opts;
    if (!NextField(&rest, &fs_type) || !NextField(&rest, &mount_source)) {
      return bad("missing filesystem type or source after ' - '");
    }
    if (!NextField(&rest, &super_opts)) super_opts = {};
    MountInfoEntry e;
    e.root = DecodeOctalEscapes(f[3]);
    e.mount_point = DecodeOctalEscapes(f[4]);
    e.fs_type = std::string(fs_type);
    e.super_options = SplitComma(super_opts);
    if (e.root.empty() || e.root[0] != '/' || e.mount_point.empty() || e.mount_point[0] != '/') {
      return bad("root or mount point is not an absolute path");
    }
    out.push_back(std::move(e));
  }
  return out;
}

Result<MemoryCgroup> LocateMemoryCgroup(const std::vector<ProcCgroupEntry>& cgroups,
                                        const std::vector<MountInfoEntry>& mounts) {
  // cgroup v2: the "0::" line, a cgroup2 mount, and "memory" among the root's controllers.
  std::vector<const MountInfoEntry*> v2_mounts;
  for (const auto& m : mounts)
    if (m.fs_type == "cgroup2") v2_mounts.push_back(&m);
  const ProcCgroupEntry* v2_line = nullptr;
  for (const auto& c : cgroups)
    if (c.hierarchy_id == 0 && c.controllers.empty()) v2_line = &c;
  std::string v2_reason;
  if (v2_line != nullptr && !v2_mounts.empty()) {
    bool has_memory = false;
    for (const MountInfoEntry* m : v2_mounts) {
      auto controllers = ReadTextFile(m->mount_point + "/cgroup.controllers");
      if (!controllers.ok()) continue;
      std::string_view text = *controllers, tok;
      while (NextField(&text, &tok))
        if (tok == "memory") has_memory = true;
    }
    if (has_memory) return Resolve(CgroupVersion::kV2, v2_mounts, v2_line->path);
    v2_reason = "cgroup2 at " + v2_mounts.front()->mount_point + " lacks the memory controller";
  } else {
    v2_reason = v2_line == nullptr ? "no '0::' line" : "no cgroup2 mount";
  }

  // cgroup v1: the hierarchy listing "memory", mounted as type "cgroup" with option "memory".
  const ProcCgroupEntry* v1_line = nullptr;
  for (const auto& c : cgroups)
    if (Contains(c.controllers, "memory")) v1_line = &c;
  std::vector<const MountInfoEntry*> v1_mounts;
  for (const auto& m : mounts)
    if (m.fs_type == "cgroup" && Contains(m.super_options, "memory")) v1_mounts.push_back(&m);
  if (v1_line != nullptr && !v1_mounts.empty()) {
    return Resolve(CgroupVersion::kV1, v1_mounts, v1_line->path);
  }
  return Status::NotFound(
      "no memory cgroup: v2: " + v2_reason + "; v1: " +
      (v1_line == nullptr ? "no hierarchy lists 'memory'" : "the memory hierarchy is not mounted"));
}

Result<MemoryCgroup> FindMemoryCgroup(const std::string& proc_root) {
  const std::string cgroup_path = proc_root + "/self/cgroup";
  const std::string mountinfo_path = proc_root + "/self/mountinfo";
  DB_ASSIGN_OR_RETURN(std::string cg_text, ReadTextFile(cgroup_path));
  DB_ASSIGN_OR_RETURN(std::string mi_text, ReadTextFile(mountinfo_path));
  DB_ASSIGN_OR_RETURN(auto cgroups, ParseProcCgroup(cg_text, cgroup_path));
  DB_ASSIGN_OR_RETURN(auto mounts, ParseMountInfo(mi_text, mountinfo_path));
  return LocateMemoryCgroup(cgroups, mounts);
}

}  // namespace dualblade
