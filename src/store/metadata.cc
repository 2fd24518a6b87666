#include "store/metadata.h"

#include <cstring>

#include <xxhash.h>

#include "common/units.h"
#include "store/codec.h"

namespace dualblade::store {
namespace {

constexpr uint8_t kSlotMagic[8] = {'D', 'B', 'L', 'A', 'D', 'E', 'M', 'S'};
constexpr uint64_t kRecordHeaderBytes = 16;
constexpr size_t kChecksumOffset = 56;

uint64_t SlotChecksum(const uint8_t* slot, uint64_t payload_bytes) {
  XXH3_state_t* st = XXH3_createState();
  DB_CHECK(st != nullptr);
  XXH3_64bits_reset(st);
  XXH3_64bits_update(st, slot, kChecksumOffset);
  XXH3_64bits_update(st, slot + kSlotHeaderBytes, payload_bytes);
  uint64_t h = XXH3_64bits_digest(st);
  XXH3_freeState(st);
  return h;
}

}  // namespace

uint64_t EncodedPayloadBytes(const MetadataRecords& records) {
  uint64_t n = 0;
  for (const auto& [type, rec] : records) n += kRecordHeaderBytes + AlignUp(rec.bytes.size(), 8);
  return n;
}

Result<AlignedBuffer> EncodeSlot(const MetadataRecords& records, uint32_t slot_index,
                                 const Uuid& uuid, uint64_t sequence, uint64_t slot_bytes,
                                 uint32_t block_bytes) {
  DB_CHECK(slot_index < 2);
  const uint64_t payload = EncodedPayloadBytes(records);
  const uint64_t total = kSlotHeaderBytes + payload;
  if (total > slot_bytes) {
    return Status::NoSpace("the store metadata (" + FormatBytes(total) +
                           ") does not fit in its metadata slot (" + FormatBytes(slot_bytes) + ")");
  }
  AlignedBuffer buf(AlignUp(total, block_bytes));
  uint8_t* p = buf.data();
  std::memcpy(p, kSlotMagic, sizeof(kSlotMagic));
  PutU32(p + 8, kSlotFormatVersion);
  PutU32(p + 12, slot_index);
  std::memcpy(p + 16, uuid.data(), uuid.size());
  PutU64(p + 32, sequence);
  PutU64(p + 40, payload);
  PutU64(p + 48, records.size());
  uint8_t* r = p + kSlotHeaderBytes;
  for (const auto& [type, rec] : records) {
    DB_CHECK(type != 0);
    PutU32(r, type);
    PutU32(r + 4, rec.version);
    PutU64(r + 8, rec.bytes.size());
    if (!rec.bytes.empty()) std::memcpy(r + kRecordHeaderBytes, rec.bytes.data(), rec.bytes.size());
    r += kRecordHeaderBytes + AlignUp(rec.bytes.size(), 8);  // padding is already zero
  }
  PutU64(p + kChecksumOffset, SlotChecksum(p, payload));
  return buf;
}

Result<SlotHeader> DecodeSlotHeader(std::span<const uint8_t> bytes, uint32_t slot_index,
                                    const Uuid& uuid, uint64_t slot_bytes) {
  DB_CHECK(bytes.size() >= kSlotHeaderBytes);
  const uint8_t* p = bytes.data();
  const char* name = slot_index == 0 ? "metadata slot A" : "metadata slot B";
  if (std::memcmp(p, kSlotMagic, sizeof(kSlotMagic)) != 0) {
    return Status::Corruption(std::string(name) + " holds no metadata (bad magic)");
  }
  const uint32_t version = GetU32(p + 8);
  if (version > kSlotFormatVersion) {
    return Status::NotSupported(std::string(name) + " has format version " +
                                std::to_string(version) + ", newer than this dualblade supports (" +
                                std::to_string(kSlotFormatVersion) + ")");
  }
  if (version == 0) return Status::Corruption(std::string(name) + " has format version 0");
  SlotHeader h;
  h.slot_index = GetU32(p + 12);
  std::memcpy(h.uuid.data(), p + 16, h.uuid.size());
  h.sequence = GetU64(p + 32);
  h.payload_bytes = GetU64(p + 40);
  h.record_count = GetU64(p + 48);
  if (h.slot_index != slot_index) {
    return Status::Corruption(std::string(name) + " claims to be slot " +
                              std::to_string(h.slot_index));
  }
  if (h.uuid != uuid) {
    return Status::Corruption(std::string(name) + " belongs to another store (uuid " +
                              FormatUuid(h.uuid) + ")");
  }
  if (h.payload_bytes > slot_bytes - kSlotHeaderBytes || h.payload_bytes % 8 != 0) {
    return Status::Corruption(std::string(name) + " claims a payload of " +
                              std::to_string(h.payload_bytes) + " bytes, more than the slot holds");
  }
  if (h.record_count > h.payload_bytes / kRecordHeaderBytes) {
    return Status::Corruption(std::string(name) + " claims more records than its payload holds");
  }
  return h;
}

Result<MetadataRecords> DecodeSlotPayload(std::span<const uint8_t> bytes, const SlotHeader& h) {
  DB_CHECK(bytes.size() >= kSlotHeaderBytes + h.payload_bytes);
  const char* name = h.slot_index == 0 ? "metadata slot A" : "metadata slot B";
  const uint8_t* p = bytes.data();
  if (GetU64(p + kChecksumOffset) != SlotChecksum(p, h.payload_bytes)) {
    return Status::Corruption(std::string(name) + " is corrupt (checksum mismatch)");
  }
  // The checksum holds, so what follows can only fail for a writer bug; still checked, since
  // a crash is never the answer to bad bytes.
  MetadataRecords records;
  uint64_t pos = 0;
  const uint8_t* payload = p + kSlotHeaderBytes;
  while (pos < h.payload_bytes) {
    if (h.payload_bytes - pos < kRecordHeaderBytes) {
      return Status::Corruption(std::string(name) + " ends inside a record header");
    }
    const uint32_t type = GetU32(payload + pos);
    MetadataRecord rec;
    rec.version = GetU32(payload + pos + 4);
    const uint64_t len = GetU64(payload + pos + 8);
    pos += kRecordHeaderBytes;
    if (type == 0 || len > h.payload_bytes - pos || AlignUp(len, 8) > h.payload_bytes - pos) {
      return Status::Corruption(std::string(name) + " holds a record of type " +
                                std::to_string(type) + " that overruns the payload");
    }
    rec.bytes.assign(payload + pos, payload + pos + len);
    pos += AlignUp(len, 8);
    if (!records.emplace(type, std::move(rec)).second) {
      return Status::Corruption(std::string(name) + " holds two records of type " +
                                std::to_string(type));
    }
  }
  if (records.size() != h.record_count) {
    return Status::Corruption(std::string(name) + " holds " + std::to_string(records.size()) +
                              " records, its header says " + std::to_string(h.record_count));
  }
  return records;
}

}  // namespace dualblade::store
