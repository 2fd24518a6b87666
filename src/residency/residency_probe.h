// Measures how much of a file range (or of a block-device range, through a buffered descriptor)
// sits in the page cache, so the page-cache hit ratio of the KV store is measured, not guessed.
//
// Two methods, which tests check against each other:
//   cachestat(2)  Linux 6.5+: one syscall per range, also counts dirty, writeback and evicted
//                 pages; no mapping.
//   mincore(2)    every kernel: maps the range (no page is touched, so nothing is read) and
//                 asks which pages are cached, in windows of kMincoreWindowBytes.
// Both need the caller to own the file or be allowed to write it: since Linux 5.0 mincore
// reports every page of any other file as resident (and cachestat refuses), to close a side
// channel; mincore is refused here in that case rather than reporting a lie.
// On overlayfs, cachestat sees the overlay's empty cache; probe the underlying file instead.
//
// Thread-safety: ProbeResidency is stateless and may run on any thread; a ResidencyProbe only
// holds an immutable descriptor.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"
#include "common/unique_fd.h"

namespace dualblade {

enum class ResidencyMethod { kAuto, kCachestat, kMincore };
const char* ResidencyMethodName(ResidencyMethod m);  // "auto", "cachestat", "mincore"

struct PageCacheResidency {
  ResidencyMethod method = ResidencyMethod::kAuto;  // the method that answered
  uint64_t offset_bytes = 0;                        // the range probed, widened to whole pages
  uint64_t length_bytes = 0;    //   and clipped to the end of the file or device
  uint64_t resident_bytes = 0;  // cached pages in the range
  // cachestat only (has_page_states); 0 with mincore.
  bool has_page_states = false;
  uint64_t dirty_bytes = 0;
  uint64_t writeback_bytes = 0;
  uint64_t evicted_bytes = 0;           // once cached, since evicted
  uint64_t recently_evicted_bytes = 0;  // evicted and would still be cached with more memory

  double fraction() const {
    return length_bytes == 0
               ? 0.0
               : static_cast<double>(resident_bytes) / static_cast<double>(length_bytes);
  }
};

// mincore maps at most this much at a time (address space and its result vector stay small).
inline constexpr uint64_t kMincoreWindowBytes = 256ull << 20;

// Whether the running kernel implements cachestat(2) (probed once, then cached).
bool CachestatSupported();

// Probes [OFFSET_BYTES, OFFSET_BYTES + LENGTH_BYTES) of the file or block device open on FD
// (readable; LENGTH_BYTES 0 = to the end). PATH names it in errors. kAuto uses cachestat where
// the kernel has it, mincore otherwise. InvalidArgument when the offset is past the end;
// NotSupported for cachestat on an older kernel, or for mincore on a file the caller may not
// write (see above).
Result<PageCacheResidency> ProbeResidency(int fd, const std::string& path, uint64_t offset_bytes,
                                          uint64_t length_bytes,
                                          ResidencyMethod method = ResidencyMethod::kAuto);

// A path opened read-only for repeated probes.
class ResidencyProbe {
 public:
  static Result<ResidencyProbe> Open(const std::string& path);
  Result<PageCacheResidency> Probe(uint64_t offset_bytes, uint64_t length_bytes,
                                   ResidencyMethod method = ResidencyMethod::kAuto) const {
    return ProbeResidency(fd_.get(), path_, offset_bytes, length_bytes, method);
  }
  const std::string& path() const { return path_; }

 private:
  ResidencyProbe() = default;
  UniqueFd fd_;
  std::string path_;
};

}  // namespace dualblade
