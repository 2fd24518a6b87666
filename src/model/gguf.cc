// GgufFile accessors: typed metadata getters and value formatting. Parsing is in gguf_parser.cc.
#include "model/gguf.h"

#include <cstring>
#include <limits>
#include <sstream>
#include <type_traits>

namespace dualblade {

std::string GgufTypeName(GgufType t) {
  switch (t) {
    case GgufType::kU8: return "u8";
    case GgufType::kI8: return "i8";
    case GgufType::kU16: return "u16";
    case GgufType::kI16: return "i16";
    case GgufType::kU32: return "u32";
    case GgufType::kI32: return "i32";
    case GgufType::kF32: return "f32";
    case GgufType::kBool: return "bool";
    case GgufType::kString: return "string";
    case GgufType::kArray: return "array";
    case GgufType::kU64: return "u64";
    case GgufType::kI64: return "i64";
    case GgufType::kF64: return "f64";
  }
  return "type " + std::to_string(static_cast<uint32_t>(t));
}

size_t GgufScalarSize(GgufType t) {
  switch (t) {
    case GgufType::kU8: case GgufType::kI8: case GgufType::kBool: return 1;
    case GgufType::kU16: case GgufType::kI16: return 2;
    case GgufType::kU32: case GgufType::kI32: case GgufType::kF32: return 4;
    case GgufType::kU64: case GgufType::kI64: case GgufType::kF64: return 8;
    default: return 0;
  }
}

namespace {

bool IsUnsigned(GgufType t) {
  return t == GgufType::kU8 || t == GgufType::kU16 || t == GgufType::kU32 || t == GgufType::kU64;
}
bool IsSigned(GgufType t) {
  return t == GgufType::kI8 || t == GgufType::kI16 || t == GgufType::kI32 || t == GgufType::kI64;
}

template <typename T>
T LoadLE(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// Reads scalar element i of an array as (is_signed, u, i, f).
struct Scalar {
  uint64_t u = 0;
  int64_t i = 0;
  double f = 0;
};
Scalar LoadElem(GgufType t, const uint8_t* raw, uint64_t idx) {
  Scalar s;
  const uint8_t* p = raw + idx * GgufScalarSize(t);
  switch (t) {
    case GgufType::kU8: case GgufType::kBool: s.u = LoadLE<uint8_t>(p); break;
    case GgufType::kI8: s.i = LoadLE<int8_t>(p); break;
    case GgufType::kU16: s.u = LoadLE<uint16_t>(p); break;
    case GgufType::kI16: s.i = LoadLE<int16_t>(p); break;
    case GgufType::kU32: s.u = LoadLE<uint32_t>(p); break;
    case GgufType::kI32: s.i = LoadLE<int32_t>(p); break;
    case GgufType::kU64: s.u = LoadLE<uint64_t>(p); break;
    case GgufType::kI64: s.i = LoadLE<int64_t>(p); break;
    case GgufType::kF32: s.f = LoadLE<float>(p); break;
    case GgufType::kF64: s.f = LoadLE<double>(p); break;
    default: DB_CHECK_MSG(false, "not a scalar GGUF type");
  }
  return s;
}

// Converts an integer held as (type, u64, i64) into T when it fits.
template <typename T>
bool FitInt(GgufType t, uint64_t u, int64_t i, T* out) {
  if (IsUnsigned(t) || t == GgufType::kBool) {
    if (u > static_cast<uint64_t>(std::numeric_limits<T>::max())) return false;
    *out = static_cast<T>(u);
    return true;
  }
  if (IsSigned(t)) {
    if constexpr (std::is_unsigned_v<T>) {
      if (i < 0 || static_cast<uint64_t>(i) > std::numeric_limits<T>::max()) return false;
    } else {
      if (i < std::numeric_limits<T>::min() || i > std::numeric_limits<T>::max()) return false;
    }
    *out = static_cast<T>(i);
    return true;
  }
  return false;
}

Status WrongType(std::string_view key, const GgufValue& v, const char* want) {
  std::string got = GgufTypeName(v.type);
  if (v.type == GgufType::kArray) got = "array of " + GgufTypeName(v.elem_type);
  return Status::InvalidArgument("GGUF key '" + std::string(key) + "' is " + got +
                                 " (value " + v.ToString(4) + "), expected " + want);
}

}  // namespace

bool GgufValue::is_integer() const { return IsUnsigned(type) || IsSigned(type); }

uint64_t GgufValue::ElemU64(uint64_t i) const {
  DB_CHECK(type == GgufType::kArray && raw != nullptr && i < count);
  Scalar s = LoadElem(elem_type, raw, i);
  return IsSigned(elem_type) ? static_cast<uint64_t>(s.i) : s.u;
}

int64_t GgufValue::ElemI64(uint64_t i) const {
  DB_CHECK(type == GgufType::kArray && raw != nullptr && i < count);
  Scalar s = LoadElem(elem_type, raw, i);
  return IsSigned(elem_type) ? s.i : static_cast<int64_t>(s.u);
}

double GgufValue::ElemF64(uint64_t i) const {
  DB_CHECK(type == GgufType::kArray && raw != nullptr && i < count);
  Scalar s = LoadElem(elem_type, raw, i);
  if (elem_type == GgufType::kF32 || elem_type == GgufType::kF64) return s.f;
  return IsSigned(elem_type) ? static_cast<double>(s.i) : static_cast<double>(s.u);
}

std::string GgufValue::ToString(size_t max_elems) const {
  std::ostringstream os;
  switch (type) {
    case GgufType::kBool: os << (u64 ? "true" : "false"); break;
    case GgufType::kF32: case GgufType::kF64: os << f64; break;
    case GgufType::kString: os << '"' << str << '"'; break;
    case GgufType::kArray: {
      os << '[';
      const uint64_t shown = count < max_elems ? count : max_elems;
      for (uint64_t i = 0; i < shown; ++i) {
        if (i) os << ", ";
        if (elem_type == GgufType::kString) {
          os << '"' << strings[i] << '"';
        } else if (elem_type == GgufType::kArray) {
          os << arrays[i].ToString(max_elems);
        } else if (elem_type == GgufType::kF32 || elem_type == GgufType::kF64) {
          os << ElemF64(i);
        } else if (IsSigned(elem_type)) {
          os << ElemI64(i);
        } else {
          os << ElemU64(i);
        }
      }
      if (shown < count) os << ", ... (" << count << " " << GgufTypeName(elem_type) << ")";
      os << ']';
      break;
    }
    default:
      if (IsSigned(type)) os << i64; else os << u64;
  }
  return os.str();
}

std::string GgufTensor::ShapeString() const {
  std::string s = "[";
  const uint32_t n = n_dims == 0 ? 1 : n_dims;
  for (uint32_t d = 0; d < n; ++d) {
    if (d) s += ", ";
    s += std::to_string(ne[d]);
  }
  return s + "]";
}

const GgufValue* GgufFile::Find(std::string_view key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const GgufTensor* GgufFile::FindTensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {
Status Missing(std::string_view key) {
  return Status::NotFound("GGUF key '" + std::string(key) + "' is missing");
}
}  // namespace

#define DB_GGUF_INT_GETTER(Name, T)                                       \
  Result<T> GgufFile::Name(std::string_view key) const {                  \
    const GgufValue* v = Find(key);                                       \
    if (v == nullptr) return Missing(key);                                \
    T out{};                                                              \
    if (!v->is_integer() || !FitInt<T>(v->type, v->u64, v->i64, &out)) {  \
      return WrongType(key, *v, #T);                                      \
    }                                                                     \
    return out;                                                           \
  }
DB_GGUF_INT_GETTER(GetU32, uint32_t)
DB_GGUF_INT_GETTER(GetI32, int32_t)
DB_GGUF_INT_GETTER(GetU64, uint64_t)
DB_GGUF_INT_GETTER(GetI64, int64_t)
#undef DB_GGUF_INT_GETTER

Result<double> GgufFile::GetF64(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Missing(key);
  if (!v->is_float()) return WrongType(key, *v, "a float");
  return v->f64;
}

Result<float> GgufFile::GetF32(std::string_view key) const {
  DB_ASSIGN_OR_RETURN(double d, GetF64(key));
  return static_cast<float>(d);
}

Result<bool> GgufFile::GetBool(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Missing(key);
  if (v->type != GgufType::kBool) return WrongType(key, *v, "bool");
  return v->u64 != 0;
}

Result<std::string_view> GgufFile::GetString(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Missing(key);
  if (v->type != GgufType::kString) return WrongType(key, *v, "string");
  return v->str;
}

Result<uint64_t> GgufFile::GetArrayLength(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Missing(key);
  if (v->type != GgufType::kArray) return WrongType(key, *v, "an array");
  return v->count;
}

Result<std::span<const std::string_view>> GgufFile::GetStringArray(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Missing(key);
  if (v->type != GgufType::kArray || v->elem_type != GgufType::kString) {
    return WrongType(key, *v, "an array of strings");
  }
  return std::span<const std::string_view>(v->strings);
}

Result<std::vector<float>> GgufFile::GetF32Array(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr) return Missing(key);
  if (v->type != GgufType::kArray ||
      (v->elem_type != GgufType::kF32 && v->elem_type != GgufType::kF64)) {
    return WrongType(key, *v, "an array of f32");
  }
  std::vector<float> out(v->count);
  for (uint64_t i = 0; i < v->count; ++i) out[i] = static_cast<float>(v->ElemF64(i));
  return out;
}

namespace {
template <typename T>
Result<std::vector<T>> IntArray(std::string_view key, const GgufValue* v, const char* want) {
  if (v == nullptr) return Missing(key);
  const bool int_elems = IsSigned(v->elem_type) || IsUnsigned(v->elem_type) ||
                         v->elem_type == GgufType::kBool;
  if (v->type != GgufType::kArray || !int_elems) return WrongType(key, *v, want);
  std::vector<T> out(v->count);
  for (uint64_t i = 0; i < v->count; ++i) {
    Scalar s = LoadElem(v->elem_type, v->raw, i);
    if (!FitInt<T>(v->elem_type, s.u, s.i, &out[i])) {
      return Status::InvalidArgument("GGUF key '" + std::string(key) + "' element " +
                                     std::to_string(i) + " does not fit " + want);
    }
  }
  return out;
}
}  // namespace

Result<std::vector<int32_t>> GgufFile::GetI32Array(std::string_view key) const {
  return IntArray<int32_t>(key, Find(key), "an array of i32");
}

Result<std::vector<uint32_t>> GgufFile::GetU32Array(std::string_view key) const {
  return IntArray<uint32_t>(key, Find(key), "an array of u32");
}

}  // namespace dualblade
