// Tokenizer on small hand-built vocabularies: merge order, byte fallback, space prefix, special
// tokens, detokenization and the errors of Create. (Equality with llama.cpp on real vocabularies
// is in tokenizer_golden_test.cc.)
#include "model/tokenizer.h"

#include <gtest/gtest.h>

namespace dualblade {
namespace {

using Ids = std::vector<TokenId>;
constexpr const char* kSp = "\xE2\x96\x81";  // U+2581, SentencePiece's escaped space

// <unk> <s> </s>, the 256 byte tokens (ids 3..258), then `pieces` with their scores.
Vocab SpmVocab(const std::vector<std::pair<std::string, float>>& pieces) {
  Vocab v;
  v.model = "llama";
  auto add = [&](std::string text, float score, TokenType type) {
    v.tokens.push_back(std::move(text));
    v.scores.push_back(score);
    v.token_types.push_back(static_cast<int32_t>(type));
  };
  add("<unk>", 0, TokenType::kUnknown);
  add("<s>", 0, TokenType::kControl);
  add("</s>", 0, TokenType::kControl);
  for (int b = 0; b < 256; ++b) {
    char hex[8];
    std::snprintf(hex, sizeof(hex), "<0x%02X>", b);
    add(hex, 0, TokenType::kByte);
  }
  for (const auto& [text, score] : pieces) add(text, score, TokenType::kNormal);
  return v;
}

std::unique_ptr<Tokenizer> Make(const Vocab& v) {
  auto t = Tokenizer::Create(v);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return t.ok() ? std::move(t).value() : nullptr;
}

TokenId Id(const Tokenizer& t, const std::string& text) {
  const TokenId id = t.TextToToken(text);
  EXPECT_NE(id, kNoToken) << text;
  return id;
}

std::string S(const char* a, const char* b = "") { return std::string(a) + b; }

TEST(SpmTokenizerTest, HighestScoringPairMergesFirst) {
  auto t = Make(SpmVocab({{kSp, -5}, {"a", -5}, {"b", -5}, {"c", -5}, {S(kSp, "a"), -1},
                          {"bc", -0.5f}, {"ab", -2}, {S(kSp, "ab"), -1.5f}}));
  ASSERT_NE(t, nullptr);
  // "bc" (-0.5) beats "▁a" (-1) and "ab" (-2); afterwards "▁a"+"bc" is no token.
  EXPECT_EQ(t->Tokenize("abc", false), (Ids{Id(*t, S(kSp, "a")), Id(*t, "bc")}));

  auto u = Make(SpmVocab({{kSp, -5}, {"a", -5}, {"b", -5}, {"c", -5}, {S(kSp, "a"), -1},
                          {"bc", -3}, {S(kSp, "ab"), -0.5f}}));
  ASSERT_NE(u, nullptr);
  // Now "▁a" first, then "▁ab" (its merged text) before anything with "bc".
  EXPECT_EQ(u->Tokenize("abc", false), (Ids{Id(*u, S(kSp, "ab")), Id(*u, "c")}));
}

TEST(SpmTokenizerTest, EqualScoresMergeLeftmostFirst) {
  auto t = Make(SpmVocab({{"a", -5}, {"aa", -1}, {kSp, -5}}));
  ASSERT_NE(t, nullptr);
  const TokenId aa = Id(*t, "aa"), a = Id(*t, "a"), sp = Id(*t, kSp);
  EXPECT_EQ(t->Tokenize("aaa", false), (Ids{sp, aa, a}));
}

TEST(SpmTokenizerTest, UnknownCharactersFallBackToBytes) {
  auto t = Make(SpmVocab({{kSp, -1}, {"a", -1}}));
  ASSERT_NE(t, nullptr);
  // "é" is C3 A9: byte tokens 3 + 0xC3 and 3 + 0xA9.
  EXPECT_EQ(t->Tokenize("a\xC3\xA9", false), (Ids{Id(*t, kSp), Id(*t, "a"), 3 + 0xC3, 3 + 0xA9}));
}

TEST(SpmTokenizerTest, SpacePrefixAndSpecialTokens) {
  Vocab v = SpmVocab({{kSp, -1}, {"a", -1}, {"b", -1}, {S(kSp, "a"), -0.5f}, {S(kSp, "b"), -0.5f}});
  auto t = Make(v);
  ASSERT_NE(t, nullptr);
  const TokenId sa = Id(*t, S(kSp, "a")), sb = Id(*t, S(kSp, "b"));
  EXPECT_TRUE(t->add_bos());
  EXPECT_FALSE(t->add_eos());
  EXPECT_EQ(t->Tokenize("", true), (Ids{1}));
  EXPECT_EQ(t->Tokenize("", false), (Ids{}));
  EXPECT_EQ(t->Tokenize("a b", true), (Ids{1, sa, sb}));

  // Control tokens in the text count only with parse_special; the text after one gets the
  // space prefix again.
  EXPECT_EQ(t->Tokenize("a</s>b", false, true), (Ids{sa, 2, sb}));
  const Ids plain = t->Tokenize("a</s>b", false, false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 2), 0);

