// Size parsing and formatting shared by every command: "128K", "1M", "4G" are powers of 1024.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace dualblade {

inline constexpr uint64_t kKiB = 1024;
inline constexpr uint64_t kMiB = 1024 * kKiB;
inline constexpr uint64_t kGiB = 1024 * kMiB;

// Parses "4096", "128K", "1M", "2G", "1T" (also "128KiB", "1MB", lower case): powers of 1024.
// Rejects empty input, garbage, negative numbers and values that overflow 64 bits.
Result<uint64_t> ParseSize(std::string_view text);

// 1536 -> "1.5 KiB", 4194304 -> "4.0 MiB"; below 1 KiB prints bytes ("512 B").
std::string FormatBytes(uint64_t bytes);

// Bytes per second -> "1.93 GB/s" (decimal, as fio and device datasheets print bandwidth).
std::string FormatBandwidth(double bytes_per_s);

inline constexpr uint64_t AlignUp(uint64_t v, uint64_t align) { return (v + align - 1) / align * align; }
inline constexpr uint64_t AlignDown(uint64_t v, uint64_t align) { return v / align * align; }
inline constexpr bool IsAligned(uint64_t v, uint64_t align) { return v % align == 0; }

}  // namespace dualblade
