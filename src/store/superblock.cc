#include "store/superblock.h"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/units.h"
#include "store/codec.h"

namespace dualblade::store {
namespace {

constexpr size_t kChecksumOffset = kSuperblockBytes - 8;
constexpr uint64_t kMinSlotBytes = 4ull << 20;
constexpr uint64_t kMaxSlotBytes = 256ull << 20;
// Logical block sizes the store accepts; the allocation unit is at least a page so that direct I/O
// buffers and offsets line up with every device.
constexpr uint32_t kMinBlockBytes = 4096;
constexpr uint32_t kMaxBlockBytes = 1u << 20;

bool IsPowerOfTwo(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

std::string Num(uint64_t v) { return std::to_string(v); }

// [offset, offset + len) lies inside [lo, capacity), aligned to align; sets *end.
Status CheckArea(const char* name, uint64_t offset, uint64_t len, uint64_t lo, uint64_t capacity,
                 uint64_t align, uint64_t* end) {
  if (len == 0) return Status::Corruption(std::string("superblock: the ") + name + " is empty");
  if (!IsAligned(offset, align) || !IsAligned(len, align)) {
    return Status::Corruption(std::string("superblock: the ") + name + " (offset " + Num(offset) +
                              ", " + Num(len) + " bytes) is not aligned to " + Num(align) + " bytes");
  }
  if (!AddNoOverflow(offset, len, end) || offset < lo || *end > capacity) {
    return Status::Corruption(std::string("superblock: the ") + name + " (offset " + Num(offset) +
                              ", " + Num(len) + " bytes) lies outside the store (" +
                              Num(capacity) + " bytes)");
  }
  return Status::OK();
}

}  // namespace

Result<Superblock> PlanLayout(uint64_t device_bytes, uint32_t logical_block_bytes) {
  if (!IsPowerOfTwo(logical_block_bytes) || logical_block_bytes < 512 ||
      logical_block_bytes > kMaxBlockBytes) {
    return Status::NotSupported("logical block size " + Num(logical_block_bytes) +
                                " is not supported (expected a power of two from 512 to 1 MiB)");
  }
  Superblock sb;
  sb.logical_block_bytes = logical_block_bytes;
  sb.block_bytes = std::max(kMinBlockBytes, logical_block_bytes);
  sb.capacity_bytes = AlignDown(device_bytes, sb.block_bytes);
  if (sb.capacity_bytes < kMinStoreBytes) {
    return Status::InvalidArgument("it is " + FormatBytes(device_bytes) + "; a store needs at least " +
                                   FormatBytes(kMinStoreBytes));
  }
  // Each slot holds the allocation table and later the sequence index. 1/512 of the capacity is
  // the worst-case free list with 4 KiB blocks (every other block free, 16 bytes per extent) and
  // costs 0.4% of the space; the clamp keeps small stores usable and huge ones sane.
  sb.meta_slot_bytes =
      std::clamp(AlignUp(sb.capacity_bytes / 512, kAreaAlignBytes), kMinSlotBytes, kMaxSlotBytes);
  sb.meta_slot_offset_bytes[0] = kAreaAlignBytes;
  sb.meta_slot_offset_bytes[1] = kAreaAlignBytes + sb.meta_slot_bytes;
  sb.data_offset_bytes = kAreaAlignBytes + 2 * sb.meta_slot_bytes;
  if (sb.data_offset_bytes + kAreaAlignBytes > sb.capacity_bytes) {
    return Status::InvalidArgument("it is " + FormatBytes(device_bytes) +
                                   ", too small for the metadata area and any data");
  }
  sb.data_bytes = sb.capacity_bytes - sb.data_offset_bytes;
  DB_CHECK(ValidateSuperblock(sb).ok());
  return sb;
}

Status ValidateSuperblock(const Superblock& sb) {
  if (!IsPowerOfTwo(sb.logical_block_bytes) || sb.logical_block_bytes < 512 ||
      sb.logical_block_bytes > kMaxBlockBytes) {
    return Status::Corruption("superblock: logical block size " + Num(sb.logical_block_bytes) +
                              " is not a power of two from 512 to 1 MiB");
  }
  if (!IsPowerOfTwo(sb.block_bytes) || sb.block_bytes < kMinBlockBytes ||
      sb.block_bytes > kMaxBlockBytes || sb.block_bytes < sb.logical_block_bytes) {
    return Status::Corruption("superblock: block size " + Num(sb.block_bytes) +
                              " is not a power of two from 4 KiB to 1 MiB and at least the "
                              "logical block size");
  }
  if (sb.capacity_bytes < kMinStoreBytes || !IsAligned(sb.capacity_bytes, sb.block_bytes)) {
    return Status::Corruption("superblock: capacity " + Num(sb.capacity_bytes) +
                              " is below the minimum or not a whole number of blocks");
  }
  if (sb.meta_slot_bytes < kMinSlotBytes || sb.meta_slot_bytes > kMaxSlotBytes) {
    return Status::Corruption("superblock: metadata slot size " + Num(sb.meta_slot_bytes) +
                              " is outside 4 MiB to 256 MiB");
  }
  // The superblock owns block 0; every area starts after it.
  const uint64_t lo = std::max<uint64_t>(kSuperblockBytes, sb.block_bytes);
  uint64_t end_a, end_b, end_d;
  DB_RETURN_IF_ERROR(CheckArea("metadata slot A", sb.meta_slot_offset_bytes[0], sb.meta_slot_bytes,
                               lo, sb.capacity_bytes, sb.block_bytes, &end_a));
  DB_RETURN_IF_ERROR(CheckArea("metadata slot B", sb.meta_slot_offset_bytes[1], sb.meta_slot_bytes,
                               lo, sb.capacity_bytes, sb.block_bytes, &end_b));
  DB_RETURN_IF_ERROR(CheckArea("data area", sb.data_offset_bytes, sb.data_bytes, lo,
                               sb.capacity_bytes, sb.block_bytes, &end_d));
  struct Range { const char* name; uint64_t lo, hi; };
  const Range r[3] = {{"metadata slot A", sb.meta_slot_offset_bytes[0], end_a},
                      {"metadata slot B", sb.meta_slot_offset_bytes[1], end_b},
                      {"data area", sb.data_offset_bytes, end_d}};
  for (int i = 0; i < 3; ++i) {
    for (int j = i + 1; j < 3; ++j) {
      if (r[i].lo < r[j].hi && r[j].lo < r[i].hi) {
        return Status::Corruption(std::string("superblock: the ") + r[i].name + " overlaps the " +
                                  r[j].name);
      }
    }
  }
  return Status::OK();
}

void EncodeSuperblock(const Superblock& sb, std::span<uint8_t, kSuperblockBytes> out) {
  uint8_t* p = out.data();
  std::memset(p, 0, kSuperblockBytes);
  std::memcpy(p, kSuperblockMagic.data(), kSuperblockMagic.size());
  PutU32(p + 8, sb.format_version);
  std::memcpy(p + 16, sb.uuid.data(), sb.uuid.size());
  PutU32(p + 32, sb.logical_block_bytes);
  PutU32(p + 36, sb.block_bytes);
  PutU64(p + 40, sb.capacity_bytes);
  PutU64(p + 48, sb.meta_slot_bytes);
  PutU64(p + 56, sb.meta_slot_offset_bytes[0]);
  PutU64(p + 64, sb.meta_slot_offset_bytes[1]);
  PutU64(p + 72, sb.data_offset_bytes);
  PutU64(p + 80, sb.data_bytes);
  PutU64(p + 88, sb.created_unix_s);
  PutU64(p + kChecksumOffset, Checksum({p, kChecksumOffset}));
}

bool HasSuperblockMagic(std::span<const uint8_t> bytes) {
  return bytes.size() >= kSuperblockMagic.size() &&
         std::memcmp(bytes.data(), kSuperblockMagic.data(), kSuperblockMagic.size()) == 0;
}

Result<Superblock> DecodeSuperblock(std::span<const uint8_t> bytes) {
  DB_CHECK(bytes.size() >= kSuperblockBytes);
  const uint8_t* p = bytes.data();
  if (!HasSuperblockMagic(bytes)) {
    return Status::InvalidArgument("it is not a dualblade store (no store superblock at byte 0)");
  }
  if (GetU64(p + kChecksumOffset) != Checksum({p, kChecksumOffset})) {
    return Status::Corruption("the store superblock is corrupt (checksum mismatch)");
  }
  Superblock sb;
  sb.format_version = GetU32(p + 8);
  if (sb.format_version > kStoreFormatVersion) {
    return Status::NotSupported("store format version " + Num(sb.format_version) +
                                " is newer than this dualblade supports (" +
                                Num(kStoreFormatVersion) + ")");
  }
  if (sb.format_version == 0) {
    return Status::Corruption("the store superblock is corrupt (format version 0)");
  }
  std::memcpy(sb.uuid.data(), p + 16, sb.uuid.size());
  sb.logical_block_bytes = GetU32(p + 32);
  sb.block_bytes = GetU32(p + 36);
  sb.capacity_bytes = GetU64(p + 40);
  sb.meta_slot_bytes = GetU64(p + 48);
  sb.meta_slot_offset_bytes[0] = GetU64(p + 56);
  sb.meta_slot_offset_bytes[1] = GetU64(p + 64);
  sb.data_offset_bytes = GetU64(p + 72);
  sb.data_bytes = GetU64(p + 80);
  sb.created_unix_s = GetU64(p + 88);
  DB_RETURN_IF_ERROR(ValidateSuperblock(sb));
  return sb;
}

Result<Uuid> NewUuid() {
  Uuid u;
  size_t got = 0;
  while (got < u.size()) {
    ssize_t n = ::getrandom(u.data() + got, u.size() - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("getrandom", errno);
    }
    got += static_cast<size_t>(n);
  }
  u[6] = static_cast<uint8_t>((u[6] & 0x0f) | 0x40);  // version 4
  u[8] = static_cast<uint8_t>((u[8] & 0x3f) | 0x80);  // RFC 4122 variant
  return u;
}

std::string FormatUuid(const Uuid& u) {
  char s[37];
  std::snprintf(s, sizeof(s),
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
                u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
                u[15]);
  return s;
}

}  // namespace dualblade::store
