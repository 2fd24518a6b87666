#include "io/io_buffer.h"

#include <sys/mman.h>

#include <cstring>
#include <utility>

#include "common/check.h"
#include "common/units.h"

namespace dualblade {

namespace {
constexpr size_t kHugePageBytes = 2 * kMiB;  // x86-64 and arm64 (4 KiB granule) PMD size
}  // namespace

IoBuffer::IoBuffer(size_t size_bytes) : size_bytes_(size_bytes) {
  if (size_bytes == 0) return;
  const size_t rounded = AlignUp(size_bytes, kHugePageBytes);
  // Over-map by one huge page so an aligned start exists inside the mapping.
  map_bytes_ = rounded + kHugePageBytes;
  map_ = ::mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  DB_CHECK_MSG(map_ != MAP_FAILED, "mmap of an I/O buffer failed");
  data_ = reinterpret_cast<uint8_t*>(AlignUp(reinterpret_cast<uintptr_t>(map_), kHugePageBytes));
  // Advice before the first touch, so the faults below allocate huge pages; failure (no THP) only
  // costs the optimisation.
  (void)::madvise(data_, rounded, MADV_HUGEPAGE);
  std::memset(data_, 0, rounded);
}

IoBuffer::~IoBuffer() { Release(); }

void IoBuffer::Release() {
  if (map_ != nullptr) ::munmap(map_, map_bytes_);
  map_ = nullptr;
  data_ = nullptr;
  size_bytes_ = 0;
  map_bytes_ = 0;
}

IoBuffer::IoBuffer(IoBuffer&& o) noexcept
    : data_(std::exchange(o.data_, nullptr)),
      size_bytes_(std::exchange(o.size_bytes_, 0)),
      map_(std::exchange(o.map_, nullptr)),
      map_bytes_(std::exchange(o.map_bytes_, 0)) {}

IoBuffer& IoBuffer::operator=(IoBuffer&& o) noexcept {
  if (this != &o) {
    Release();
    data_ = std::exchange(o.data_, nullptr);
    size_bytes_ = std::exchange(o.size_bytes_, 0);
    map_ = std::exchange(o.map_, nullptr);
    map_bytes_ = std::exchange(o.map_bytes_, 0);
  }
  return *this;
}

}  // namespace dualblade
