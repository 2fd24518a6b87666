// Little-endian fixed-width encoding for everything the store writes to disk, independent of the
// host's byte order, plus the one checksum every on-disk record uses (XXH3, 64 bits).
// Thread-safety: stateless functions.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <span>

#include <xxhash.h>

namespace dualblade::store {

inline void PutU32(uint8_t* p, uint32_t v) {
  if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap32(v);
  std::memcpy(p, &v, sizeof(v));
}
inline void PutU64(uint8_t* p, uint64_t v) {
  if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap64(v);
  std::memcpy(p, &v, sizeof(v));
}
inline uint32_t GetU32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof(v));
  if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap32(v);
  return v;
}
inline uint64_t GetU64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof(v));
  if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap64(v);
  return v;
}

inline uint64_t Checksum(std::span<const uint8_t> bytes) {
  return XXH3_64bits(bytes.data(), bytes.size());
}

// a + b, or false when it overflows 64 bits (untrusted sizes from disk go through this).
inline bool AddNoOverflow(uint64_t a, uint64_t b, uint64_t* sum) {
  return !__builtin_add_overflow(a, b, sum);
}

}  // namespace dualblade::store
