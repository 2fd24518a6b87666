// GgufFile: a parsed, memory-mapped GGUF model file (versions 2 and 3, little-endian), the
// format llama.cpp reads and writes: a header, typed key/value metadata, tensor descriptions,
// then the tensor data at an aligned offset.
//
// Every count, length, offset and size read from the file is checked against the file's size
// before it is used: a truncated or corrupt file yields a Corruption status naming what is wrong,
// never a crash or a read outside the mapping. Tensor data and strings are not copied: views and
// pointers returned here point into the mapping and live as long as the GgufFile.
//
// Thread-safety: immutable after Open/Parse; any number of threads may read concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "model/ggml_types.h"
#include "model/mapped_file.h"

namespace dualblade {

// Metadata value types (gguf.h `enum gguf_type`; the numbers are part of the file format).
enum class GgufType : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};

// "u32", "string", "array"; "type 77" for unknown numbers.
std::string GgufTypeName(GgufType t);
// Bytes of one scalar of type t (1, 2, 4 or 8); 0 for string and array.
size_t GgufScalarSize(GgufType t);

// One metadata value. Scalars are widened into `u64` (unsigned and bool), `i64` (signed) or `f64`
// (floats); strings are views into the file; arrays keep their raw element bytes (scalar
// elements), views (string elements) or parsed values (nested arrays).
struct GgufValue {
  GgufType type = GgufType::kU8;
  uint64_t u64 = 0;
  int64_t i64 = 0;
  double f64 = 0;
  std::string_view str;

  // Arrays only.
  GgufType elem_type = GgufType::kU8;
  uint64_t count = 0;
  const uint8_t* raw = nullptr;             // scalar elements, little-endian, unaligned
  std::vector<std::string_view> strings;    // string elements
  std::vector<GgufValue> arrays;            // array elements

  bool is_integer() const;
  bool is_float() const { return type == GgufType::kF32 || type == GgufType::kF64; }
  // Element i of a scalar array, widened as above. REQUIRES: array of scalars, i < count.
  uint64_t ElemU64(uint64_t i) const;
  int64_t ElemI64(uint64_t i) const;
  double ElemF64(uint64_t i) const;
  // Short human-readable form for `info` and logs; long arrays are elided after `max_elems`.
  std::string ToString(size_t max_elems = 8) const;
};

// One tensor description, with its data resolved and bounds-checked.
struct GgufTensor {
  std::string_view name;
  GgmlType type = GgmlType::kF32;
  uint32_t n_dims = 0;
  int64_t ne[4] = {1, 1, 1, 1};  // ne[0] is the contiguous dimension (row length)
  uint64_t offset_bytes = 0;     // from the start of the data section
  const uint8_t* data = nullptr; // into the mapping; valid for the GgufFile's lifetime
  uint64_t nbytes = 0;

  int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
  int64_t n_rows() const { return ne[1] * ne[2] * ne[3]; }
  size_t row_bytes() const { return RowSizeBytes(type, ne[0]); }
  // "[256, 128]"
  std::string ShapeString() const;
};

class GgufFile {
 public:
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  // Maps and parses `path`. Errors: NotFound/IOError for the file itself, Corruption (with the
  // path) for anything malformed, NotSupported for GGUF version 1 or big-endian files.
  static Result<std::unique_ptr<GgufFile>> Open(const std::string& path);

  // Parses bytes the caller keeps alive for the GgufFile's lifetime (tests, in-memory files).
  static Result<std::unique_ptr<GgufFile>> Parse(std::span<const uint8_t> bytes);

  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  uint64_t data_offset_bytes() const { return data_offset_bytes_; }
  std::span<const uint8_t> bytes() const { return bytes_; }

  // ---- Metadata -----------------------------------------------------------------------------
  // Keys in file order.
  const std::vector<std::pair<std::string_view, GgufValue>>& metadata() const { return kv_; }
  bool Has(std::string_view key) const { return Find(key) != nullptr; }
  // nullptr when absent.
  const GgufValue* Find(std::string_view key) const;

  // Typed getters: NotFound when the key is absent; InvalidArgument when its type does not fit
  // (integers convert between widths only when the value is in range; F32 accepts f64 too).
  Result<uint32_t> GetU32(std::string_view key) const;
  Result<int32_t> GetI32(std::string_view key) const;
  Result<uint64_t> GetU64(std::string_view key) const;
  Result<int64_t> GetI64(std::string_view key) const;
  Result<float> GetF32(std::string_view key) const;
  Result<double> GetF64(std::string_view key) const;
  Result<bool> GetBool(std::string_view key) const;
  Result<std::string_view> GetString(std::string_view key) const;

  // Arrays. The string array is a view into this object (no copy of 150k token strings);
  // numeric arrays are copied out because their bytes may be unaligned in the file.
  // GetI32Array accepts any integer element type whose values fit; GetF32Array accepts f32/f64.
  Result<std::span<const std::string_view>> GetStringArray(std::string_view key) const;
  Result<std::vector<float>> GetF32Array(std::string_view key) const;
  Result<std::vector<int32_t>> GetI32Array(std::string_view key) const;
  Result<std::vector<uint32_t>> GetU32Array(std::string_view key) const;
  // Element count and element type of an array.
  Result<uint64_t> GetArrayLength(std::string_view key) const;

  // ---- Tensors ------------------------------------------------------------------------------
  // In file order.
  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  // nullptr when absent.
  const GgufTensor* FindTensor(std::string_view name) const;

 private:
  GgufFile() = default;
  class Parser;

  std::optional<MappedFile> file_;
  std::span<const uint8_t> bytes_;
  uint32_t version_ = 0;
  uint32_t alignment_ = 32;
  uint64_t data_offset_bytes_ = 0;
  std::vector<std::pair<std::string_view, GgufValue>> kv_;
  std::unordered_map<std::string_view, size_t> kv_index_;
  std::vector<GgufTensor> tensors_;
  std::unordered_map<std::string_view, size_t> tensor_index_;
};

}  // namespace dualblade