  v.add_space_prefix = false;
  v.add_eos = true;
  auto u = Make(v);
  ASSERT_NE(u, nullptr);
  EXPECT_EQ(u->Tokenize("a b", true), (Ids{1, Id(*u, "a"), sb, 2}));
}

TEST(SpmTokenizerTest, UserDefinedTokensAreAlwaysSplitOut) {
  Vocab v = SpmVocab({{kSp, -1}, {"x", -1}, {"y", -1}, {S(kSp, "x"), -0.5f}});
  v.tokens.push_back("<hi>");
  v.scores.push_back(0);
  v.token_types.push_back(static_cast<int32_t>(TokenType::kUserDefined));
  auto t = Make(v);
  ASSERT_NE(t, nullptr);
  const TokenId hi = Id(*t, "<hi>");
  EXPECT_EQ(t->Tokenize("x<hi>y", false, false),
            (Ids{Id(*t, S(kSp, "x")), hi, Id(*t, kSp), Id(*t, "y")}));
  EXPECT_EQ(t->Detokenize(Ids{hi}), "<hi>");  // user-defined tokens always render
}

TEST(SpmTokenizerTest, TokensFoundByTextBecomeControlTokens) {
  // llama.cpp looks fill-in-the-middle tokens up by text only when the file names none, and
  // makes the one it finds a control token: then plain text no longer splits at it.
  Vocab v = SpmVocab({{kSp, -1}, {"x", -1}});
  v.tokens.push_back("<|fim_prefix|>");
  v.scores.push_back(0);
  v.token_types.push_back(static_cast<int32_t>(TokenType::kUserDefined));
  const TokenId fim = static_cast<TokenId>(v.tokens.size() - 1);
  auto found = Make(v);
  ASSERT_NE(found, nullptr);
  EXPECT_NE(found->token_attr(fim) & kAttrControl, 0u);
  const Ids plain = found->Tokenize("x<|fim_prefix|>", false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), fim), 0);
  v.fim_pre_id = 0;  // the file names another token: no lookup, the token stays user-defined
  auto named = Make(v);
  ASSERT_NE(named, nullptr);
  EXPECT_EQ(named->token_attr(fim) & kAttrControl, 0u);
  const Ids ids = named->Tokenize("x<|fim_prefix|>", false);
  EXPECT_EQ(ids.back(), fim);
}

TEST(SpmTokenizerTest, DetokenizeFollowsLlamaCpp) {
  auto t = Make(SpmVocab({{kSp, -1}, {"a", -1}, {S(kSp, "a"), -0.5f}}));
  ASSERT_NE(t, nullptr);
  const TokenId sa = Id(*t, S(kSp, "a")), sp = Id(*t, kSp);
  EXPECT_EQ(t->TokenToPiece(sa), " a");
  EXPECT_EQ(t->TokenToPiece(3 + '\n'), "\n");
  EXPECT_EQ(t->TokenToPiece(1, /*special=*/false), "");
  EXPECT_EQ(t->TokenToPiece(1, /*special=*/true), "<s>");
  // The first piece loses one leading space (the prefix the tokenizer added).
  EXPECT_EQ(t->Detokenize(Ids{sp, sa, sa}), " a a");
  // Control tokens vanish unless unparsed; removing the BOS keeps the first space.
  EXPECT_EQ(t->Detokenize(Ids{1, sa, 2}), " a");
  EXPECT_EQ(t->Detokenize(Ids{1, sa, 2}, /*remove_special=*/true), " a");
  EXPECT_EQ(t->Detokenize(Ids{1, sa, 2}, false, /*unparse_special=*/true), "<s> a</s>");
  // Byte tokens reassemble multi-byte characters.
  EXPECT_EQ(t->Detokenize(Ids{sa, 3 + 0xC3, 3 + 0xA9}), "a\xC3\xA9");
}

TEST(SpmTokenizerTest, SpecialIdsAndEndOfGeneration) {
  Vocab v = SpmVocab({{"a", -1}});
  v.bos_id = 4294967295u;  // "none" as stories260K stores it: ignored, the default stays
  v.eos_id = 2;
  auto t = Make(v);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->bos(), 1);
  EXPECT_EQ(t->eos(), 2);
  EXPECT_EQ(t->unk(), 0);
  EXPECT_TRUE(t->IsEog(2));
  EXPECT_FALSE(t->IsEog(1));
}

