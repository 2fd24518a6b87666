#include "bench/device_stats.h"

#include "residency/proc_file.h"

namespace dualblade {

namespace {

uint64_t Delta(uint64_t before, uint64_t after) {
  return after >= before ? after - before : 0;
}

}  // namespace

Result<BlockDeviceStat> ParseBlockDeviceStat(std::string_view text, const std::string& path) {
  uint64_t v[11] = {};
  size_t n = 0;
  std::string_view field;
  while (n < 11 && NextField(&text, &field)) {
    std::optional<uint64_t> x = ParseU64(field);
    if (!x) return Status::Corruption(path + ": field " + std::to_string(n + 1) + " ('" +
                                      std::string(field) + "') is not a number");
    v[n++] = *x;
  }
  if (n < 11)
    return Status::Corruption(path + ": expected at least 11 fields, found " + std::to_string(n));
  BlockDeviceStat s;
  s.read_ios = v[0];
  s.read_merges = v[1];
  s.read_sectors = v[2];
  s.read_ticks_ms = v[3];
  s.write_ios = v[4];
  s.write_merges = v[5];
  s.write_sectors = v[6];
  s.write_ticks_ms = v[7];
  s.in_flight = v[8];
  s.io_ticks_ms = v[9];
  s.time_in_queue_ms = v[10];
  return s;
}

Result<BlockDeviceStat> ReadBlockDeviceStat(const std::string& disk_name,
                                            const std::string& sysfs_root) {
  if (disk_name.empty() || disk_name.find('/') != std::string::npos || disk_name == "." ||
      disk_name == "..")
    return Status::InvalidArgument("'" + disk_name + "' is not a block device name");
  const std::string path = sysfs_root + "/block/" + disk_name + "/stat";
  DB_ASSIGN_OR_RETURN(std::string text, ReadTextFile(path));
  return ParseBlockDeviceStat(text, path);
}

BlockDeviceDelta DiffBlockDeviceStat(const BlockDeviceStat& before, const BlockDeviceStat& after) {
  BlockDeviceDelta d;
  d.read_ios = Delta(before.read_ios, after.read_ios);
  d.read_bytes = Delta(before.read_sectors, after.read_sectors) * kStatSectorBytes;
  d.write_ios = Delta(before.write_ios, after.write_ios);
  d.write_bytes = Delta(before.write_sectors, after.write_sectors) * kStatSectorBytes;
  d.busy_ms = Delta(before.io_ticks_ms, after.io_ticks_ms);
  return d;
}

}  // namespace dualblade
