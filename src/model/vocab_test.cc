// LoadVocab: the tokenizer.ggml.* keys of a GGUF file, with absent keys left absent and wrongly
// typed keys reported by name.
#include "model/vocab.h"

#include <gtest/gtest.h>

#include "model/gguf.h"
#include "model/gguf_writer.h"
#include "model/tokenizer.h"

namespace dualblade {
namespace {

struct Parsed {
  std::vector<uint8_t> bytes;  // must outlive the GgufFile
  std::unique_ptr<GgufFile> file;
};

Parsed Build(const GgufWriter& w) {
  Parsed p;
  auto bytes = w.WriteToMemory();
  EXPECT_TRUE(bytes.ok()) << bytes.status().ToString();
  p.bytes = std::move(bytes).value();
  auto f = GgufFile::Parse(p.bytes);
  EXPECT_TRUE(f.ok()) << f.status().ToString();
  p.file = std::move(f).value();
  return p;
}

TEST(LoadVocabTest, ReadsEveryKeyAndLeavesAbsentOnesAbsent) {
  GgufWriter w;
  w.SetString("general.name", "tiny");
  w.SetString("tokenizer.ggml.model", "llama");
  const std::vector<std::string> tokens = {"<unk>", "<s>", "</s>", "\xE2\x96\x81" "a", "a"};
  w.SetStringArray("tokenizer.ggml.tokens", tokens);
  const std::vector<float> scores = {0, 0, 0, -1, -2};
  w.SetF32Array("tokenizer.ggml.scores", scores);
  const std::vector<int32_t> types = {2, 3, 3, 1, 1};
  w.SetI32Array("tokenizer.ggml.token_type", types);
  w.SetU32("tokenizer.ggml.bos_token_id", 1);
  w.SetU32("tokenizer.ggml.padding_token_id", 4294967295u);
  w.SetBool("tokenizer.ggml.add_eos_token", true);
  w.SetI32("tokenizer.ggml.unknown_token_id", -1);  // "none", as some converters write it
  w.SetU32("tokenizer.ggml.fim_pre_token_id", 3);
  w.SetU32("tokenizer.ggml.prefix_token_id", 4);     // the older name wins
  Parsed p = Build(w);

  auto v = LoadVocab(*p.file);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->model, "llama");
  EXPECT_EQ(v->pre, "");
  EXPECT_EQ(v->name, "tiny");
  EXPECT_EQ(v->tokens, tokens);
  EXPECT_EQ(v->scores, scores);
  EXPECT_EQ(v->token_types, types);
  EXPECT_TRUE(v->merges.empty());
  EXPECT_EQ(v->bos_id, 1u);
  EXPECT_EQ(v->pad_id, 4294967295u);
  EXPECT_EQ(v->unk_id, 4294967295u);
  EXPECT_EQ(v->fim_pre_id, 4u);
  EXPECT_FALSE(v->eos_id.has_value());
  EXPECT_EQ(v->add_eos, true);
  EXPECT_FALSE(v->add_bos.has_value());
  EXPECT_FALSE(v->add_space_prefix.has_value());

  auto t = LoadTokenizer(*p.file);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ((*t)->Tokenize("a", true), (std::vector<TokenId>{1, 3, 2}));
}

TEST(LoadVocabTest, IntegerScoresAreAccepted) {
  GgufWriter w;
  w.SetString("tokenizer.ggml.model", "llama");
  const std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  w.SetStringArray("tokenizer.ggml.tokens", tokens);
  const std::vector<int32_t> scores = {0, -5, 7};
  w.SetI32Array("tokenizer.ggml.scores", scores);
  Parsed p = Build(w);
  auto v = LoadVocab(*p.file);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->scores, (std::vector<float>{0, -5, 7}));
}

TEST(LoadVocabTest, MissingOrMistypedKeysAreErrors) {
  {
    GgufWriter w;
    w.SetString("general.name", "no tokenizer");
    Parsed p = Build(w);
    EXPECT_TRUE(LoadVocab(*p.file).status().IsNotFound());
  }
  {
    GgufWriter w;
    w.SetString("tokenizer.ggml.model", "llama");
    w.SetString("tokenizer.ggml.tokens", "not an array");
    Parsed p = Build(w);
    auto v = LoadVocab(*p.file);
    ASSERT_FALSE(v.ok());
    EXPECT_TRUE(v.status().IsInvalidArgument()) << v.status().ToString();
  }
  {
    GgufWriter w;
    w.SetString("tokenizer.ggml.model", "gpt2");
    const std::vector<std::string> tokens = {"a"};
    w.SetStringArray("tokenizer.ggml.tokens", tokens);
    w.SetString("tokenizer.ggml.bos_token_id", "one");
    Parsed p = Build(w);
    EXPECT_FALSE(LoadVocab(*p.file).ok());
  }
}

}  // namespace
}  // namespace dualblade
