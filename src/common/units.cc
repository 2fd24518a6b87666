#include "common/units.h"

#include <cctype>
#include <cstdio>
#include <limits>

namespace dualblade {

Result<uint64_t> ParseSize(std::string_view text) {
  auto bad = [&] {
    // Built with append: GCC 12 warns falsely (-Wrestrict) on "'" + std::string(...).
    std::string msg = "'";
    msg.append(text).append("' is not a size (expected a number with an optional K, M, G or T suffix)");
    return Status::InvalidArgument(std::move(msg));
  };
  size_t i = 0;
  uint64_t value = 0;
  if (text.empty() || !std::isdigit(static_cast<unsigned char>(text[0]))) return bad();
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    uint64_t d = static_cast<uint64_t>(text[i] - '0');
    if (value > (std::numeric_limits<uint64_t>::max() - d) / 10) {
      return Status::InvalidArgument("size '" + std::string(text) + "' is too large");
    }
    value = value * 10 + d;
    ++i;
  }
  std::string suffix;
  for (; i < text.size(); ++i) suffix += static_cast<char>(std::toupper(static_cast<unsigned char>(text[i])));
  uint64_t mult = 1;
  if (suffix.empty() || suffix == "B") {
    mult = 1;
  } else if (suffix == "K" || suffix == "KB" || suffix == "KIB") {
    mult = kKiB;
  } else if (suffix == "M" || suffix == "MB" || suffix == "MIB") {
    mult = kMiB;
  } else if (suffix == "G" || suffix == "GB" || suffix == "GIB") {
    mult = kGiB;
  } else if (suffix == "T" || suffix == "TB" || suffix == "TIB") {
    mult = 1024 * kGiB;
  } else {
    return bad();
  }
  if (value != 0 && mult > std::numeric_limits<uint64_t>::max() / value) {
    return Status::InvalidArgument("size '" + std::string(text) + "' is too large");
  }
  return value * mult;
}

std::string FormatBytes(uint64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < kKiB) return std::to_string(bytes) + " B";
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024.0 && u < 5) {
    v /= 1024.0;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f %s", v, kUnits[u]);
  return buf;
}

std::string FormatBandwidth(double bytes_per_s) {
  char buf[32];
  if (bytes_per_s >= 1e9) {
    std::snprintf(buf, sizeof(buf), "%.2f GB/s", bytes_per_s / 1e9);
  } else {
    std::snprintf(buf, sizeof(buf), "%.1f MB/s", bytes_per_s / 1e6);
  }
  return buf;
}

}  // namespace dualblade
