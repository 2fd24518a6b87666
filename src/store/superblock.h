// The superblock: the one 4 KiB record at byte 0 of a store that says what the store is and where
// its areas lie.
//
// On-disk layout (little-endian; offsets in bytes):
//     0  magic "DBLADE\0S" (8)     frozen forever
//     8  format_version (u32)      frozen forever
//    12  reserved, zero (u32)
//    16  uuid (16)
//    32  logical_block_bytes (u32) of the device at format time
//    36  block_bytes (u32)         allocation unit; every area is aligned to it
//    40  capacity_bytes (u64)      bytes of the device the store uses, from byte 0
//    48  meta_slot_bytes (u64)     size of each metadata slot
//    56  meta_slot_offset_bytes[2] (u64 x 2) slot A, slot B
//    72  data_offset_bytes (u64)
//    80  data_bytes (u64)
//    88  created_unix_s (u64)
//    96  reserved, zero up to 4088
//  4088  checksum (u64): XXH3-64 of bytes [0, 4088)
// The magic, the version and the checksum position never move, so any later version is recognised
// as "a newer store" (NotSupported) rather than as garbage.
//
// Thread-safety: plain values and stateless functions.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>

#include "common/status.h"

namespace dualblade::store {

inline constexpr uint32_t kStoreFormatVersion = 1;
inline constexpr uint64_t kSuperblockBytes = 4096;
inline constexpr std::array<uint8_t, 8> kSuperblockMagic = {'D', 'B', 'L', 'A', 'D', 'E', 0, 'S'};
// Areas start on 1 MiB boundaries: the erase-block-friendly alignment partitioning tools use.
inline constexpr uint64_t kAreaAlignBytes = 1ull << 20;
// The smallest store format accepts: superblock, two minimal metadata slots, some data.
inline constexpr uint64_t kMinStoreBytes = 16ull << 20;

using Uuid = std::array<uint8_t, 16>;

struct Superblock {
  uint32_t format_version = kStoreFormatVersion;
  Uuid uuid{};
  uint32_t logical_block_bytes = 0;
  uint32_t block_bytes = 0;
  uint64_t capacity_bytes = 0;
  uint64_t meta_slot_bytes = 0;
  std::array<uint64_t, 2> meta_slot_offset_bytes{};
  uint64_t data_offset_bytes = 0;
  uint64_t data_bytes = 0;
  uint64_t created_unix_s = 0;

  uint64_t data_blocks() const { return data_bytes / block_bytes; }
  uint64_t data_first_block() const { return data_offset_bytes / block_bytes; }
  bool operator==(const Superblock&) const = default;
};

// Lays out a store of up to device_bytes on a device with the given logical block size: metadata
// slots scaled with capacity (4 MiB to 256 MiB each), the data area after them, everything aligned.
// The uuid and creation time are left for the caller. InvalidArgument when the device is too small.
Result<Superblock> PlanLayout(uint64_t device_bytes, uint32_t logical_block_bytes);

// Checks every field for self-consistency: block sizes, every area inside the capacity, aligned,
// non-overlapping. Corruption with the reason when a check fails.
Status ValidateSuperblock(const Superblock& sb);

// Writes the superblock into out (kSuperblockBytes), checksum included.
void EncodeSuperblock(const Superblock& sb, std::span<uint8_t, kSuperblockBytes> out);

// True when bytes start with the superblock magic (whatever else is wrong with them).
bool HasSuperblockMagic(std::span<const uint8_t> bytes);

// Decodes and validates. InvalidArgument when the magic is absent (not a store), Corruption when
// the checksum or a bound is wrong, NotSupported for a newer format version. REQUIRES:
// bytes.size() >= kSuperblockBytes.
Result<Superblock> DecodeSuperblock(std::span<const uint8_t> bytes);

// Random (version 4) UUID from getrandom(2).
Result<Uuid> NewUuid();
// "0f8e...-..." in the usual 8-4-4-4-12 form.
std::string FormatUuid(const Uuid& uuid);

}  // namespace dualblade::store
