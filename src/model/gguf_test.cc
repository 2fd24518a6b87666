// GGUF reader tests: the reference models load with the tensor types their README lists; a
// truncated or corrupted file is always a clean error (the bytes sit right before a guard page,
// so any read past the end would crash the test).
#include "model/gguf.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "model/gguf_writer.h"
#include "model/test_models.h"

namespace dualblade {
namespace {

// Bytes placed so that they end exactly at an inaccessible page: reading one byte too far faults.
class GuardedBytes {
 public:
  explicit GuardedBytes(std::span<const uint8_t> src) {
    const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    data_pages_ = (src.size() + page - 1) / page * page;
    total_ = data_pages_ + page;
    void* p = ::mmap(nullptr, total_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    DB_CHECK(p != MAP_FAILED);
    base_ = static_cast<uint8_t*>(p);
    DB_CHECK(::mprotect(base_ + data_pages_, page, PROT_NONE) == 0);
    begin_ = base_ + data_pages_ - src.size();
    if (!src.empty()) std::memcpy(begin_, src.data(), src.size());
    size_ = src.size();
  }
  ~GuardedBytes() { ::munmap(base_, total_); }
  GuardedBytes(const GuardedBytes&) = delete;
  GuardedBytes& operator=(const GuardedBytes&) = delete;
  std::span<const uint8_t> span() const { return {begin_, size_}; }
  uint8_t* mutable_data() { return begin_; }

 private:
  uint8_t* base_ = nullptr;
  uint8_t* begin_ = nullptr;
  size_t size_ = 0, data_pages_ = 0, total_ = 0;
};

using TypeMap = std::map<std::string, GgmlType>;

// Expected types from ../shared/models/README.md ("Quantization: tensor types per file").
TypeMap ExpectedTypes(const std::string& file) {
  using T = GgmlType;
  TypeMap m;
  auto per_layer = [&](int n_layer, const char* name, T t) {
    for (int l = 0; l < n_layer; ++l) m["blk." + std::to_string(l) + "." + name] = t;
  };
  const char* kMats[] = {"attn_q.weight", "attn_k.weight", "attn_v.weight",
                         "attn_output.weight", "ffn_gate.weight", "ffn_up.weight",
                         "ffn_down.weight"};
  auto llama_like = [&](int n_layer, T mat, T embd, T out, bool has_output) {
    m["token_embd.weight"] = embd;
    if (has_output) m["output.weight"] = out;
    m["output_norm.weight"] = T::kF32;
    per_layer(n_layer, "attn_norm.weight", T::kF32);
    per_layer(n_layer, "ffn_norm.weight", T::kF32);
    for (const char* k : kMats) per_layer(n_layer, k, mat);
  };
  if (file == "stories260K.gguf") llama_like(5, T::kF32, T::kF32, T::kF32, true);
  if (file == "stories260K-q8_0.gguf" || file == "stories260K-q4_0.gguf") {
    const T q = file == "stories260K-q8_0.gguf" ? T::kQ8_0 : T::kQ4_0;
    llama_like(5, q, q, T::kQ8_0, true);
    per_layer(5, "ffn_down.weight", T::kF16);
  }
  const std::map<std::string, T> rand_llama = {
      {"f32", T::kF32},   {"f16", T::kF16},     {"bf16", T::kBF16},   {"q8_0", T::kQ8_0},
      {"q4_0", T::kQ4_0}, {"q4_k_m", T::kQ4_K}, {"q5_k_m", T::kQ5_K}, {"q6_k", T::kQ6_K}};
  for (const auto& [suffix, t] : rand_llama) {
    if (file != "rand-llama-" + suffix + ".gguf") continue;
    const bool plain = t == T::kF32 || t == T::kF16 || t == T::kBF16 || t == T::kQ8_0;
    llama_like(2, t, t, plain ? t : T::kQ6_K, true);
    if (t == T::kQ4_K || t == T::kQ5_K) {
      m["blk.1.attn_v.weight"] = T::kQ6_K;
      m["blk.1.ffn_down.weight"] = T::kQ6_K;
    }
  }
  if (file == "rand-qwen2-f32.gguf" || file == "rand-qwen2-q8_0.gguf") {
    const T q = file == "rand-qwen2-f32.gguf" ? T::kF32 : T::kQ8_0;
    llama_like(2, q, q, q, false);
    for (const char* b : {"attn_q.bias", "attn_k.bias", "attn_v.bias"}) per_layer(2, b, T::kF32);
  }
  return m;
}

const char* kModelFiles[] = {
    "stories260K.gguf",       "stories260K-q8_0.gguf",   "stories260K-q4_0.gguf",
    "rand-llama-f32.gguf",    "rand-llama-f16.gguf",     "rand-llama-bf16.gguf",
    "rand-llama-q8_0.gguf",   "rand-llama-q4_0.gguf",    "rand-llama-q4_k_m.gguf",
    "rand-llama-q5_k_m.gguf", "rand-llama-q6_k.gguf",    "rand-qwen2-f32.gguf",
    "rand-qwen2-q8_0.gguf"};

class ReferenceModelTest : public ::testing::TestWithParam<const char*> {};

TEST_P(ReferenceModelTest, LoadsWithReadmeTensorTypes) {
  DB_REFERENCE_MODEL_OR_SKIP(path, GetParam());
  auto f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  const GgufFile& g = **f;
  EXPECT_GE(g.version(), 2u);
  const TypeMap want = ExpectedTypes(GetParam());
  ASSERT_FALSE(want.empty());
  EXPECT_EQ(g.tensors().size(), want.size());
  for (const auto& [name, type] : want) {
    const GgufTensor* t = g.FindTensor(name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_EQ(GgmlTypeName(t->type), GgmlTypeName(type)) << name;
    EXPECT_EQ(t->nbytes, RowSizeBytes(t->type, t->ne[0]) * t->n_rows()) << name;
    EXPECT_NE(t->data, nullptr);
  }
  auto arch = g.GetString("general.architecture");
  ASSERT_TRUE(arch.ok());
  EXPECT_TRUE(*arch == "llama" || *arch == "qwen2") << *arch;
  auto tokens = g.GetStringArray("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens.ok()) << tokens.status().ToString();
  EXPECT_EQ(tokens->size(), 512u);
  EXPECT_EQ((*tokens)[1], "<s>");
  auto scores = g.GetF32Array("tokenizer.ggml.scores");
  ASSERT_TRUE(scores.ok()) << scores.status().ToString();
  EXPECT_EQ(scores->size(), 512u);
  auto types = g.GetI32Array("tokenizer.ggml.token_type");
  ASSERT_TRUE(types.ok()) << types.status().ToString();
  EXPECT_EQ(types->size(), 512u);
}

INSTANTIATE_TEST_SUITE_P(AllFiles, ReferenceModelTest, ::testing::ValuesIn(kModelFiles),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& c : s) if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           return s;
                         });

TEST(GgufFileTest, StoriesHyperparameters) {
  DB_REFERENCE_MODEL_OR_SKIP(path, "stories260K.gguf");
  auto f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(*(*f)->GetU32("llama.block_count"), 5u);
  EXPECT_EQ(*(*f)->GetU32("llama.embedding_length"), 64u);
  EXPECT_EQ(*(*f)->GetU32("llama.attention.head_count_kv"), 4u);
  EXPECT_NEAR(*(*f)->GetF32("llama.attention.layer_norm_rms_epsilon"), 1e-5f, 1e-9f);
  EXPECT_TRUE((*f)->GetU32("llama.rope.freq_base").status().IsNotFound());
  const GgufTensor* t = (*f)->FindTensor("blk.0.ffn_down.weight");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->ne[0], 172);
  EXPECT_EQ(t->ne[1], 64);
  EXPECT_EQ(t->ShapeString(), "[172, 64]");
}

TEST(GgufFileTest, MissingFileIsNotFound) {
  auto f = GgufFile::Open("/nonexistent/model.gguf");
  ASSERT_FALSE(f.ok());
  EXPECT_TRUE(f.status().IsNotFound()) << f.status().ToString();
}

TEST(GgufFileTest, RejectsBadMagicAndVersions) {
  auto parse = [](std::vector<uint8_t> b) { return GgufFile::Parse(b).status(); };
  EXPECT_TRUE(parse({}).IsCorruption());
  EXPECT_TRUE(parse({'G', 'G', 'U', 'X', 3, 0, 0, 0}).IsCorruption());
  Status v1 = parse({'G', 'G', 'U', 'F', 1, 0, 0, 0});
  EXPECT_TRUE(v1.IsNotSupported());
  EXPECT_NE(v1.message().find("version 1"), std::string::npos) << v1.ToString();
  Status be = parse({'G', 'G', 'U', 'F', 0, 0, 0, 3});
  EXPECT_NE(be.message().find("big-endian"), std::string::npos) << be.ToString();
  EXPECT_TRUE(parse({'G', 'G', 'U', 'F', 9, 0, 0, 0}).IsNotSupported());
}

// Every prefix of a real model's header, and prefixes throughout its data, fail cleanly.
TEST(GgufFileTest, TruncationAtEveryHeaderOffsetIsAnError) {
  DB_REFERENCE_MODEL_OR_SKIP(path, "stories260K-q4_0.gguf");
  auto full = MappedFile::Open(path);
  ASSERT_TRUE(full.ok());
  auto whole = GgufFile::Parse(full->bytes());
  ASSERT_TRUE(whole.ok()) << whole.status().ToString();
  uint64_t data_end = 0;
  for (const GgufTensor& t : (*whole)->tensors()) {
    data_end = std::max(data_end, (*whole)->data_offset_bytes() + t.offset_bytes + t.nbytes);
  }
  const uint64_t header = (*whole)->data_offset_bytes();
  std::vector<uint64_t> cuts;
  for (uint64_t n = 0; n < header; ++n) cuts.push_back(n);
  for (uint64_t n = header; n < data_end; n += 997) cuts.push_back(n);
  cuts.push_back(data_end - 1);
  for (uint64_t n : cuts) {
    GuardedBytes g(full->bytes().first(n));
    auto f = GgufFile::Parse(g.span());
    ASSERT_FALSE(f.ok()) << "prefix of " << n << " bytes parsed";
    ASSERT_TRUE(f.status().IsCorruption()) << n << ": " << f.status().ToString();
  }
}

// A crafted file with every metadata type, then random byte corruption: never a crash; when
// the corrupted file still parses, every tensor lies inside it.
TEST(GgufFileTest, RandomCorruptionNeverCrashes) {
  GgufWriter w;
  w.Set("u8", GgufEncodeU8(7));
  w.Set("i16", GgufEncodeI16(-3));
  w.SetString("name", "corrupt me");
  w.SetStringArray("tokens", std::vector<std::string>{"a", "bb", "ccc"});
  w.SetF32Array("scores", std::vector<float>{1, 2, 3});
  w.Set("nested", GgufEncodeArray(GgufType::kArray,
                                  {GgufEncodeArray(GgufType::kI32, {GgufEncodeI32(1)}),
                                   GgufEncodeArray(GgufType::kString, {GgufEncodeString("x")})}));
  ASSERT_TRUE(w.AddTensor("t0", GgmlType::kF32, {8, 2}, std::vector<uint8_t>(64, 1)).ok());
  ASSERT_TRUE(w.AddTensor("t1", GgmlType::kQ8_0, {32}, std::vector<uint8_t>(34, 2)).ok());
  auto bytes = w.WriteToMemory();
  ASSERT_TRUE(bytes.ok());
  std::mt19937_64 rng(12345);
  int parsed = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::vector<uint8_t> b = *bytes;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) {
      const size_t pos = rng() % b.size();
      b[pos] = (rng() % 3 == 0) ? 0xFF : static_cast<uint8_t>(rng());
    }
    const size_t len = (rng() % 4 == 0) ? rng() % b.size() : b.size();
    GuardedBytes g(std::span<const uint8_t>(b).first(len));
    auto f = GgufFile::Parse(g.span());
    if (!f.ok()) continue;
    ++parsed;
    for (const GgufTensor& t : (*f)->tensors()) {
      if (t.nbytes == 0) continue;
      ASSERT_GE(t.data, g.span().data());
      ASSERT_LE(t.data + t.nbytes, g.span().data() + g.span().size());
    }
  }
  EXPECT_GT(parsed, 0);  // some flips land in tensor data and leave the file valid
}

