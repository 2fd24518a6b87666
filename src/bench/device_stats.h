// Device-level I/O counters of a block device, from /sys/block/<disk>/stat, sampled before and
// after a run so a benchmark reports what the device really did (bytes read, requests, busy
// time), not what the program believes it asked for: readahead, page-cache misses and
// write-back all show up here.
//
// The stat file (Documentation/block/stat.rst) holds, in order: read I/Os, read merges, read
// sectors, read ticks (ms), write I/Os, write merges, write sectors, write ticks, in flight,
// io_ticks (ms the device had I/O in flight: its busy time), time in queue; newer kernels append
// discard (4.18) and flush (5.5) fields. Sectors are always 512 bytes, whatever the device's
// logical block size.
//
// Thread-safety: stateless functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace dualblade {

inline constexpr uint64_t kStatSectorBytes = 512;

struct BlockDeviceStat {
  uint64_t read_ios = 0;
  uint64_t read_merges = 0;
  uint64_t read_sectors = 0;
  uint64_t read_ticks_ms = 0;
  uint64_t write_ios = 0;
  uint64_t write_merges = 0;
  uint64_t write_sectors = 0;
  uint64_t write_ticks_ms = 0;
  uint64_t in_flight = 0;
  uint64_t io_ticks_ms = 0;  // busy time
  uint64_t time_in_queue_ms = 0;

  uint64_t read_bytes() const { return read_sectors * kStatSectorBytes; }
  uint64_t write_bytes() const { return write_sectors * kStatSectorBytes; }
};

// What a device did between two samples.
struct BlockDeviceDelta {
  uint64_t read_ios = 0;
  uint64_t read_bytes = 0;
  uint64_t write_ios = 0;
  uint64_t write_bytes = 0;
  uint64_t busy_ms = 0;
};

// Parses the text of a stat file; PATH names it in errors. Corruption for fewer than the 11
// classic fields or a field that is not a number.
Result<BlockDeviceStat> ParseBlockDeviceStat(std::string_view text, const std::string& path);

// Reads SYSFS_ROOT/block/DISK_NAME/stat ("/sys" on a live system). InvalidArgument for an empty
// or path-like name; NotFound when the device has no stat file.
Result<BlockDeviceStat> ReadBlockDeviceStat(const std::string& disk_name,
                                            const std::string& sysfs_root = "/sys");

// AFTER - BEFORE, field by field; a counter that went backwards (device re-created) gives 0.
BlockDeviceDelta DiffBlockDeviceStat(const BlockDeviceStat& before, const BlockDeviceStat& after);

}  // namespace dualblade
