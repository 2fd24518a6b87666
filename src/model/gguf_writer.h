// GgufWriter: builds a GGUF (version 3 by default) file: metadata of every value type, including
// nested arrays, and tensors padded to the alignment. Used by `mkmodel` and by tests that need
// crafted files. The file appears atomically: it is written to "<path>.tmp" and renamed, so a
// failed write leaves no half-written model behind.
// Thread-safety: none; one writer per thread.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "model/ggml_types.h"
#include "model/gguf.h"

namespace dualblade {

// A metadata value already encoded as GGUF bytes (its payload, without the type tag).
// Build them with the GgufEncode* helpers; arrays nest.
struct GgufEncodedValue {
  GgufType type = GgufType::kU8;
  GgufType elem_type = GgufType::kU8;  // arrays only
  std::string payload;
};

GgufEncodedValue GgufEncodeU8(uint8_t v);
GgufEncodedValue GgufEncodeI8(int8_t v);
GgufEncodedValue GgufEncodeU16(uint16_t v);
GgufEncodedValue GgufEncodeI16(int16_t v);
GgufEncodedValue GgufEncodeU32(uint32_t v);
GgufEncodedValue GgufEncodeI32(int32_t v);
GgufEncodedValue GgufEncodeU64(uint64_t v);
GgufEncodedValue GgufEncodeI64(int64_t v);
GgufEncodedValue GgufEncodeF32(float v);
GgufEncodedValue GgufEncodeF64(double v);
GgufEncodedValue GgufEncodeBool(bool v);
GgufEncodedValue GgufEncodeString(std::string_view v);
// An array of `elem_type`. REQUIRES: every element has type elem_type.
GgufEncodedValue GgufEncodeArray(GgufType elem_type, const std::vector<GgufEncodedValue>& elems);

class GgufWriter {
 public:
  // Produces a tensor's bytes at write time into `out` (exactly the tensor's size), so that a
  // multi-gigabyte model never has to sit in memory all at once.
  using FillFn = std::function<Status(std::span<uint8_t> out)>;

  explicit GgufWriter(uint32_t version = 3) : version_(version) {}
  GgufWriter(const GgufWriter&) = delete;
  GgufWriter& operator=(const GgufWriter&) = delete;

  // Setting a key twice replaces its value and keeps its first position.
  void Set(std::string_view key, GgufEncodedValue value);
  void SetU32(std::string_view key, uint32_t v) { Set(key, GgufEncodeU32(v)); }
  void SetI32(std::string_view key, int32_t v) { Set(key, GgufEncodeI32(v)); }
  void SetU64(std::string_view key, uint64_t v) { Set(key, GgufEncodeU64(v)); }
  void SetF32(std::string_view key, float v) { Set(key, GgufEncodeF32(v)); }
  void SetBool(std::string_view key, bool v) { Set(key, GgufEncodeBool(v)); }
  void SetString(std::string_view key, std::string_view v) { Set(key, GgufEncodeString(v)); }
  void SetStringArray(std::string_view key, std::span<const std::string> v);
  void SetF32Array(std::string_view key, std::span<const float> v);
  void SetI32Array(std::string_view key, std::span<const int32_t> v);
  // Sets general.alignment (a power of two) and pads tensor data to it.
  void SetAlignment(uint32_t alignment_bytes);

  // Adds a tensor of shape ne (ne[0] contiguous, 1 to 4 dimensions). InvalidArgument for a
  // duplicate name, a name of 64 bytes or more (ggml's limit), a bad shape, a row length that
  // is not a multiple of the type's block, or
  // (first overload) data whose size does not match.
  Status AddTensor(std::string_view name, GgmlType type, std::vector<int64_t> ne,
                   std::vector<uint8_t> data);
  Status AddTensor(std::string_view name, GgmlType type, std::vector<int64_t> ne, FillFn fill);

  // Writes the file (atomically, see above). Errors: IOError/NoSpace from the file system, or
  // whatever a FillFn returned.
  Status WriteFile(const std::string& path) const;
  // The same bytes in memory (tests).
  Result<std::vector<uint8_t>> WriteToMemory() const;

 private:
  struct Tensor {
    std::string name;
    GgmlType type;
    std::vector<int64_t> ne;
    uint64_t nbytes = 0;
    std::vector<uint8_t> data;  // used when fill is empty
    FillFn fill;
  };
  Status AddTensorImpl(std::string_view name, GgmlType type, std::vector<int64_t> ne,
                       std::vector<uint8_t> data, FillFn fill);
  // Calls emit(bytes) for the whole file in order.
  Status Emit(const std::function<Status(std::span<const uint8_t>)>& emit) const;

  uint32_t version_;
  uint32_t alignment_ = 32;
  std::vector<std::pair<std::string, GgufEncodedValue>> kv_;
  std::vector<Tensor> tensors_;
};

}  // namespace dualblade
