// Pretokenizer: the regex word split, stage by stage, with llama.cpp's gap rule.
#include "model/pretokenizer.h"

#include <random>

#include <gtest/gtest.h>

#include "model/unicode.h"

namespace dualblade {
namespace {

using Words = std::vector<std::string>;

Words Split(PreRegex family, std::string_view text) {
  auto p = Pretokenizer::Create(PreRegexPatterns(family));
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  return (*p)->Split(text);
}

TEST(PretokenizerTest, Gpt2SplitsWordsContractionsAndSpaces) {
  EXPECT_EQ(Split(PreRegex::kGpt2, "Hello world's  test   \n"),
            (Words{"Hello", " world", "'s", " ", " test", "   \n"}));
}

TEST(PretokenizerTest, TextNoExpressionMatchesIsAWordOfItsOwn) {
  // "\s+(?!\S)" cannot take a lone tab before a letter: the tab is a gap, kept as a word.
  EXPECT_EQ(Split(PreRegex::kGpt2, "a\tb"), (Words{"a", "\t", "b"}));
}

TEST(PretokenizerTest, Llama3GroupsDigitsByThree) {
  EXPECT_EQ(Split(PreRegex::kLlama3, "12345 I'M"), (Words{"123", "45", " I", "'M"}));
}

TEST(PretokenizerTest, ExpressionsApplyInSequence) {
  // Falcon: punctuation runs, then GPT-2's expression, then runs of three ASCII digits.
  EXPECT_EQ(Split(PreRegex::kFalcon, "hello, 12345!"),
            (Words{"hello", ",", " ", "123", "45", "!"}));
}

TEST(PretokenizerTest, CasedWordsSplitAtCaseChanges) {
  // Tekken/GPT-4o: capitals then lower-case letters form one word ("HTTPServer"); a capital
  // after lower-case letters starts the next one ("Hello" "World"). Tekken digits go singly.
  EXPECT_EQ(Split(PreRegex::kGpt4o, "HelloWorld they're"),
            (Words{"Hello", "World", " they're"}));
  EXPECT_EQ(Split(PreRegex::kTekken, "HTTPServer 1234"),
            (Words{"HTTPServer", " ", "1", "2", "3", "4"}));
}

TEST(PretokenizerTest, DollarMatchesOnlyAtTheVeryEnd) {
  auto p = Pretokenizer::Create({"b$"});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ((*p)->Split("ab\n"), (Words{"ab\n"}));  // not before a final newline
  EXPECT_EQ((*p)->Split("ab"), (Words{"a", "b"}));
}

TEST(PretokenizerTest, WhitespaceIsUnicodeWhiteSpace) {
  // U+3000 IDEOGRAPHIC SPACE is whitespace: a lone one before a letter is a gap word.
  EXPECT_EQ(Split(PreRegex::kGpt2, "a\xE3\x80\x80" "b"), (Words{"a", "\xE3\x80\x80", "b"}));
  // U+180E MONGOLIAN VOWEL SEPARATOR is not (PCRE2's own \s would take it): it goes with the
  // space before it as "other" characters.
  EXPECT_EQ(Split(PreRegex::kGpt2, " \xE1\xA0\x8Ex"), (Words{" \xE1\xA0\x8E", "x"}));
}

TEST(PretokenizerTest, InvalidUtf8BecomesReplacementCharacters) {
  EXPECT_EQ(Split(PreRegex::kGpt2, "a\xFF" "b"), (Words{"a", "\xEF\xBF\xBD", "b"}));
  // An encoded surrogate passes through (llama.cpp decodes it) without upsetting PCRE2.
  EXPECT_EQ(Split(PreRegex::kGpt2, "x\xED\xA0\x80"), (Words{"x", "\xED\xA0\x80"}));
}

TEST(PretokenizerTest, EveryFamilyCoversTheTextWithoutEmptyWords) {
  const std::vector<std::string> alphabet = {"a", "Z", " ", "  ", "\n", "\t", "7", "12", ",", "'s",
                                             "\xC3\xA4", "\xE4\xB8\x96", "\xF0\x9F\xA6\x99",
                                             "\xE2\x80\x8D", "!", "\xC2\xBD", "\r\n"};
  std::mt19937 rng(7);
  for (PreRegex family : {PreRegex::kDefault, PreRegex::kLlama3, PreRegex::kDeepseekLlm,
                          PreRegex::kDeepseekCoder, PreRegex::kFalcon, PreRegex::kStarcoder,
                          PreRegex::kGpt2, PreRegex::kQwen2, PreRegex::kTekken, PreRegex::kGpt4o,
                          PreRegex::kPoro, PreRegex::kViking}) {
    auto p = Pretokenizer::Create(PreRegexPatterns(family));
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    for (int iter = 0; iter < 200; ++iter) {
      std::string text;
      const int n = static_cast<int>(rng() % 30);
      for (int i = 0; i < n; ++i) text += alphabet[rng() % alphabet.size()];
      std::string joined;
      for (const std::string& w : (*p)->Split(text)) {
        ASSERT_FALSE(w.empty());
        joined += w;
      }
      EXPECT_EQ(joined, text);
    }
  }
}

TEST(PretokenizerTest, NamesMapToLlamaCppFamilies) {
  auto llama3 = LookupPreTokenizer("llama-bpe");
  ASSERT_TRUE(llama3.ok());
  EXPECT_EQ(llama3->regex, PreRegex::kLlama3);
  EXPECT_TRUE(llama3->ignore_merges);
  EXPECT_TRUE(llama3->add_bos);
  auto def = LookupPreTokenizer("");
  ASSERT_TRUE(def.ok());
  EXPECT_EQ(def->regex, PreRegex::kDefault);
  auto qwen = LookupPreTokenizer("qwen2");
  ASSERT_TRUE(qwen.ok());
  EXPECT_FALSE(qwen->clean_spaces);
  auto bad = LookupPreTokenizer("no-such-pre");
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(bad.status().IsNotSupported());
  EXPECT_NE(bad.status().message().find("no-such-pre"), std::string::npos);
}

TEST(PretokenizerTest, BadExpressionIsAnError) {
  auto p = Pretokenizer::Create({"(unclosed"});
  ASSERT_FALSE(p.ok());
  EXPECT_TRUE(p.status().IsInvalidArgument());
}

}  // namespace
}  // namespace dualblade
