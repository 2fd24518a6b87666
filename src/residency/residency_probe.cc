#include "residency/residency_probe.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

namespace dualblade {

namespace {

// cachestat(2) arrived in Linux 6.5; glibc 2.36 and its kernel headers predate it. 451 is its
// number in the unified syscall table, shared by x86-64, arm64 and the other modern ABIs.
#ifndef __NR_cachestat
#define __NR_cachestat 451
#endif

// include/uapi/linux/mman.h (6.5)
struct CachestatRange {
  uint64_t off;
  uint64_t len;
};
struct Cachestat {
  uint64_t nr_cache;
  uint64_t nr_dirty;
  uint64_t nr_writeback;
  uint64_t nr_evicted;
  uint64_t nr_recently_evicted;
};

long SysCachestat(int fd, CachestatRange* range, Cachestat* cs) {
  return ::syscall(__NR_cachestat, fd, range, cs, 0u);
}

uint64_t PageBytes() {
  static const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  return page;
}

Result<uint64_t> SizeOf(int fd, const std::string& path) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoStatus("stat " + path, errno);
  if (S_ISREG(st.st_mode)) return static_cast<uint64_t>(st.st_size);
  if (S_ISBLK(st.st_mode)) {
    uint64_t bytes = 0;
    if (::ioctl(fd, BLKGETSIZE64, &bytes) != 0) return ErrnoStatus("BLKGETSIZE64 " + path, errno);
    return bytes;
  }
  return Status::InvalidArgument(path + " is neither a regular file nor a block device");
}

Status ProbeCachestat(int fd, const std::string& path, PageCacheResidency* r) {
  CachestatRange range{r->offset_bytes, r->length_bytes};
  Cachestat cs{};
  if (SysCachestat(fd, &range, &cs) != 0) {
    int e = errno;
    if (e == ENOSYS) return Status::NotSupported("cachestat(2) needs Linux 6.5 or newer");
    return ErrnoStatus("cachestat " + path, e);
  }
  const uint64_t page = PageBytes();
  r->resident_bytes = cs.nr_cache * page;
  r->has_page_states = true;
  r->dirty_bytes = cs.nr_dirty * page;
  r->writeback_bytes = cs.nr_writeback * page;
  r->evicted_bytes = cs.nr_evicted * page;
  r->recently_evicted_bytes = cs.nr_recently_evicted * page;
  return Status::OK();
}

Status ProbeMincore(int fd, const std::string& path, PageCacheResidency* r) {
  // Linux >= 5.0 answers "all resident" for files the caller may neither write nor owns.
  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoStatus("stat " + path, errno);
  if (::geteuid() != 0 && st.st_uid != ::geteuid() &&
      ::access(("/proc/self/fd/" + std::to_string(fd)).c_str(), W_OK) != 0) {
    return Status::NotSupported("mincore cannot see the page cache of " + path +
                                ": the process neither owns it nor may write it");
  }
  const uint64_t page = PageBytes();
  std::vector<unsigned char> vec;
  uint64_t resident_pages = 0;
  for (uint64_t done = 0; done < r->length_bytes;) {
    const uint64_t win = std::min(kMincoreWindowBytes, r->length_bytes - done);
    void* p =
        ::mmap(nullptr, win, PROT_READ, MAP_SHARED, fd, static_cast<off_t>(r->offset_bytes + done));
    if (p == MAP_FAILED) return ErrnoStatus("mmap " + path + " for mincore", errno);
    vec.resize(win / page);
    int rc = ::mincore(p, win, vec.data());
    int e = errno;
    ::munmap(p, win);
    if (rc != 0) return ErrnoStatus("mincore " + path, e);
    for (unsigned char v : vec) resident_pages += v & 1;
    done += win;
  }
  r->resident_bytes = resident_pages * page;
  return Status::OK();
}

}  // namespace

const char* ResidencyMethodName(ResidencyMethod m) {
  switch (m) {
    case ResidencyMethod::kAuto:
      return "auto";
    case ResidencyMethod::kCachestat:
      return "cachestat";
    case ResidencyMethod::kMincore:
      return "mincore";
  }
  return "?";
}

bool CachestatSupported() {
  // An invalid descriptor tells ENOSYS (no such syscall) from EBADF (it exists).
  static const bool supported = [] {
    CachestatRange range{0, 0};
    Cachestat cs{};
    return SysCachestat(-1, &range, &cs) != 0 && errno == EBADF;
  }();
  return supported;
}

Result<PageCacheResidency> ProbeResidency(int fd, const std::string& path, uint64_t offset_bytes,
                                          uint64_t length_bytes, ResidencyMethod method) {
  DB_ASSIGN_OR_RETURN(uint64_t size, SizeOf(fd, path));
  if (offset_bytes > size) {
    return Status::InvalidArgument("offset " + std::to_string(offset_bytes) +
                                   " is past the end of " + path + " (" + std::to_string(size) +
                                   " bytes)");
  }
  if (length_bytes == 0 || length_bytes > size - offset_bytes) length_bytes = size - offset_bytes;
  const uint64_t page = PageBytes();
  PageCacheResidency r;
  r.offset_bytes = offset_bytes / page * page;
  // Round the end up to a page, but not past the last (partial) page of the file.
  const uint64_t end = std::min((offset_bytes + length_bytes + page - 1) / page * page,
                                (size + page - 1) / page * page);
  r.length_bytes = end - r.offset_bytes;
  if (method == ResidencyMethod::kAuto) {
    method = CachestatSupported() ? ResidencyMethod::kCachestat : ResidencyMethod::kMincore;
  }
  r.method = method;
  if (r.length_bytes == 0) return r;
  if (method == ResidencyMethod::kCachestat) {
    DB_RETURN_IF_ERROR(ProbeCachestat(fd, path, &r));
  } else {
    DB_RETURN_IF_ERROR(ProbeMincore(fd, path, &r));
  }
  return r;
}

Result<ResidencyProbe> ResidencyProbe::Open(const std::string& path) {
  ResidencyProbe p;
  p.fd_.Reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!p.fd_.valid()) return ErrnoStatus("open " + path, errno);
  p.path_ = path;
  return p;
}

}  // namespace dualblade
