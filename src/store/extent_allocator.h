// ExtentAllocator: hands out contiguous extents of blocks from a fixed range (the data area) and
// takes them back, coalescing neighbours.
//
// Placement rule: best fit. A request for n blocks takes the smallest free run of at least n
// blocks (ties: the lowest address), and carves the extent from that run's low edge, so what is
// left of the run stays one contiguous piece. Large runs are therefore only cut when nothing
// smaller fits, which keeps them large for the big segments that need them.
//
// Free may return any range of blocks that are all in use (a whole allocation or part of one);
// freeing a block that is already free (double free) or lies outside the range is an error, not
// a crash, and leaves the allocator unchanged.
//
// The free list persists as a metadata record (Serialize/Deserialize); a reopened store has the
// same allocation.
//
// Thread-safety: none; the owner serialises access.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "common/status.h"

namespace dualblade::store {

struct Extent {
  uint64_t start_block = 0;
  uint64_t len_blocks = 0;
  uint64_t end_block() const { return start_block + len_blocks; }
  bool operator==(const Extent&) const = default;
};

struct AllocatorStats {
  uint64_t total_blocks = 0;
  uint64_t free_blocks = 0;
  uint64_t used_blocks = 0;
  uint64_t largest_free_blocks = 0;
  uint64_t free_extents = 0;
  // 1 - largest_free / free: 0 when all free space is one run (or nothing is free).
  double fragmentation() const {
    return free_blocks == 0 ? 0.0
                            : 1.0 - static_cast<double>(largest_free_blocks) /
                                        static_cast<double>(free_blocks);
  }
};

class ExtentAllocator {
 public:
  // Version of the serialized record (metadata record kRecordAllocationTable).
  static constexpr uint32_t kRecordVersion = 1;

  // All of [first_block, first_block + num_blocks) free. REQUIRES: num_blocks > 0, no overflow.
  ExtentAllocator(uint64_t first_block, uint64_t num_blocks);

  ExtentAllocator(const ExtentAllocator&) = delete;
  ExtentAllocator& operator=(const ExtentAllocator&) = delete;
  ExtentAllocator(ExtentAllocator&&) = default;
  ExtentAllocator& operator=(ExtentAllocator&&) = default;

  // A contiguous extent of len_blocks. InvalidArgument for 0; NoSpace when no free run is long
  // enough (the allocator is unchanged).
  Result<Extent> Allocate(uint64_t len_blocks);

  // Returns an in-use range. InvalidArgument when it is empty, out of range or overlaps free
  // space; the allocator is unchanged on error.
  Status Free(const Extent& extent);

  AllocatorStats stats() const;
  uint64_t first_block() const { return first_block_; }
  uint64_t num_blocks() const { return num_blocks_; }
  // Free runs in address order (coalesced: no two touch).
  std::vector<Extent> FreeExtents() const;
  // True when every block of the extent is in use.
  bool IsAllocated(const Extent& extent) const;

  // Record payload: first_block, num_blocks, free-run count, then (start, len) per free run, all
  // u64 little-endian.
  std::vector<uint8_t> Serialize() const;
  // Rebuilds an allocator from a record, checking it describes exactly [first_block,
  // first_block + num_blocks) with sorted, in-range, non-empty, non-touching free runs.
  // Corruption otherwise; NotSupported for a newer record version.
  static Result<ExtentAllocator> Deserialize(uint32_t version, const std::vector<uint8_t>& bytes,
                                             uint64_t first_block, uint64_t num_blocks);

 private:
  void InsertFree(uint64_t start, uint64_t len);
  void EraseFree(std::map<uint64_t, uint64_t>::iterator it);

  uint64_t first_block_;
  uint64_t num_blocks_;
  uint64_t free_blocks_ = 0;
  std::map<uint64_t, uint64_t> by_start_;        // start -> len
  std::set<std::pair<uint64_t, uint64_t>> by_size_;  // (len, start), for best fit
};

}  // namespace dualblade::store
