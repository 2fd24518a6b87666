#include "store/metadata.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>

#include <xxhash.h>

#include "common/units.h"
#include "store/codec.h"

namespace dualblade::store {
namespace {

constexpr uint64_t kSlot = 4 * kMiB;

MetadataRecords Sample() {
  MetadataRecords r;
  r[kRecordAllocationTable] = {1, {1, 2, 3, 4, 5}};
  r[kRecordSequenceIndex] = {3, std::vector<uint8_t>(100, 0xab)};
  r[77] = {9, {}};  // a record this version does not know survives untouched
  return r;
}

AlignedBuffer Enc(const MetadataRecords& r, uint32_t slot, const Uuid& u, uint64_t seq,
                  uint64_t slot_bytes, uint32_t block_bytes) {
  Result<AlignedBuffer> b = EncodeSlot(r, slot, u, seq, slot_bytes, block_bytes);
  EXPECT_TRUE(b.ok()) << b.status().ToString();
  return std::move(b).value();
}

struct Decoded {
  Status status;
  MetadataRecords records;
  SlotHeader header;
};

Decoded Decode(const AlignedBuffer& b, uint32_t slot, const Uuid& uuid) {
  Decoded d;
  Result<SlotHeader> h = DecodeSlotHeader(b.span(), slot, uuid, kSlot);
  if (!h.ok()) {
    d.status = h.status();
    return d;
  }
  d.header = *h;
  // The store reads as much as the header claims: whatever lies past the written blocks.
  AlignedBuffer full(std::max<uint64_t>(b.size(), AlignUp(kSlotHeaderBytes + h->payload_bytes, 4096)));
  std::memcpy(full.data(), b.data(), b.size());
  Result<MetadataRecords> r = DecodeSlotPayload(full.span(), *h);
  if (!r.ok()) {
    d.status = r.status();
    return d;
  }
  d.records = *r;
  return d;
}

TEST(MetadataSlotTest, RoundTrips) {
  Uuid u = *NewUuid();
  Result<AlignedBuffer> b = EncodeSlot(Sample(), 1, u, 42, kSlot, 4096);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->size(), 4096u);
  Decoded d = Decode(*b, 1, u);
  ASSERT_TRUE(d.status.ok()) << d.status.ToString();
  EXPECT_EQ(d.header.sequence, 42u);
  EXPECT_EQ(d.records, Sample());
}

TEST(MetadataSlotTest, EmptyPayloadRoundTrips) {
  Uuid u = *NewUuid();
  AlignedBuffer b = Enc({}, 0, u, 1, kSlot, 4096);
  Decoded d = Decode(b, 0, u);
  ASSERT_TRUE(d.status.ok()) << d.status.ToString();
  EXPECT_TRUE(d.records.empty());
}

TEST(MetadataSlotTest, PayloadTooLargeIsNoSpace) {
  MetadataRecords r;
  r[1] = {1, std::vector<uint8_t>(kSlot - kSlotHeaderBytes - 16 + 1)};
  Result<AlignedBuffer> b = EncodeSlot(r, 0, *NewUuid(), 1, kSlot, 4096);
  ASSERT_FALSE(b.ok());
  EXPECT_TRUE(b.status().IsNoSpace());
  r[1].bytes.resize(kSlot - kSlotHeaderBytes - 16);
  EXPECT_TRUE(EncodeSlot(r, 0, *NewUuid(), 1, kSlot, 4096).ok());
}

TEST(MetadataSlotTest, EveryBitFlipIsDetected) {
  Uuid u = *NewUuid();
  AlignedBuffer good = Enc(Sample(), 0, u, 7, kSlot, 4096);
  const uint64_t used = kSlotHeaderBytes + EncodedPayloadBytes(Sample());
  for (uint64_t byte = 0; byte < used; ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      AlignedBuffer b(good.size());
      std::memcpy(b.data(), good.data(), good.size());
      b.data()[byte] ^= static_cast<uint8_t>(1u << bit);
      Decoded d = Decode(b, 0, u);
      ASSERT_FALSE(d.status.ok()) << "flip of bit " << bit << " of byte " << byte;
    }
  }
}

