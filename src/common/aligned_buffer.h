// AlignedBuffer: an owned, zero-initialised heap block aligned for O_DIRECT (4 KiB by default).
// Thread-safety: none; move it between threads, do not share it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <utility>

#include "common/check.h"

namespace dualblade {

inline constexpr size_t kDirectIoAlignBytes = 4096;  // page size; satisfies every logical block size <= 4 KiB

class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  // Aborts when the allocation fails (out of memory is not a recoverable input error here).
  explicit AlignedBuffer(size_t size_bytes, size_t align_bytes = kDirectIoAlignBytes)
      : size_bytes_(size_bytes) {
    if (size_bytes == 0) return;
    size_t rounded = (size_bytes + align_bytes - 1) / align_bytes * align_bytes;
    data_ = static_cast<uint8_t*>(std::aligned_alloc(align_bytes, rounded));
    DB_CHECK_MSG(data_ != nullptr, "aligned_alloc failed");
    std::memset(data_, 0, rounded);
  }
  ~AlignedBuffer() { std::free(data_); }

  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  AlignedBuffer(AlignedBuffer&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), size_bytes_(std::exchange(o.size_bytes_, 0)) {}
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept {
    if (this != &o) {
      std::free(data_);
      data_ = std::exchange(o.data_, nullptr);
      size_bytes_ = std::exchange(o.size_bytes_, 0);
    }
    return *this;
  }

  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_bytes_; }
  bool empty() const { return size_bytes_ == 0; }
  std::span<uint8_t> span() { return {data_, size_bytes_}; }
  std::span<const uint8_t> span() const { return {data_, size_bytes_}; }

 private:
  uint8_t* data_ = nullptr;
  size_t size_bytes_ = 0;
};

}  // namespace dualblade