TEST(TokenizerCreateTest, RejectsBadVocabularies) {
  Vocab v = SpmVocab({{"a", -1}});
  v.model = "bert";
  EXPECT_TRUE(Tokenizer::Create(v).status().IsNotSupported());

  v = SpmVocab({{"a", -1}, {"a", -2}});
  auto dup = Tokenizer::Create(v);
  ASSERT_FALSE(dup.ok());
  EXPECT_TRUE(dup.status().IsCorruption());
  EXPECT_NE(dup.status().message().find("duplicate token 'a'"), std::string::npos);

  v = SpmVocab({{"a", -1}});
  v.scores.resize(10);
  EXPECT_TRUE(Tokenizer::Create(v).status().IsCorruption());

  v = Vocab{};
  v.model = "llama";
  v.tokens = {"<unk>"};  // BOS defaults to id 1, which does not exist, yet add_bos is on
  EXPECT_TRUE(Tokenizer::Create(v).status().IsInvalidArgument());

  v = Vocab{};
  v.model = "gpt2";
  v.tokens = {"a"};
  EXPECT_TRUE(Tokenizer::Create(v).status().IsInvalidArgument());  // no merges
  v.merges = {"a a"};
  v.pre = "no-such-pre";
  EXPECT_TRUE(Tokenizer::Create(v).status().IsNotSupported());
}

// A byte-level vocabulary over a handful of characters.
Vocab BpeVocab(std::vector<std::string> merges, const std::string& pre = "gpt-2") {
  Vocab v;
  v.model = "gpt2";
  v.pre = pre;
  v.tokens = {"a", "b", "c", "h", "e", "l", "o", "w", "r", "d", ",", "\xC4\xA0" /* Ġ */,
              "ab", "bc", "he", "ll", "hell", "hello", "\xC4\xA0w", "abc", "\xC4\xA0,",
              "<|endoftext|>"};
  v.token_types.assign(v.tokens.size(), static_cast<int32_t>(TokenType::kNormal));
  v.token_types.back() = static_cast<int32_t>(TokenType::kControl);
  v.merges = std::move(merges);
  v.eos_id = v.bos_id = static_cast<uint32_t>(v.tokens.size() - 1);
  return v;
}

TEST(BpeTokenizerTest, LowestRankMergesFirstWithinWords) {
  auto t = Make(BpeVocab({"h e", "l l", "he ll", "hell o", "\xC4\xA0 w", "b c", "a b"}));
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->Tokenize("hello world", false),
            (Ids{Id(*t, "hello"), Id(*t, "\xC4\xA0w"), Id(*t, "o"), Id(*t, "r"), Id(*t, "l"),
                 Id(*t, "d")}));
  EXPECT_EQ(t->Tokenize("abc", false), (Ids{Id(*t, "a"), Id(*t, "bc")}));  // "b c" ranks first

  auto u = Make(BpeVocab({"a b", "b c"}));
  ASSERT_NE(u, nullptr);
  EXPECT_EQ(u->Tokenize("abc", false), (Ids{Id(*u, "ab"), Id(*u, "c")}));
}

TEST(BpeTokenizerTest, IgnoreMergesTakesWholeWordTokens) {
  // llama-bpe: a word that is a token is used as is, even if no merge path builds it.
  auto t = Make(BpeVocab({"a b"}, "llama-bpe"));
  ASSERT_NE(t, nullptr);
  EXPECT_TRUE(t->add_bos());
  EXPECT_EQ(t->Tokenize("abc", false), (Ids{Id(*t, "abc")}));
  auto g = Make(BpeVocab({"a b"}, "gpt-2"));
  ASSERT_NE(g, nullptr);
  EXPECT_FALSE(g->add_bos());
  EXPECT_EQ(g->Tokenize("abc", false), (Ids{Id(*g, "ab"), Id(*g, "c")}));
}

TEST(BpeTokenizerTest, SpecialTokensAndDetokenize) {
  auto t = Make(BpeVocab({"h e", "l l", "he ll", "hell o"}));
  ASSERT_NE(t, nullptr);
  const TokenId eot = Id(*t, "<|endoftext|>");
  EXPECT_TRUE(t->IsEog(eot));
  EXPECT_EQ(t->Tokenize("hello<|endoftext|>", false, true), (Ids{Id(*t, "hello"), eot}));
  EXPECT_EQ(t->Detokenize(Ids{Id(*t, "hello"), Id(*t, "\xC4\xA0w")}), "hello w");
  // gpt-2 cleans the space before punctuation; qwen2 does not.
  EXPECT_EQ(t->Detokenize(Ids{Id(*t, "hello"), Id(*t, "\xC4\xA0,")}), "hello,");
  auto q = Make(BpeVocab({"h e"}, "qwen2"));
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->Detokenize(Ids{Id(*q, "he"), Id(*q, "\xC4\xA0,")}), "he ,");
}

}  // namespace
}  // namespace dualblade
