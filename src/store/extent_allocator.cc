#include "store/extent_allocator.h"

#include <iterator>
#include <string>

#include "common/check.h"
#include "store/codec.h"

namespace dualblade::store {
namespace {

std::string Describe(const Extent& e) {
  return "extent [" + std::to_string(e.start_block) + ", +" + std::to_string(e.len_blocks) + ")";
}

}  // namespace

ExtentAllocator::ExtentAllocator(uint64_t first_block, uint64_t num_blocks)
    : first_block_(first_block), num_blocks_(num_blocks) {
  uint64_t end;
  DB_CHECK(num_blocks > 0 && AddNoOverflow(first_block, num_blocks, &end));
  InsertFree(first_block, num_blocks);
}

void ExtentAllocator::InsertFree(uint64_t start, uint64_t len) {
  by_start_.emplace(start, len);
  by_size_.emplace(len, start);
  free_blocks_ += len;
}

void ExtentAllocator::EraseFree(std::map<uint64_t, uint64_t>::iterator it) {
  by_size_.erase({it->second, it->first});
  free_blocks_ -= it->second;
  by_start_.erase(it);
}

Result<Extent> ExtentAllocator::Allocate(uint64_t len_blocks) {
  if (len_blocks == 0) return Status::InvalidArgument("cannot allocate an empty extent");
  auto fit = by_size_.lower_bound({len_blocks, 0});
  if (fit == by_size_.end()) {
    const uint64_t largest = by_size_.empty() ? 0 : by_size_.rbegin()->first;
    return Status::NoSpace("no free extent of " + std::to_string(len_blocks) +
                           " blocks in the store (largest free extent: " + std::to_string(largest) +
                           " blocks, free: " + std::to_string(free_blocks_) + " blocks)");
  }
  const uint64_t run_start = fit->second, run_len = fit->first;
  EraseFree(by_start_.find(run_start));
  if (run_len > len_blocks) InsertFree(run_start + len_blocks, run_len - len_blocks);
  return Extent{run_start, len_blocks};
}

Status ExtentAllocator::Free(const Extent& e) {
  uint64_t end;
  if (e.len_blocks == 0) return Status::InvalidArgument("cannot free an empty extent");
  if (e.start_block < first_block_ || !AddNoOverflow(e.start_block, e.len_blocks, &end) ||
      end > first_block_ + num_blocks_) {
    return Status::InvalidArgument("cannot free " + Describe(e) + ": outside the data area");
  }
  // The free run at or after start, and the one before it.
  auto next = by_start_.lower_bound(e.start_block);
  if (next != by_start_.end() && next->first < end) {
    return Status::InvalidArgument("cannot free " + Describe(e) + ": part of it is already free");
  }
  auto prev = next == by_start_.begin() ? by_start_.end() : std::prev(next);
  if (prev != by_start_.end() && prev->first + prev->second > e.start_block) {
    return Status::InvalidArgument("cannot free " + Describe(e) + ": part of it is already free");
  }
  uint64_t start = e.start_block, len = e.len_blocks;
  if (prev != by_start_.end() && prev->first + prev->second == start) {
    start = prev->first;
    len += prev->second;
    EraseFree(prev);
  }
  if (next != by_start_.end() && next->first == end) {
    len += next->second;
    EraseFree(next);
  }
  InsertFree(start, len);
  return Status::OK();
}

AllocatorStats ExtentAllocator::stats() const {
  AllocatorStats s;
  s.total_blocks = num_blocks_;
  s.free_blocks = free_blocks_;
  s.used_blocks = num_blocks_ - free_blocks_;
  s.largest_free_blocks = by_size_.empty() ? 0 : by_size_.rbegin()->first;
  s.free_extents = by_start_.size();
  return s;
}

std::vector<Extent> ExtentAllocator::FreeExtents() const {
  std::vector<Extent> v;
  v.reserve(by_start_.size());
  for (const auto& [start, len] : by_start_) v.push_back({start, len});
  return v;
}

bool ExtentAllocator::IsAllocated(const Extent& e) const {
  uint64_t end;
  if (e.len_blocks == 0 || e.start_block < first_block_ ||
      !AddNoOverflow(e.start_block, e.len_blocks, &end) || end > first_block_ + num_blocks_) {
    return false;
  }
  auto next = by_start_.lower_bound(e.start_block);
  if (next != by_start_.end() && next->first < end) return false;
  if (next != by_start_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second > e.start_block) return false;
  }
  return true;
}

std::vector<uint8_t> ExtentAllocator::Serialize() const {
  std::vector<uint8_t> out(24 + 16 * by_start_.size());
  PutU64(out.data(), first_block_);
  PutU64(out.data() + 8, num_blocks_);
  PutU64(out.data() + 16, by_start_.size());
  uint8_t* p = out.data() + 24;
  for (const auto& [start, len] : by_start_) {
    PutU64(p, start);
    PutU64(p + 8, len);
    p += 16;
  }
  return out;
}

Result<ExtentAllocator> ExtentAllocator::Deserialize(uint32_t version,
                                                     const std::vector<uint8_t>& bytes,
                                                     uint64_t first_block, uint64_t num_blocks) {
  auto corrupt = [](const std::string& why) {
    return Status::Corruption("the allocation table is corrupt: " + why);
  };
  if (version > kRecordVersion) {
    return Status::NotSupported("allocation table version " + std::to_string(version) +
                                " is newer than this dualblade supports (" +
                                std::to_string(kRecordVersion) + ")");
  }
  if (version == 0) return corrupt("version 0");
  if (bytes.size() < 24) return corrupt("it is " + std::to_string(bytes.size()) + " bytes long");
  const uint8_t* p = bytes.data();
  if (GetU64(p) != first_block || GetU64(p + 8) != num_blocks) {
    return corrupt("it covers blocks [" + std::to_string(GetU64(p)) + ", +" +
                   std::to_string(GetU64(p + 8)) + "), the data area is [" +
                   std::to_string(first_block) + ", +" + std::to_string(num_blocks) + ")");
  }
  const uint64_t count = GetU64(p + 16);
  if (count > (bytes.size() - 24) / 16 || bytes.size() - 24 != count * 16) {
    return corrupt("it claims " + std::to_string(count) + " free extents in " +
                   std::to_string(bytes.size()) + " bytes");
  }
  ExtentAllocator a(first_block, num_blocks);
  a.EraseFree(a.by_start_.begin());
  uint64_t prev_end = first_block;
  const uint64_t area_end = first_block + num_blocks;
  for (uint64_t i = 0; i < count; ++i) {
    const uint64_t start = GetU64(p + 24 + 16 * i), len = GetU64(p + 32 + 16 * i);
    uint64_t end;
    if (len == 0 || !AddNoOverflow(start, len, &end) || start < prev_end || end > area_end ||
        (i > 0 && start == prev_end)) {
      return corrupt("free extent " + std::to_string(i) + " [" + std::to_string(start) + ", +" +
                     std::to_string(len) + ") is empty, out of order, out of range or not merged");
    }
    a.InsertFree(start, len);
    prev_end = end;
  }
  return a;
}

}  // namespace dualblade::store
