// StagingPool: a fixed set of equally sized, 4 KiB-aligned buffers, carved back to back out of one
// huge-page mapping (an IoBuffer), that reads land in before compute consumes them. The pool's
// total size is charged to the memory budget once, up front, so the pipeline can never hold more
// staging memory than the budget allowed, whatever the depth.
//
// TryAcquire never blocks: when every buffer is leased it returns nothing, and the caller (the
// prefetcher) simply issues no more reads until a lease comes back. A blocking acquire inside a
// single-threaded scheduler would wait for a release that only the scheduler itself can cause.
//
// Thread-safety: none. One thread owns the pool and every lease; a lease must not outlive its
// pool (checked at pool destruction).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "common/aligned_buffer.h"
#include "common/status.h"
#include "io/io_buffer.h"

namespace dualblade {

class StagingPool;

// Exclusive use of one pool buffer; returns it on destruction. Move-only.
class StagingLease {
 public:
  StagingLease() = default;
  ~StagingLease() { Release(); }
  StagingLease(const StagingLease&) = delete;
  StagingLease& operator=(const StagingLease&) = delete;
  StagingLease(StagingLease&& o) noexcept;
  StagingLease& operator=(StagingLease&& o) noexcept;

  bool valid() const { return pool_ != nullptr; }
  std::span<uint8_t> span() const { return span_; }
  uint8_t* data() const { return span_.data(); }
  size_t size() const { return span_.size(); }
  // Returns the buffer now (a no-op on an empty lease).
  void Release();

 private:
  friend class StagingPool;
  StagingLease(StagingPool* pool, uint32_t index, std::span<uint8_t> span)
      : pool_(pool), index_(index), span_(span) {}

  StagingPool* pool_ = nullptr;
  uint32_t index_ = 0;
  std::span<uint8_t> span_;
};

struct StagingPoolOptions {
  size_t buffer_bytes = 256 * 1024;  // one chunk's K+V, rounded up to the alignment
  size_t budget_bytes = 0;           // the pool holds floor(budget / buffer) buffers
};

struct StagingPoolStats {
  size_t acquires = 0;
  size_t exhausted = 0;  // TryAcquire calls that found no free buffer
  size_t peak_in_use_bytes = 0;
};

class StagingPool {
 public:
  // InvalidArgument when the buffer size is 0 or the budget does not hold one buffer (a pipeline
  // with no staging cannot make progress).
  static Result<std::unique_ptr<StagingPool>> Create(const StagingPoolOptions& opts);
  ~StagingPool();  // REQUIRES: every lease returned
  StagingPool(const StagingPool&) = delete;
  StagingPool& operator=(const StagingPool&) = delete;

  // A free buffer, or nothing when all are leased. Never blocks, never allocates.
  std::optional<StagingLease> TryAcquire();

  size_t buffer_bytes() const { return buffer_bytes_; }
  size_t capacity_buffers() const { return n_buffers_; }
  size_t capacity_bytes() const { return n_buffers_ * buffer_bytes_; }
  // Every buffer, back to back: one mapping, for registering with an I/O engine.
  std::span<uint8_t> arena() { return arena_.span().first(capacity_bytes()); }
  size_t free_buffers() const { return free_.size(); }
  size_t in_use_buffers() const { return n_buffers_ - free_.size(); }
  size_t in_use_bytes() const { return in_use_buffers() * buffer_bytes_; }
  bool full() const { return free_.size() == n_buffers_; }  // every buffer home
  const StagingPoolStats& stats() const { return stats_; }

 private:
  friend class StagingLease;
  explicit StagingPool(size_t buffer_bytes, size_t n_buffers);
  void Return(uint32_t index);

  size_t buffer_bytes_;
  // One huge-page-backed mapping carved into the buffers (IoBuffer says why: a direct read into
  // 4 KiB pages is a list of scattered segments the block layer cannot merge into large device
  // commands, and on a VM every page fault is expensive).
  IoBuffer arena_;
  size_t n_buffers_;
  std::vector<uint32_t> free_;  // LIFO: the most recently used buffer is the warmest in cache
  std::vector<bool> leased_;    // catches a double return
  StagingPoolStats stats_;
};

}  // namespace dualblade
