// Runs the built dualblade binary with arguments and captures its exit status, stdout and stderr
// separately, and small file helpers for checking that a failed command wrote nothing.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dualblade::testing {

struct CliResult {
  int rc = -1;
  std::string out;
  std::string err;
};

// Runs `dualblade ARGS...`; each argument is shell-quoted.
CliResult RunDualblade(const std::vector<std::string>& args);

// Single-quotes s for /bin/sh.
std::string ShellQuote(const std::string& s);

// The whole content of a file or device (bounded by max_bytes), for before/after comparisons.
std::string ReadBytes(const std::string& path, uint64_t max_bytes = uint64_t{1} << 30);
// Overwrites bytes at offset in an existing file (no truncation).
void WriteBytes(const std::string& path, uint64_t offset, const std::string& bytes);
// A file of size_bytes zero bytes, preallocated.
void MakeZeroFile(const std::string& path, uint64_t size_bytes);

}  // namespace dualblade::testing
