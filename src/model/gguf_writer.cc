#include "model/gguf_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/unique_fd.h"
#include "common/units.h"

namespace dualblade {
namespace {

template <typename T>
GgufEncodedValue Scalar(GgufType type, T v) {
  GgufEncodedValue e;
  e.type = type;
  e.payload.resize(sizeof(T));
  std::memcpy(e.payload.data(), &v, sizeof(T));
  return e;
}

template <typename T>
void Append(std::string* s, T v) {
  s->append(reinterpret_cast<const char*>(&v), sizeof(T));
}

void AppendString(std::string* s, std::string_view v) {
  Append<uint64_t>(s, v.size());
  s->append(v);
}

}  // namespace

GgufEncodedValue GgufEncodeU8(uint8_t v) { return Scalar(GgufType::kU8, v); }
GgufEncodedValue GgufEncodeI8(int8_t v) { return Scalar(GgufType::kI8, v); }
GgufEncodedValue GgufEncodeU16(uint16_t v) { return Scalar(GgufType::kU16, v); }
GgufEncodedValue GgufEncodeI16(int16_t v) { return Scalar(GgufType::kI16, v); }
GgufEncodedValue GgufEncodeU32(uint32_t v) { return Scalar(GgufType::kU32, v); }
GgufEncodedValue GgufEncodeI32(int32_t v) { return Scalar(GgufType::kI32, v); }
GgufEncodedValue GgufEncodeU64(uint64_t v) { return Scalar(GgufType::kU64, v); }
GgufEncodedValue GgufEncodeI64(int64_t v) { return Scalar(GgufType::kI64, v); }
GgufEncodedValue GgufEncodeF32(float v) { return Scalar(GgufType::kF32, v); }
GgufEncodedValue GgufEncodeF64(double v) { return Scalar(GgufType::kF64, v); }
GgufEncodedValue GgufEncodeBool(bool v) { return Scalar<uint8_t>(GgufType::kBool, v ? 1 : 0); }

GgufEncodedValue GgufEncodeString(std::string_view v) {
  GgufEncodedValue e;
  e.type = GgufType::kString;
  AppendString(&e.payload, v);
  return e;
}

GgufEncodedValue GgufEncodeArray(GgufType elem_type, const std::vector<GgufEncodedValue>& elems) {
  GgufEncodedValue e;
  e.type = GgufType::kArray;
  e.elem_type = elem_type;
  Append<uint32_t>(&e.payload, static_cast<uint32_t>(elem_type));
  Append<uint64_t>(&e.payload, elems.size());
  for (const GgufEncodedValue& x : elems) {
    DB_CHECK_MSG(x.type == elem_type, "GGUF array elements must all have the array's type");
    e.payload += x.payload;
  }
  return e;
}

void GgufWriter::Set(std::string_view key, GgufEncodedValue value) {
  for (auto& [k, v] : kv_) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  kv_.emplace_back(std::string(key), std::move(value));
}

void GgufWriter::SetStringArray(std::string_view key, std::span<const std::string> v) {
  GgufEncodedValue e;
  e.type = GgufType::kArray;
  e.elem_type = GgufType::kString;
  Append<uint32_t>(&e.payload, static_cast<uint32_t>(GgufType::kString));
  Append<uint64_t>(&e.payload, v.size());
  for (const std::string& s : v) AppendString(&e.payload, s);
  Set(key, std::move(e));
}

namespace {
template <typename T>
GgufEncodedValue RawArray(GgufType elem, std::span<const T> v) {
  GgufEncodedValue e;
  e.type = GgufType::kArray;
  e.elem_type = elem;
  Append<uint32_t>(&e.payload, static_cast<uint32_t>(elem));
  Append<uint64_t>(&e.payload, v.size());
  e.payload.append(reinterpret_cast<const char*>(v.data()), v.size_bytes());
  return e;
}
}  // namespace

void GgufWriter::SetF32Array(std::string_view key, std::span<const float> v) {
  Set(key, RawArray(GgufType::kF32, v));
}

void GgufWriter::SetI32Array(std::string_view key, std::span<const int32_t> v) {
  Set(key, RawArray(GgufType::kI32, v));
}

void GgufWriter::SetAlignment(uint32_t alignment_bytes) {
  DB_CHECK(alignment_bytes != 0 && (alignment_bytes & (alignment_bytes - 1)) == 0);
  alignment_ = alignment_bytes;
  SetU32("general.alignment", alignment_bytes);
}

Status GgufWriter::AddTensorImpl(std::string_view name, GgmlType type, std::vector<int64_t> ne,
                                 std::vector<uint8_t> data, FillFn fill) {
  const std::string who = "tensor '" + std::string(name) + "'";
  for (const Tensor& t : tensors_) {
    if (t.name == name) return Status::InvalidArgument(who + " added twice");
  }
  // ggml keeps tensor names in a 64-byte buffer (GGML_MAX_NAME) and refuses longer ones.
  if (name.empty() || name.size() >= 64) {
    return Status::InvalidArgument(who + " name must be 1 to 63 bytes long");
  }
  const GgmlTypeTraits* traits = GgmlTypeInfo(type);
  if (traits == nullptr) return Status::InvalidArgument(who + " has an unknown type");
  if (ne.empty() || ne.size() > 4) {
    return Status::InvalidArgument(who + " must have 1 to 4 dimensions");
  }
  int64_t n = 1;
  for (int64_t e : ne) {
    if (e < 0 || __builtin_mul_overflow(n, e, &n)) {
      return Status::InvalidArgument(who + " has an invalid shape");
    }
  }
  if (ne[0] % traits->block_size != 0) {
    return Status::InvalidArgument(who + " rows of " + std::to_string(ne[0]) +
                                   " elements are not a multiple of the " + traits->name +
                                   " block size " + std::to_string(traits->block_size));
  }
  Tensor t;
  t.name = std::string(name);
  t.type = type;
  t.ne = std::move(ne);
  t.nbytes = static_cast<uint64_t>(n / traits->block_size) * traits->type_size;
  if (!fill && data.size() != t.nbytes) {
    return Status::InvalidArgument(who + " data is " + std::to_string(data.size()) +
                                   " bytes, expected " + std::to_string(t.nbytes));
  }
  t.data = std::move(data);
  t.fill = std::move(fill);
  tensors_.push_back(std::move(t));
  return Status::OK();
}

Status GgufWriter::AddTensor(std::string_view name, GgmlType type, std::vector<int64_t> ne,
                             std::vector<uint8_t> data) {
  return AddTensorImpl(name, type, std::move(ne), std::move(data), nullptr);
}

Status GgufWriter::AddTensor(std::string_view name, GgmlType type, std::vector<int64_t> ne,
                             FillFn fill) {
  DB_CHECK(fill != nullptr);
  return AddTensorImpl(name, type, std::move(ne), {}, std::move(fill));
}

Status GgufWriter::Emit(const std::function<Status(std::span<const uint8_t>)>& emit) const {
  std::string head;
  Append<uint32_t>(&head, 0x46554747);  // "GGUF"
  Append<uint32_t>(&head, version_);
  Append<uint64_t>(&head, tensors_.size());
  Append<uint64_t>(&head, kv_.size());
  for (const auto& [key, value] : kv_) {
    AppendString(&head, key);
    Append<uint32_t>(&head, static_cast<uint32_t>(value.type));
    head += value.payload;
  }
  uint64_t offset = 0;
  for (const Tensor& t : tensors_) {
    AppendString(&head, t.name);
    Append<uint32_t>(&head, static_cast<uint32_t>(t.ne.size()));
    for (int64_t e : t.ne) Append<int64_t>(&head, e);
    Append<uint32_t>(&head, static_cast<uint32_t>(t.type));
    Append<uint64_t>(&head, offset);
    offset += AlignUp(t.nbytes, alignment_);
  }
  head.resize(AlignUp(head.size(), alignment_), '\0');
  DB_RETURN_IF_ERROR(emit({reinterpret_cast<const uint8_t*>(head.data()), head.size()}));

  std::vector<uint8_t> buf;
  for (const Tensor& t : tensors_) {
    const uint64_t padded = AlignUp(t.nbytes, alignment_);
    if (t.fill) {
      buf.assign(padded, 0);
      Status st = t.fill(std::span<uint8_t>(buf.data(), t.nbytes));
      if (!st.ok()) return st.Annotate("tensor '" + t.name + "'");
      DB_RETURN_IF_ERROR(emit(buf));
    } else {
      DB_RETURN_IF_ERROR(emit(t.data));
      static const uint8_t kZeros[256] = {};
      for (uint64_t pad = padded - t.nbytes; pad > 0;) {
        const uint64_t n = pad < sizeof(kZeros) ? pad : sizeof(kZeros);
        DB_RETURN_IF_ERROR(emit({kZeros, n}));
        pad -= n;
      }
    }
  }
  return Status::OK();
}

Result<std::vector<uint8_t>> GgufWriter::WriteToMemory() const {
  std::vector<uint8_t> out;
  DB_RETURN_IF_ERROR(Emit([&](std::span<const uint8_t> b) {
    out.insert(out.end(), b.begin(), b.end());
    return Status::OK();
  }));
  return out;
}

Status GgufWriter::WriteFile(const std::string& path) const {
  const std::string tmp = path + ".tmp";
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) return ErrnoStatus("create " + tmp, errno);
  Status st = Emit([&](std::span<const uint8_t> b) {
    size_t done = 0;
    while (done < b.size()) {
      ssize_t n = ::write(fd.get(), b.data() + done, b.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoStatus("write " + tmp, errno);
      done += static_cast<size_t>(n);
    }
    return Status::OK();
  });
  if (st.ok() && ::fsync(fd.get()) != 0) st = ErrnoStatus("fsync " + tmp, errno);
  fd.Reset();
  if (st.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    st = ErrnoStatus("rename " + tmp + " to " + path, errno);
  }
  if (!st.ok()) ::unlink(tmp.c_str());
  return st;
}

}  // namespace dualblade