TEST(GgufFileTest, ReferenceHeaderCorruptionNeverCrashes) {
  DB_REFERENCE_MODEL_OR_SKIP(path, "stories260K-q8_0.gguf");
  auto full = MappedFile::Open(path);
  ASSERT_TRUE(full.ok());
  auto whole = GgufFile::Parse(full->bytes());
  ASSERT_TRUE(whole.ok());
  const size_t header = (*whole)->data_offset_bytes();
  std::mt19937_64 rng(777);
  GuardedBytes g(full->bytes());
  for (int iter = 0; iter < 3000; ++iter) {
    const size_t pos = rng() % header;
    const uint8_t old = g.mutable_data()[pos];
    g.mutable_data()[pos] = static_cast<uint8_t>(rng());
    auto f = GgufFile::Parse(g.span());
    if (f.ok()) {
      for (const GgufTensor& t : (*f)->tensors()) {
        if (t.nbytes != 0) {
          ASSERT_LE(t.data + t.nbytes, g.span().data() + g.span().size());
        }
      }
    }
    g.mutable_data()[pos] = old;
  }
}

}  // namespace
}  // namespace dualblade

namespace dualblade {
namespace {

// Vocabulary-only files: no tensors, large string arrays (the tokenizer tests read them).
TEST(GgufFileTest, VocabularyFilesLoad) {
  DB_REFERENCE_MODEL_OR_SKIP(dir, "tokenizer");
  for (const char* name : {"ggml-vocab-llama-spm.gguf", "ggml-vocab-gpt-2.gguf",
                           "ggml-vocab-falcon.gguf", "ggml-vocab-deepseek-llm.gguf",
                           "ggml-vocab-phi-3.gguf", "ggml-vocab-starcoder.gguf"}) {
    auto f = GgufFile::Open(dir + "/" + name);
    ASSERT_TRUE(f.ok()) << name << ": " << f.status().ToString();
    auto tokens = (*f)->GetStringArray("tokenizer.ggml.tokens");
    ASSERT_TRUE(tokens.ok()) << name;
    EXPECT_GT(tokens->size(), 30000u) << name;
    EXPECT_TRUE((*f)->GetString("tokenizer.ggml.model").ok()) << name;
  }
}

}  // namespace
}  // namespace dualblade
