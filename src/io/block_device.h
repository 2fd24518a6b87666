// BlockDevice: a raw block device or a preallocated regular file seen as a flat LBA space.
//
// It holds two descriptors on the same object, one O_DIRECT and one buffered, because both KV
// paths (DIRECT and PAGE) address the same LBAs: moving a chunk from one path to the other moves
// no data. Offsets and lengths are in bytes; direct I/O must be aligned to logical_block_bytes
// (offset and length) and to kDirectIoAlignBytes (buffer address).
//
// Thread-safety: the descriptors and DeviceInfo are immutable after Open, so concurrent I/O from
// several threads (each with its own IoEngine) is safe.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/unique_fd.h"

namespace dualblade {

struct FileExtent {
  uint64_t logical_bytes = 0;   // offset in the file
  uint64_t physical_bytes = 0;  // offset on the device under the filesystem
  uint64_t length_bytes = 0;
  // Preallocated but never written (FIEMAP_EXTENT_UNWRITTEN): reads return zeros without
  // touching the device, so a bandwidth measurement over it would measure nothing.
  bool unwritten = false;
};

struct DeviceInfo {
  std::string path;
  bool is_block_device = false;      // false: a regular file
  uint64_t size_bytes = 0;           // usable capacity (BLKGETSIZE64, or the file size)
  uint32_t logical_block_bytes = 512;   // BLKSSZGET; for files the underlying device's
  uint32_t physical_block_bytes = 4096; // BLKPBSZGET
  uint32_t max_transfer_bytes = 0;   // sysfs queue/max_sectors_kb, 0 when unknown
  bool rotational = false;           // sysfs queue/rotational
  // Kernel name of the block device that finally serves the I/O ("loop0", "vda", "nvme0n1"),
  // used to read /sys/block/<name>/stat. For a partition, its parent disk. Empty when unknown.
  std::string disk_name;
  // Files only: extents from FIEMAP and whether they form one physically contiguous run.
  std::vector<FileExtent> extents;
  bool extents_contiguous = false;
};

struct OpenOptions {
  bool read_only = false;
  // Files only: create the file if missing and preallocate it to this size with fallocate (no
  // sparse holes). 0 = the file must already exist; its current size is used.
  uint64_t create_size_bytes = 0;
};

class BlockDevice {
 public:
  // Opens PATH (a block device or a regular file). Fails with a clear Status for a missing path,
  // a directory, a character device, a read-only object opened for writing, an object smaller
  // than 4 KiB, or a filesystem that refuses O_DIRECT. A block device opened for writing is
  // claimed exclusively (O_EXCL): the kernel refuses it (Busy) while it or one of its partitions
  // is mounted or claimed by another open, this process's other BlockDevices included. A file's
  // size_bytes is rounded down to its logical block size. A file this call created is removed
  // again on failure.
  static Result<std::unique_ptr<BlockDevice>> Open(const std::string& path, const OpenOptions& opts);

  BlockDevice(const BlockDevice&) = delete;
  BlockDevice& operator=(const BlockDevice&) = delete;
  ~BlockDevice();

  const DeviceInfo& info() const { return info_; }
  int direct_fd() const { return direct_fd_.get(); }
  int buffered_fd() const { return buffered_fd_.get(); }
  bool read_only() const { return read_only_; }

  // Synchronous, retried helpers (short transfers and EINTR are resumed). For metadata and tests;
  // the data path goes through IoEngine.
  Status PreadDirect(uint64_t offset_bytes, std::span<uint8_t> buf) const;
  Status PwriteDirect(uint64_t offset_bytes, std::span<const uint8_t> buf) const;
  Status PreadBuffered(uint64_t offset_bytes, std::span<uint8_t> buf) const;
  Status PwriteBuffered(uint64_t offset_bytes, std::span<const uint8_t> buf) const;
  // Makes every completed write durable (fdatasync on both descriptors; a block device flush).
  Status Sync() const;

 private:
  BlockDevice() = default;

  DeviceInfo info_;
  UniqueFd direct_fd_;
  UniqueFd buffered_fd_;
  bool read_only_ = false;
};

}  // namespace dualblade
