// The GGUF parser: a bounds-checked cursor over the file's bytes. Layout (gguf.h in ggml):
//   u32 magic "GGUF", u32 version, u64 n_tensors, u64 n_kv,
//   n_kv x { string key, u32 type, value },
//   n_tensors x { string name, u32 n_dims, i64 ne[n_dims], u32 ggml_type, u64 offset },
//   padding to `general.alignment` (default 32), tensor data.
// A string is u64 length + bytes (no terminator); an array is u32 element type + u64 count +
// elements. Every read checks the bytes remain first, and every count is checked against the
// bytes left before anything is reserved, so a hostile header cannot make us allocate terabytes.
#include <cstring>
#include <limits>
#include <string>

#include "model/gguf.h"

namespace dualblade {

namespace {
constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint32_t kDefaultAlignment = 32;   // GGUF_DEFAULT_ALIGNMENT
constexpr uint32_t kMaxDims = 4;             // GGML_MAX_DIMS
constexpr int kMaxArrayDepth = 8;            // nesting deeper than this is a hostile file

uint32_t ByteSwap32(uint32_t v) { return __builtin_bswap32(v); }
}  // namespace

class GgufFile::Parser {
 public:
  explicit Parser(std::span<const uint8_t> b) : b_(b) {}

  Status Run(GgufFile* f);

 private:
  uint64_t remaining() const { return b_.size() - pos_; }

  Status Truncated(const std::string& what) const {
    return Status::Corruption("GGUF file is truncated: " + what + " at offset " +
                              std::to_string(pos_) + " runs past the end of the file (" +
                              std::to_string(b_.size()) + " bytes)");
  }

