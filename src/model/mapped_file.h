// MappedFile: a read-only, private memory mapping of a whole file (model weights are read in place,
// never copied). RAII: the mapping and its descriptor go away with the object.
// Thread-safety: immutable after Open; concurrent readers are safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "common/status.h"

namespace dualblade {

class MappedFile {
 public:
  MappedFile() = default;
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;

  // Maps `path` read-only. An empty file yields an empty span (no mapping).
  // Errors: NotFound / IOError from open, fstat or mmap, with the path in the message.
  static Result<MappedFile> Open(const std::string& path);

  std::span<const uint8_t> bytes() const { return {data_, size_bytes_}; }
  const uint8_t* data() const { return data_; }
  size_t size_bytes() const { return size_bytes_; }
  const std::string& path() const { return path_; }

 private:
  void Reset();

  const uint8_t* data_ = nullptr;
  size_t size_bytes_ = 0;
  std::string path_;
};

}  // namespace dualblade
