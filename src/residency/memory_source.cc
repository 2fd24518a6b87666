#include "residency/memory_source.h"

#include <unistd.h>

#include "common/clock.h"

namespace dualblade {

Result<std::unique_ptr<SystemMemorySource>> SystemMemorySource::Open(
    const SystemMemorySourceOptions& opts) {
  std::unique_ptr<SystemMemorySource> s(new SystemMemorySource());
  s->cgroup_extras_ = opts.cgroup_extras;
  s->page_bytes_ = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  if (opts.use_cgroup) {
    Result<MemoryCgroup> cg =
        opts.cgroup ? Result<MemoryCgroup>(*opts.cgroup) : FindMemoryCgroup(opts.proc_root);
    if (cg.ok()) {
      auto reader = CgroupMemoryReader::Open(*cg);
      if (reader.ok()) {
        s->cgroup_.emplace(std::move(reader).value());
      } else if (reader.status().IsNotFound()) {
        s->no_cgroup_reason_ = reader.status().message();  // e.g. the v2 root cgroup
      } else {
        return reader.status();
      }
    } else if (cg.status().IsNotFound()) {
      s->no_cgroup_reason_ = cg.status().message();
    } else {
      return cg.status();
    }
  } else {
    s->no_cgroup_reason_ = "cgroups disabled by the caller";
  }
  DB_ASSIGN_OR_RETURN(s->meminfo_, ProcFile::Open(opts.proc_root + "/meminfo"));
  DB_ASSIGN_OR_RETURN(s->statm_, ProcFile::Open(opts.proc_root + "/self/statm"));
  if (auto p = ProcFile::Open(opts.proc_root + "/pressure/memory"); p.ok()) {
    // PSI compiled in but disabled (psi=0) opens fine and fails on read: probe once.
    if (p->Read().ok()) s->pressure_ = std::move(p).value();
  }
  return s;
}

Status SystemMemorySource::Sample(MemorySample* out) {
  out->taken_ns = NowNanos();
  out->has_cgroup = cgroup_.has_value();
  if (cgroup_) {
    out->cgroup_version = cgroup_->cgroup().version;
    DB_RETURN_IF_ERROR(cgroup_->Sample(&out->cgroup, cgroup_extras_));
  }
  DB_ASSIGN_OR_RETURN(std::string_view text, meminfo_.Read());
  DB_ASSIGN_OR_RETURN(out->meminfo, ParseMeminfo(text, meminfo_.path()));
  out->has_pressure = pressure_.is_open();
  if (pressure_.is_open()) {
    DB_ASSIGN_OR_RETURN(text, pressure_.Read());
    DB_ASSIGN_OR_RETURN(out->pressure, ParseMemoryPressure(text, pressure_.path()));
  }
  return ReadStatm(out);
}

Status SystemMemorySource::SampleFast(MemorySample* inout) {
  inout->taken_ns = NowNanos();
  if (cgroup_) {
    DB_RETURN_IF_ERROR(cgroup_->SampleCounters(&inout->cgroup));
    // Without a limit the monitor counts the process's own memory, not the cgroup's.
    if (inout->cgroup.limit_bytes != kUnlimitedBytes) return Status::OK();
  }
  return ReadStatm(inout);
}

Status SystemMemorySource::ReadStatm(MemorySample* out) {
  // statm: "size resident shared text lib data dt", in pages.
  DB_ASSIGN_OR_RETURN(std::string_view text, statm_.Read());
  std::string_view rest = text, size, resident, shared;
  std::optional<uint64_t> res_pages, shared_pages;
  if (NextField(&rest, &size) && NextField(&rest, &resident) && NextField(&rest, &shared)) {
    res_pages = ParseU64(resident);
    shared_pages = ParseU64(shared);
  }
  if (!res_pages || !shared_pages) {
    return Status::Corruption(statm_.path() + ": '" + std::string(TrimSpace(text)) +
                              "' is not 'size resident shared ...'");
  }
  out->process_resident_bytes = *res_pages * page_bytes_;
  out->process_shared_bytes = *shared_pages * page_bytes_;
  return Status::OK();
}

std::string SystemMemorySource::Describe() const {
  std::string s = cgroup_ ? "cgroup " + std::string(CgroupVersionName(cgroup_->cgroup().version)) +
                                " " + cgroup_->cgroup().dir
                          : "no cgroup (" + no_cgroup_reason_ + ")";
  s += ", " + meminfo_.path();
  s += pressure_.is_open() ? ", " + pressure_.path() : ", no PSI";
  return s;
}

}  // namespace dualblade
