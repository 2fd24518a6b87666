// What a device or file already holds, before format overwrites it: filesystems, partition
// tables, RAID/LVM/LUKS members and swap (all recognised by libblkid), and any other data in the
// first MiB (a dualblade store included). And, for `format --force`, erasing those signatures the
// way wipefs does, so nothing (mdadm, udev, LVM) mistakes the store for what it replaced.
//
// Thread-safety: stateless functions; each opens its own descriptor.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/status.h"

namespace dualblade::store {

// The bytes at the start of a device that must all be zero for format to proceed without --force.
inline constexpr uint64_t kCheckedPrefixBytes = 1ull << 20;

// A description of the first thing found ("an ext4 filesystem", "a gpt partition table",
// "a swap signature", "a dualblade store", "data in its first MiB (...)"), or nullopt when the
// object looks unused. Reads only.
Result<std::optional<std::string>> DescribeExistingContent(const std::string& path);

// Erases every signature libblkid finds (magic strings only, like wipefs -a) and syncs.
Status WipeSignatures(const std::string& path);

}  // namespace dualblade::store