TEST(MetadataSlotTest, WrongSlotOrStoreIsRefused) {
  Uuid u = *NewUuid();
  AlignedBuffer b = Enc(Sample(), 0, u, 7, kSlot, 4096);
  EXPECT_TRUE(Decode(b, 1, u).status.IsCorruption());
  EXPECT_TRUE(Decode(b, 0, *NewUuid()).status.IsCorruption());
}

TEST(MetadataSlotTest, HostileHeadersAreCorruption) {
  Uuid u = *NewUuid();
  AlignedBuffer b = Enc(Sample(), 0, u, 7, kSlot, 4096);
  PutU64(b.data() + 40, ~uint64_t{0} - 7);  // absurd payload length
  EXPECT_TRUE(Decode(b, 0, u).status.IsCorruption());
  PutU64(b.data() + 40, kSlot);  // one header too long
  EXPECT_TRUE(Decode(b, 0, u).status.IsCorruption());
  PutU32(b.data() + 8, kSlotFormatVersion + 1);
  EXPECT_TRUE(Decode(b, 0, u).status.IsNotSupported());
}

// A record whose length overruns the payload, under a valid checksum (a writer bug), is refused.
TEST(MetadataSlotTest, OverrunningRecordIsCorruption) {
  Uuid u = *NewUuid();
  MetadataRecords r;
  r[1] = {1, {1, 2, 3, 4, 5, 6, 7, 8}};
  AlignedBuffer b = Enc(r, 0, u, 7, kSlot, 4096);
  PutU64(b.data() + kSlotHeaderBytes + 8, 4096);  // record length
  // Recompute the checksum so only the structural check can catch it.
  Result<SlotHeader> h = DecodeSlotHeader(b.span(), 0, u, kSlot);
  ASSERT_TRUE(h.ok());
  XXH3_state_t* st = XXH3_createState();
  XXH3_64bits_reset(st);
  XXH3_64bits_update(st, b.data(), 56);
  XXH3_64bits_update(st, b.data() + kSlotHeaderBytes, h->payload_bytes);
  PutU64(b.data() + 56, XXH3_64bits_digest(st));
  XXH3_freeState(st);
  EXPECT_TRUE(Decode(b, 0, u).status.IsCorruption()) << Decode(b, 0, u).status.ToString();
}

// Random headers and payloads under a matching checksum: decoding returns a Status, never crashes
// or reads past the buffer (run under ASan to see the latter).
TEST(MetadataSlotTest, RandomContentNeverCrashes) {
  Uuid u = *NewUuid();
  std::mt19937_64 rng(7);
  for (int iter = 0; iter < 2000; ++iter) {
    AlignedBuffer b(8192);
    for (size_t i = 0; i < b.size(); ++i) b.data()[i] = static_cast<uint8_t>(rng());
    std::memcpy(b.data(), "DBLADEMS", 8);
    PutU32(b.data() + 8, 1);
    PutU32(b.data() + 12, 0);
    std::memcpy(b.data() + 16, u.data(), u.size());
    const uint64_t payload = 8 * (rng() % ((b.size() - kSlotHeaderBytes) / 8 + 1));
    PutU64(b.data() + 40, payload);                       // within the buffer
    PutU64(b.data() + 48, rng() % (payload / 16 + 1));    // record count
    Result<SlotHeader> h = DecodeSlotHeader(b.span(), 0, u, kSlot);
    ASSERT_TRUE(h.ok()) << h.status().ToString();
    XXH3_state_t* st = XXH3_createState();
    XXH3_64bits_reset(st);
    XXH3_64bits_update(st, b.data(), 56);
    XXH3_64bits_update(st, b.data() + kSlotHeaderBytes, h->payload_bytes);
    PutU64(b.data() + 56, XXH3_64bits_digest(st));
    XXH3_freeState(st);
    Result<MetadataRecords> r = DecodeSlotPayload(b.span(), *h);
    if (!r.ok()) {
      EXPECT_TRUE(r.status().IsCorruption()) << r.status().ToString();
    }
  }
}

}  // namespace
}  // namespace dualblade::store