  template <typename T>
  Status Read(T* out, const std::string& what) {
    if (remaining() < sizeof(T)) return Truncated(what);
    std::memcpy(out, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return Status::OK();
  }

  Status ReadString(std::string_view* out, const std::string& what) {
    uint64_t len = 0;
    DB_RETURN_IF_ERROR(Read(&len, what + " length"));
    if (len > remaining()) return Truncated(what + " of " + std::to_string(len) + " bytes");
    *out = std::string_view(reinterpret_cast<const char*>(b_.data() + pos_), len);
    pos_ += len;
    return Status::OK();
  }

  Status ReadValue(GgufType type, GgufValue* v, std::string_view key, int depth);
  Status ReadTensorInfo(GgufTensor* t, uint64_t index);

  std::span<const uint8_t> b_;
  uint64_t pos_ = 0;
};

Status GgufFile::Parser::ReadValue(GgufType type, GgufValue* v, std::string_view key,
                                   int depth) {
  const std::string what = "value of '" + std::string(key) + "'";
  v->type = type;
  switch (type) {
    case GgufType::kU8: { uint8_t x = 0; DB_RETURN_IF_ERROR(Read(&x, what)); v->u64 = x; break; }
    case GgufType::kI8: { int8_t x = 0; DB_RETURN_IF_ERROR(Read(&x, what)); v->i64 = x; break; }
    case GgufType::kU16: { uint16_t x = 0; DB_RETURN_IF_ERROR(Read(&x, what)); v->u64 = x; break; }
    case GgufType::kI16: { int16_t x = 0; DB_RETURN_IF_ERROR(Read(&x, what)); v->i64 = x; break; }
    case GgufType::kU32: { uint32_t x = 0; DB_RETURN_IF_ERROR(Read(&x, what)); v->u64 = x; break; }
    case GgufType::kI32: { int32_t x = 0; DB_RETURN_IF_ERROR(Read(&x, what)); v->i64 = x; break; }
    case GgufType::kU64: { uint64_t x = 0; DB_RETURN_IF_ERROR(Read(&x, what)); v->u64 = x; break; }
    case GgufType::kI64: { int64_t x = 0; DB_RETURN_IF_ERROR(Read(&x, what)); v->i64 = x; break; }
    case GgufType::kF32: { float x = 0; DB_RETURN_IF_ERROR(Read(&x, what)); v->f64 = x; break; }
    case GgufType::kF64: { double x = 0; DB_RETURN_IF_ERROR(Read(&x, what)); v->f64 = x; break; }
    case GgufType::kBool: {
      uint8_t x = 0;
      DB_RETURN_IF_ERROR(Read(&x, what));
      if (x > 1) {
        return Status::Corruption("GGUF key '" + std::string(key) + "' has bool value " +
                                  std::to_string(x) + " (expected 0 or 1)");
      }
      v->u64 = x;
      break;
    }
    case GgufType::kString:
      DB_RETURN_IF_ERROR(ReadString(&v->str, what));
      break;
    case GgufType::kArray: {
      if (depth >= kMaxArrayDepth) {
        return Status::Corruption("GGUF key '" + std::string(key) + "' nests arrays deeper than " +
                                  std::to_string(kMaxArrayDepth) + " levels");
      }
      uint32_t et = 0;
      DB_RETURN_IF_ERROR(Read(&et, what + " element type"));
      DB_RETURN_IF_ERROR(Read(&v->count, what + " element count"));
      v->elem_type = static_cast<GgufType>(et);
      const uint64_t n = v->count;
      const size_t scalar = GgufScalarSize(v->elem_type);
      if (scalar != 0) {
        if (n > remaining() / scalar) {
          return Truncated(what + " (" + std::to_string(n) + " elements of " +
                           GgufTypeName(v->elem_type) + ")");
        }
        v->raw = b_.data() + pos_;
        pos_ += n * scalar;
        // Bools in arrays must be 0/1 as well, or ElemU64 would report garbage as true.
        if (v->elem_type == GgufType::kBool) {
          for (uint64_t i = 0; i < n; ++i) {
            if (v->raw[i] > 1) {
              return Status::Corruption("GGUF key '" + std::string(key) +
                                        "' has a bool array element that is not 0 or 1");
            }
          }
        }
      } else if (v->elem_type == GgufType::kString) {
        if (n > remaining() / sizeof(uint64_t)) return Truncated(what + " (string array)");
        v->strings.resize(n);
        for (uint64_t i = 0; i < n; ++i) {
          DB_RETURN_IF_ERROR(ReadString(&v->strings[i], what + " element " + std::to_string(i)));
        }
      } else if (v->elem_type == GgufType::kArray) {
        // Each nested array takes at least its u32 type and u64 count.
        if (n > remaining() / 12) return Truncated(what + " (array of arrays)");
        v->arrays.resize(n);
        // The GGUF spec allows arrays of arrays: each element is itself {u32 type, u64 count,
        // elements}. (ggml's own reader refuses them; llama.cpp never writes them.)
        for (uint64_t i = 0; i < n; ++i) {
          DB_RETURN_IF_ERROR(ReadValue(GgufType::kArray, &v->arrays[i], key, depth + 1));
        }
      } else {
        return Status::Corruption("GGUF key '" + std::string(key) +
                                  "' is an array of unknown type " + std::to_string(et));
      }
      break;
    }
    default:
      return Status::Corruption("GGUF key '" + std::string(key) + "' has unknown value type " +
                                std::to_string(static_cast<uint32_t>(type)));
  }
  return Status::OK();
}

Status GgufFile::Parser::ReadTensorInfo(GgufTensor* t, uint64_t index) {
  const std::string what = "tensor info " + std::to_string(index);
  DB_RETURN_IF_ERROR(ReadString(&t->name, what + " name"));
  const std::string who = "tensor '" + std::string(t->name) + "'";
  DB_RETURN_IF_ERROR(Read(&t->n_dims, who + " dimension count"));
  if (t->n_dims > kMaxDims) {
    return Status::Corruption(who + " has " + std::to_string(t->n_dims) +
                              " dimensions (at most 4)");
  }
  for (uint32_t d = 0; d < t->n_dims; ++d) {
    DB_RETURN_IF_ERROR(Read(&t->ne[d], who + " dimensions"));
    if (t->ne[d] < 0) {
      return Status::Corruption(who + " has a negative dimension " + std::to_string(t->ne[d]));
    }
  }
  uint32_t type = 0;
  DB_RETURN_IF_ERROR(Read(&type, who + " type"));
  DB_RETURN_IF_ERROR(Read(&t->offset_bytes, who + " offset"));
  const GgmlTypeTraits* traits = GgmlTypeInfo(type);
  if (traits == nullptr) {
    return Status::NotSupported(who + " has tensor type id " + std::to_string(type) +
                                ", which is not a known ggml type");
  }
  t->type = static_cast<GgmlType>(type);
  int64_t n = 1;
  for (int64_t e : t->ne) {
    if (__builtin_mul_overflow(n, e, &n)) {
      return Status::Corruption(who + " has an element count that overflows 64 bits");
    }
  }
  if (t->ne[0] % traits->block_size != 0) {
    return Status::Corruption(who + " has rows of " + std::to_string(t->ne[0]) +
                              " elements, not a multiple of the " + traits->name +
                              " block size " + std::to_string(traits->block_size));
  }
  const uint64_t blocks = static_cast<uint64_t>(n / traits->block_size);
  if (__builtin_mul_overflow(blocks, static_cast<uint64_t>(traits->type_size), &t->nbytes)) {
    return Status::Corruption(who + " has a byte size that overflows 64 bits");
  }
  return Status::OK();
}

Status GgufFile::Parser::Run(GgufFile* f) {
  uint32_t magic = 0;
  if (b_.size() < sizeof(magic)) {
    return Status::Corruption("not a GGUF file (" + std::to_string(b_.size()) + " bytes long)");
  }
  DB_RETURN_IF_ERROR(Read(&magic, "magic"));
  if (magic != kGgufMagic) return Status::Corruption("not a GGUF file (no 'GGUF' magic)");
  DB_RETURN_IF_ERROR(Read(&f->version_, "version"));
  const uint32_t v = f->version_;
  if (v == 0 || v > 3) {
    const uint32_t swapped = ByteSwap32(v);
    if (swapped >= 1 && swapped <= 3) {
      return Status::NotSupported("big-endian GGUF files are not supported");
    }
    return Status::NotSupported("GGUF version " + std::to_string(v) +
                                " is not supported (supported: 2, 3)");
  }
  if (v == 1) return Status::NotSupported("GGUF version 1 is not supported (supported: 2, 3)");

  uint64_t n_tensors = 0, n_kv = 0;
  DB_RETURN_IF_ERROR(Read(&n_tensors, "tensor count"));
  DB_RETURN_IF_ERROR(Read(&n_kv, "metadata count"));
  // A key/value pair takes at least 8 (key length) + 4 (type) + 1 bytes; a tensor info at
  // least 8 (name length) + 4 (n_dims) + 4 (type) + 8 (offset).
  if (n_kv > remaining() / 13) return Truncated(std::to_string(n_kv) + " metadata entries");
  if (n_tensors > remaining() / 24) return Truncated(std::to_string(n_tensors) + " tensor infos");

  f->kv_.resize(n_kv);
  f->kv_index_.reserve(n_kv);
  for (uint64_t i = 0; i < n_kv; ++i) {
    auto& [key, value] = f->kv_[i];
    DB_RETURN_IF_ERROR(ReadString(&key, "metadata key " + std::to_string(i)));
    uint32_t type = 0;
    DB_RETURN_IF_ERROR(Read(&type, "type of '" + std::string(key) + "'"));
    DB_RETURN_IF_ERROR(ReadValue(static_cast<GgufType>(type), &value, key, 0));
    if (!f->kv_index_.emplace(key, i).second) {
      return Status::Corruption("GGUF key '" + std::string(key) + "' appears twice");
    }
  }

  f->alignment_ = kDefaultAlignment;
  if (const GgufValue* a = f->Find("general.alignment")) {
    if (a->type != GgufType::kU32 || a->u64 == 0 || (a->u64 & (a->u64 - 1)) != 0) {
      return Status::Corruption("general.alignment must be a u32 power of two, got " +
                                a->ToString());
    }
    f->alignment_ = static_cast<uint32_t>(a->u64);
  }

  f->tensors_.resize(n_tensors);
  f->tensor_index_.reserve(n_tensors);
  for (uint64_t i = 0; i < n_tensors; ++i) {
    DB_RETURN_IF_ERROR(ReadTensorInfo(&f->tensors_[i], i));
    if (!f->tensor_index_.emplace(f->tensors_[i].name, i).second) {
      return Status::Corruption("tensor '" + std::string(f->tensors_[i].name) +
                                "' appears twice");
    }
  }

  // The data section starts at the next multiple of the alignment. A file without tensor data
  // (a vocabulary-only file) may end before it.
  const uint64_t align = f->alignment_;
  const uint64_t data_offset = pos_ + (align - pos_ % align) % align;
  f->data_offset_bytes_ = data_offset;
  const uint64_t size = b_.size();
  for (GgufTensor& t : f->tensors_) {
    const std::string who = "tensor '" + std::string(t.name) + "'";
    if (t.offset_bytes % align != 0) {
      return Status::Corruption(who + " has offset " + std::to_string(t.offset_bytes) +
                                ", not a multiple of the alignment " + std::to_string(align));
    }
    if (t.nbytes == 0) {
      t.data = nullptr;
      continue;
    }
    if (data_offset > size || t.offset_bytes > size - data_offset ||
        t.nbytes > size - data_offset - t.offset_bytes) {
      return Status::Corruption(who + " data (" + std::to_string(t.nbytes) + " bytes at offset " +
                                std::to_string(t.offset_bytes) +
                                " of the data section) runs past the end of the file (" +
                                std::to_string(size) + " bytes)");
    }
    t.data = b_.data() + data_offset + t.offset_bytes;
  }
  return Status::OK();
}

Result<std::unique_ptr<GgufFile>> GgufFile::Parse(std::span<const uint8_t> bytes) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->bytes_ = bytes;
  Parser p(bytes);
  DB_RETURN_IF_ERROR(p.Run(f.get()));
  return f;
}

Result<std::unique_ptr<GgufFile>> GgufFile::Open(const std::string& path) {
  DB_ASSIGN_OR_RETURN(MappedFile m, MappedFile::Open(path));
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->file_.emplace(std::move(m));
  f->bytes_ = f->file_->bytes();
  Parser p(f->bytes_);
  Status st = p.Run(f.get());
  if (!st.ok()) return st.Annotate(path);
  return f;
}

}  // namespace dualblade
