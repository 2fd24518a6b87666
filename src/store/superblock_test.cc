#include "store/superblock.h"

#include <gtest/gtest.h>

#include <array>
#include <cstring>

#include "common/units.h"
#include "store/codec.h"

namespace dualblade::store {
namespace {

Superblock Sample() {
  Result<Superblock> sb = PlanLayout(2 * kGiB, 512);
  EXPECT_TRUE(sb.ok()) << sb.status().ToString();
  Superblock s = *sb;
  s.uuid = *NewUuid();
  s.created_unix_s = 1700000000;
  return s;
}

std::array<uint8_t, kSuperblockBytes> Encode(const Superblock& sb) {
  std::array<uint8_t, kSuperblockBytes> b;
  EncodeSuperblock(sb, std::span<uint8_t, kSuperblockBytes>(b));
  return b;
}

TEST(SuperblockTest, RoundTrips) {
  Superblock sb = Sample();
  auto bytes = Encode(sb);
  Result<Superblock> back = DecodeSuperblock(bytes);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, sb);
}

TEST(SuperblockTest, PlanLayoutScalesSlotsAndAligns) {
  Superblock small = *PlanLayout(kMinStoreBytes, 512);
  EXPECT_EQ(small.meta_slot_bytes, 4 * kMiB);
  EXPECT_EQ(small.block_bytes, 4096u);
  EXPECT_EQ(small.data_offset_bytes, kMiB + 8 * kMiB);
  EXPECT_EQ(small.data_offset_bytes + small.data_bytes, small.capacity_bytes);

  Superblock big = *PlanLayout(64 * kGiB + 123, 4096);
  EXPECT_EQ(big.meta_slot_bytes, 128 * kMiB);
  EXPECT_EQ(big.capacity_bytes, 64 * kGiB);  // the odd tail is left unused
  Superblock huge = *PlanLayout(uint64_t{1} << 42, 4096);
  EXPECT_EQ(huge.meta_slot_bytes, 256 * kMiB);

  Superblock odd = *PlanLayout(kGiB, 8192);
  EXPECT_EQ(odd.block_bytes, 8192u);
  EXPECT_TRUE(ValidateSuperblock(odd).ok());
}

TEST(SuperblockTest, PlanLayoutRejectsTooSmallAndOddBlockSizes) {
  Result<Superblock> r = PlanLayout(kMinStoreBytes - 1, 512);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsInvalidArgument());
  EXPECT_NE(r.status().message().find("at least 16.0 MiB"), std::string::npos)
      << r.status().message();
  EXPECT_TRUE(PlanLayout(kGiB, 1000).status().IsNotSupported());
  EXPECT_TRUE(PlanLayout(kGiB, 256).status().IsNotSupported());
}

TEST(SuperblockTest, EveryBitFlipIsDetected) {
  const auto good = Encode(Sample());
  for (size_t byte = 0; byte < kSuperblockBytes; ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      auto bytes = good;
      bytes[byte] ^= static_cast<uint8_t>(1u << bit);
      Result<Superblock> r = DecodeSuperblock(bytes);
      ASSERT_FALSE(r.ok()) << "flip of bit " << bit << " of byte " << byte << " went unnoticed";
      if (byte < kSuperblockMagic.size()) {
        EXPECT_TRUE(r.status().IsInvalidArgument()) << r.status().ToString();
      } else {
        EXPECT_TRUE(r.status().IsCorruption()) << byte << ": " << r.status().ToString();
      }
    }
  }
}

TEST(SuperblockTest, NewerVersionIsNotSupported) {
  Superblock sb = Sample();
  sb.format_version = kStoreFormatVersion + 1;
  auto bytes = Encode(sb);
  Result<Superblock> r = DecodeSuperblock(bytes);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsNotSupported());
  EXPECT_EQ(r.status().message(), "store format version 2 is newer than this dualblade supports (1)");
}

TEST(SuperblockTest, VersionZeroIsCorrupt) {
  Superblock sb = Sample();
  sb.format_version = 0;
  auto bytes = Encode(sb);
  EXPECT_TRUE(DecodeSuperblock(bytes).status().IsCorruption());
}

// Each field, set to a bad value under a valid checksum, is caught by the bound checks.
TEST(SuperblockTest, BadBoundsAreCorruption) {
  const Superblock base = Sample();
  using Mutate = void (*)(Superblock&);
  const Mutate cases[] = {
      [](Superblock& s) { s.logical_block_bytes = 0; },
      [](Superblock& s) { s.logical_block_bytes = 768; },
      [](Superblock& s) { s.block_bytes = 512; },
      [](Superblock& s) { s.block_bytes = 12288; },
      [](Superblock& s) { s.logical_block_bytes = 8192; },  // above block_bytes
      [](Superblock& s) { s.capacity_bytes = 0; },
      [](Superblock& s) { s.capacity_bytes += 100; },
      [](Superblock& s) { s.capacity_bytes -= 4096; },  // data area now ends past it
      [](Superblock& s) { s.meta_slot_bytes = 0; },
      [](Superblock& s) { s.meta_slot_bytes = uint64_t{1} << 40; },
      [](Superblock& s) { s.meta_slot_bytes += 4096; },  // A now overlaps B
      [](Superblock& s) { s.meta_slot_offset_bytes[0] = 0; },  // on the superblock
      [](Superblock& s) { s.meta_slot_offset_bytes[0] += 512; },
      [](Superblock& s) { s.meta_slot_offset_bytes[1] = s.meta_slot_offset_bytes[0]; },
      [](Superblock& s) { s.meta_slot_offset_bytes[1] = ~uint64_t{0} - 4095; },  // overflows
      [](Superblock& s) { s.data_offset_bytes -= 4096; },  // overlaps slot B
      [](Superblock& s) { s.data_offset_bytes = s.capacity_bytes; },
      [](Superblock& s) { s.data_bytes = 0; },
      [](Superblock& s) { s.data_bytes = ~uint64_t{0} - 4095; },
      [](Superblock& s) { s.data_bytes += 4096; },
  };
  int i = 0;
  for (Mutate m : cases) {
    Superblock sb = base;
    m(sb);
    auto bytes = Encode(sb);
    Result<Superblock> r = DecodeSuperblock(bytes);
    ASSERT_FALSE(r.ok()) << "case " << i;
    EXPECT_TRUE(r.status().IsCorruption()) << "case " << i << ": " << r.status().ToString();
    ++i;
  }
}

TEST(SuperblockTest, UuidsAreRandomAndFormatted) {
  Uuid a = *NewUuid(), b = *NewUuid();
  EXPECT_NE(a, b);
  std::string s = FormatUuid(a);
  ASSERT_EQ(s.size(), 36u);
  EXPECT_EQ(s[8], '-');
  EXPECT_EQ(s[14], '4');
}

TEST(CodecTest, LittleEndian) {
  uint8_t b[8];
  PutU64(b, 0x0102030405060708ull);
  EXPECT_EQ(b[0], 0x08);
  EXPECT_EQ(b[7], 0x01);
  EXPECT_EQ(GetU64(b), 0x0102030405060708ull);
  PutU32(b, 0xa1b2c3d4u);
  EXPECT_EQ(b[0], 0xd4);
  EXPECT_EQ(GetU32(b), 0xa1b2c3d4u);
}

}  // namespace
}  // namespace dualblade::store
