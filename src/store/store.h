// Store: an opened dualblade store (a raw block device or a preallocated file): its superblock,
// its allocator over the data area, and the metadata records committed to the A/B slots.
//
// Crash safety: Commit writes the older slot, syncs, and only then counts the new state; Open
// picks the newest slot whose checksum holds, so a crash at any instant leaves the previous
// committed state readable. Callers make data durable (BlockDevice::Sync) before committing
// metadata that names it. Opening never writes.
//
// Thread-safety: none; one owner. The BlockDevice may be shared with I/O engines on other threads.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "common/status.h"
#include "io/block_device.h"
#include "store/extent_allocator.h"
#include "store/metadata.h"
#include "store/superblock.h"

namespace dualblade::store {

struct FormatOptions {
  // Files: the size to create (required for a new or empty file; must match an existing one).
  // Block devices: optional cap on the capacity used (at most the device size). 0 = none.
  uint64_t size_bytes = 0;
  // Overwrite whatever the device or file holds (filesystems, partition tables, an older store).
  bool force = false;
};

struct StoreOpenOptions {
  bool read_only = true;
};

// Where a store's data area lies, for tools that drive the device directly (iobench).
struct DataArea {
  uint64_t offset_bytes = 0;
  uint64_t len_bytes = 0;
  uint32_t block_bytes = 0;
};

class Store {
 public:
  // Creates a store on path: checks (unless opts.force) that it holds nothing libblkid or the
  // first-MiB check recognises, then writes an empty metadata slot and the superblock. On failure
  // a file this call created is removed again. Returns the superblock written.
  static Result<Superblock> Format(const std::string& path, const FormatOptions& opts);

  // Opens and verifies an existing store. NotFound/InvalidArgument for a missing path or a
  // non-store, Corruption for a damaged one, NotSupported for a newer format. Writes nothing.
  static Result<std::unique_ptr<Store>> Open(const std::string& path, const StoreOpenOptions& opts);

  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const Superblock& superblock() const { return sb_; }
  BlockDevice& device() { return *dev_; }
  const BlockDevice& device() const { return *dev_; }
  ExtentAllocator& allocator() { return allocator_; }
  const ExtentAllocator& allocator() const { return allocator_; }
  DataArea data_area() const { return {sb_.data_offset_bytes, sb_.data_bytes, sb_.block_bytes}; }

  // Byte offset and length on the device of an extent from allocator().
  uint64_t OffsetBytes(const Extent& e) const { return e.start_block * sb_.block_bytes; }
  uint64_t LengthBytes(const Extent& e) const { return e.len_blocks * sb_.block_bytes; }

  // Records other than the allocation table (the sequence index), committed with it.
  const MetadataRecord* FindRecord(uint32_t type) const;
  void SetRecord(uint32_t type, MetadataRecord record);

  // Persists the allocator and every record into the older slot and syncs. On error the previous
  // committed state stays the current one (a later Commit retries). NoSpace when the metadata
  // outgrows a slot; InvalidArgument for a read-only store.
  Status Commit();

  int active_slot() const { return active_slot_; }  // 0 = A, 1 = B
  uint64_t sequence() const { return sequence_; }

 private:
  Store(std::unique_ptr<BlockDevice> dev, const Superblock& sb, ExtentAllocator allocator)
      : dev_(std::move(dev)), sb_(sb), allocator_(std::move(allocator)) {}

  std::unique_ptr<BlockDevice> dev_;
  Superblock sb_;
  ExtentAllocator allocator_;
  MetadataRecords records_;
  int active_slot_ = 0;
  uint64_t sequence_ = 0;
};

// Opens the store at path read-only and returns where its data area lies.
Result<DataArea> ReadDataArea(const std::string& path);

}  // namespace dualblade::store
