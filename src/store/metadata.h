// Metadata slots: the two checksummed copies (A/B) of the store's mutable state.
//
// A slot holds a header and a payload. The payload is a set of typed, versioned, length-prefixed
// records, so new kinds of state (the sequence index) join without a format break: a reader keeps
// records it does not know and writes them back unchanged.
//
// Slot layout (little-endian; offsets in bytes from the slot start):
//     0  magic "DBLADEMS" (8)
//     8  slot_format_version (u32)
//    12  slot_index (u32)      0 = A, 1 = B; a slot copied to the wrong place is refused
//    16  store uuid (16)       a slot left over from an earlier store on the device is refused
//    32  sequence (u64)        the newer of two valid slots wins
//    40  payload_bytes (u64)
//    48  record_count (u64)
//    56  checksum (u64)        XXH3-64 of bytes [0, 56) followed by the payload
//    64  payload: records, each { type (u32), version (u32), length_bytes (u64), bytes,
//        zero padding to 8 }
//
// Thread-safety: plain values and stateless functions.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <vector>

#include "common/aligned_buffer.h"
#include "common/status.h"
#include "store/superblock.h"

namespace dualblade::store {

inline constexpr uint32_t kSlotFormatVersion = 1;
inline constexpr uint64_t kSlotHeaderBytes = 64;

// Record types. Values are on disk: never renumber.
enum RecordType : uint32_t {
  kRecordAllocationTable = 1,
  kRecordSequenceIndex = 2,  // reserved for the KV store's sequence index
};

struct MetadataRecord {
  uint32_t version = 0;
  std::vector<uint8_t> bytes;
  bool operator==(const MetadataRecord&) const = default;
};

// The payload of a slot: at most one record per type, kept in type order.
using MetadataRecords = std::map<uint32_t, MetadataRecord>;

struct SlotHeader {
  uint32_t slot_index = 0;
  Uuid uuid{};
  uint64_t sequence = 0;
  uint64_t payload_bytes = 0;
  uint64_t record_count = 0;
};

// Bytes the records take in a slot payload.
uint64_t EncodedPayloadBytes(const MetadataRecords& records);

// Encodes a whole slot into a direct-I/O buffer whose size is the encoded size rounded up to
// block_bytes (only that much is written). NoSpace when it does not fit in slot_bytes.
Result<AlignedBuffer> EncodeSlot(const MetadataRecords& records, uint32_t slot_index,
                                 const Uuid& uuid, uint64_t sequence, uint64_t slot_bytes,
                                 uint32_t block_bytes);

// Decodes the header from the slot's first kSlotHeaderBytes and checks what can be checked before
// reading the payload: magic, version, slot index, uuid and that the payload fits in slot_bytes.
// Corruption (or NotSupported for a newer slot format) otherwise.
Result<SlotHeader> DecodeSlotHeader(std::span<const uint8_t> bytes, uint32_t slot_index,
                                    const Uuid& uuid, uint64_t slot_bytes);

// Verifies the checksum over header and payload and parses the records.
// REQUIRES: bytes holds at least kSlotHeaderBytes + header.payload_bytes (from DecodeSlotHeader).
Result<MetadataRecords> DecodeSlotPayload(std::span<const uint8_t> bytes, const SlotHeader& header);

}  // namespace dualblade::store
