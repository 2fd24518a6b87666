// Finds the memory cgroup a process belongs to, on cgroup v2 (the unified hierarchy) and on
// cgroup v1 (a separate "memory" hierarchy), from /proc/<pid>/cgroup and /proc/<pid>/mountinfo.
//
// Everything takes its inputs as text or as a root directory, so tests run the same code on
// fixture files. Thread-safety: stateless functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace dualblade {

enum class CgroupVersion { kV1 = 1, kV2 = 2 };

const char* CgroupVersionName(CgroupVersion v);  // "v1", "v2"

// One line of /proc/<pid>/cgroup: "hierarchy-id:controller-list:path".
struct ProcCgroupEntry {
  int hierarchy_id = 0;
  std::vector<std::string> controllers;  // empty for the v2 line "0::/path"
  std::string path;                      // relative to the hierarchy root, starts with '/'
};

// One line of /proc/<pid>/mountinfo, the fields the cgroup lookup needs (escapes decoded).
struct MountInfoEntry {
  std::string root;         // the directory of the filesystem mounted here ("/" usually)
  std::string mount_point;  // where it is mounted
  std::string fs_type;      // "cgroup2", "cgroup", "ext4", ...
  std::vector<std::string> super_options;  // for cgroup v1: "rw", "memory", ...
};

// SOURCE names the file in error messages ("/proc/self/cgroup").
Result<std::vector<ProcCgroupEntry>> ParseProcCgroup(std::string_view text,
                                                     const std::string& source);
Result<std::vector<MountInfoEntry>> ParseMountInfo(std::string_view text,
                                                   const std::string& source);

// Where a process's memory cgroup lives.
struct MemoryCgroup {
  CgroupVersion version = CgroupVersion::kV2;
  std::string dir;          // the cgroup's own directory, e.g. /sys/fs/cgroup/user.slice/x.scope
  std::string mount_point;  // the hierarchy's mount point; dir is at or below it
  bool is_root() const { return dir == mount_point; }
};

// Picks the memory cgroup from parsed /proc/<pid>/cgroup and mountinfo. v2 is chosen when a
// cgroup2 filesystem is mounted and its root's cgroup.controllers lists "memory" (a hybrid system
// mounts cgroup2 without the memory controller, which then lives on v1); otherwise the v1
// hierarchy whose controllers include "memory". The directory must exist. NotFound, naming what
// was missing, when the process has no memory cgroup.
Result<MemoryCgroup> LocateMemoryCgroup(const std::vector<ProcCgroupEntry>& cgroups,
                                        const std::vector<MountInfoEntry>& mounts);

// Reads PROC_ROOT/self/cgroup and PROC_ROOT/self/mountinfo ("/proc" on a live system) and
// locates the memory cgroup of the calling process.
Result<MemoryCgroup> FindMemoryCgroup(const std::string& proc_root = "/proc");

}  // namespace dualblade
