// Helpers for the small text files of procfs, sysfs and cgroupfs: whole-file reads, a persistent
// descriptor re-read with pread at offset 0 (cheap sampling: no open/close per sample), and the
// tokenizing every memory parser shares.
//
// Thread-safety: ProcFile is not thread-safe (it owns one read buffer); the free functions are.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "common/unique_fd.h"

namespace dualblade {

// Reads a whole small text file. NotFound (with the path) when it does not exist.
Result<std::string> ReadTextFile(const std::string& path);

// Writes TEXT to an existing control file (cgroupfs, procfs) with one write(2), as the kernel
// expects for control files. Errors carry the path and errno.
Status WriteControlFile(const std::string& path, std::string_view text);

// A procfs/sysfs/cgroupfs file kept open for repeated sampling. Read() re-reads it from offset 0
// with pread: seq_file regenerates the content on every read at offset 0, so a persistent
// descriptor sees fresh values without the cost of open(2) and close(2).
class ProcFile {
 public:
  ProcFile() = default;
  ProcFile(ProcFile&&) noexcept = default;
  ProcFile& operator=(ProcFile&&) noexcept = default;
  ProcFile(const ProcFile&) = delete;
  ProcFile& operator=(const ProcFile&) = delete;

  // NotFound when the file does not exist (callers treat many of these files as optional).
  static Result<ProcFile> Open(const std::string& path);

  bool is_open() const { return fd_.valid(); }
  const std::string& path() const { return path_; }

  // Returns the current content. The view is valid until the next Read() or destruction.
  Result<std::string_view> Read();

 private:
  UniqueFd fd_;
  std::string path_;
  std::string buf_;
};

// Parses a decimal unsigned 64-bit integer occupying all of TEXT (no sign, no spaces).
std::optional<uint64_t> ParseU64(std::string_view text);

// Parses a non-negative decimal like "0.25" or "12" (PSI averages).
std::optional<double> ParseDecimal(std::string_view text);

// Removes leading and trailing spaces, tabs and newlines.
std::string_view TrimSpace(std::string_view text);

// Splits off the next line of *text (without its '\n'); false when *text is exhausted.
bool NextLine(std::string_view* text, std::string_view* line);

// Splits off the next whitespace-separated field of *text; false when none is left.
bool NextField(std::string_view* text, std::string_view* field);

}  // namespace dualblade
