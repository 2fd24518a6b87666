// Tokenization equal to llama.cpp's on its own test vocabularies (../shared/models/tokenizer:
// llama.cpp's models/ggml-vocab-*.gguf with their .inp/.out cases) and on stories260K's golden
// file (ids with BOS, and the detokenized text). Skips, saying why, when the files are absent.
#include <chrono>
#include <random>
#include <thread>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "model/gguf.h"
#include "model/test_models.h"
#include "model/tokenizer.h"

namespace dualblade {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::unique_ptr<Tokenizer> LoadTokenizer(const std::string& path) {
  auto gguf = GgufFile::Open(path);
  EXPECT_TRUE(gguf.ok()) << gguf.status().ToString();
  if (!gguf.ok()) return nullptr;
  auto tok = LoadTokenizer(**gguf);
  EXPECT_TRUE(tok.ok()) << tok.status().ToString();
  if (!tok.ok()) return nullptr;
  return std::move(tok).value();
}

// llama.cpp's test-tokenizer-0 format: cases separated by "\n__ggml_vocab_test__\n" (the file
// ends with one), expected ids one case per line.
std::vector<std::string> ReadCases(const std::string& path) {
  const std::string text = ReadFile(path);
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> cases;
  size_t pos = 0;
  for (size_t hit; (hit = text.find(sep, pos)) != std::string::npos; pos = hit + sep.size()) {
    cases.push_back(text.substr(pos, hit - pos));
  }
  return cases;
}

std::vector<std::vector<TokenId>> ReadExpected(const std::string& path) {
  std::ifstream f(path);
  std::vector<std::vector<TokenId>> out;
  for (std::string line; std::getline(f, line);) {
    std::istringstream ss(line);
    std::vector<TokenId> ids;
    for (TokenId id; ss >> id;) ids.push_back(id);
    out.push_back(std::move(ids));
  }
  return out;
}

class VocabCasesTest : public ::testing::TestWithParam<const char*> {};

TEST_P(VocabCasesTest, EveryCaseMatchesLlamaCpp) {
  const std::string name = GetParam();
  DB_REFERENCE_MODEL_OR_SKIP(path, "tokenizer/ggml-vocab-" + name + ".gguf");
  auto tok = LoadTokenizer(path);
  ASSERT_NE(tok, nullptr);
  const auto cases = ReadCases(path + ".inp");
  const auto expected = ReadExpected(path + ".out");
  ASSERT_EQ(cases.size(), expected.size()) << "case and expectation counts differ";
  ASSERT_GT(cases.size(), 0u);

  size_t pass = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto ids = tok->Tokenize(cases[i], /*add_special=*/false, /*parse_special=*/false);
    if (ids == expected[i]) {
      ++pass;
    } else {
      ADD_FAILURE() << name << " case " << i << " '" << cases[i] << "': got "
                    << ::testing::PrintToString(ids) << ", llama.cpp "
                    << ::testing::PrintToString(expected[i]);
    }
  }
  std::printf("[ vocab    ] %s: %zu/%zu cases equal to llama.cpp\n", name.c_str(), pass,
              cases.size());
}

INSTANTIATE_TEST_SUITE_P(LlamaCppVocabs, VocabCasesTest,
                         ::testing::Values("llama-spm", "phi-3", "gpt-2", "deepseek-llm", "falcon",
                                           "starcoder"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& c : s) c = (c == '-') ? '_' : c;
                           return s;
                         });

TEST(Stories260KGoldenTest, TokenizeAndDetokenizeMatchLlamaCpp) {
  DB_REFERENCE_MODEL_OR_SKIP(model, "stories260K.gguf");
  DB_REFERENCE_MODEL_OR_SKIP(golden_path, "golden/tokenize-stories260K.json");
  auto tok = LoadTokenizer(model);
  ASSERT_NE(tok, nullptr);
  const auto golden = nlohmann::json::parse(ReadFile(golden_path));
  ASSERT_EQ(golden["schema"], "llama-golden-tokenize/1");
  const bool add_special = golden["tokenize"]["add_special"];
  const bool parse_special = golden["tokenize"]["parse_special"];
  EXPECT_EQ(tok->add_bos(), golden["tokenize"]["model_add_bos"].get<bool>());
  EXPECT_EQ(tok->add_eos(), golden["tokenize"]["model_add_eos"].get<bool>());
  const bool remove_special = golden["detokenize"]["remove_special"];
  const bool unparse_special = golden["detokenize"]["unparse_special"];

  size_t pass = 0, n = 0;
  for (const auto& c : golden["cases"]) {
    ++n;
    const std::string text = c["text"];
    const auto want = c["ids"].get<std::vector<TokenId>>();
    const auto ids = tok->Tokenize(text, add_special, parse_special);
    EXPECT_EQ(ids, want) << "text '" << text << "'";
    std::vector<std::string> texts;
    for (TokenId id : ids) texts.push_back(tok->token_text(id));
    EXPECT_EQ(texts, c["token_texts"].get<std::vector<std::string>>()) << "text '" << text << "'";
    // The golden detokenization is of the ids after the leading BOS.
    ASSERT_FALSE(want.empty());
    ASSERT_EQ(want.front(), tok->bos());
    const std::vector<TokenId> rest(want.begin() + 1, want.end());
    const std::string detok = tok->Detokenize(rest, remove_special, unparse_special);
    EXPECT_EQ(detok, c["detokenized"].get<std::string>()) << "text '" << text << "'";
    if (ids == want && detok == c["detokenized"].get<std::string>()) ++pass;
  }
  std::printf("[ golden   ] stories260K: %zu/%zu cases equal to llama.cpp\n", pass, n);
}

// The text-prompt run files of stories260K (and its q8_0/q4_0 variants): the prompt tokenizes to
// the ids llama.cpp fed, and the generated ids' pieces concatenate to its greedy_text (no
// leading-space removal; control tokens such as a generated BOS render as nothing).
TEST(Stories260KGoldenTest, RunFilesPromptIdsAndGreedyText) {
  DB_REFERENCE_MODEL_OR_SKIP(model, "stories260K.gguf");
  auto tok = LoadTokenizer(model);
  ASSERT_NE(tok, nullptr);
  size_t checked = 0;
  for (const char* variant : {"stories260K", "stories260K-q8_0", "stories260K-q4_0"}) {
    for (const char* input : {"once-upon-a-time", "lily-and-tom", "the-little-dog", "long-public"}) {
      const std::string path = ::dualblade::testing::ReferenceModelsDir() + "/golden/" + variant +
                               "__" + input + ".json";
      if (!::dualblade::testing::FileExists(path)) continue;
      const auto run = nlohmann::json::parse(ReadFile(path));
      ASSERT_EQ(run["input_kind"], "text") << path;
      const auto ids = tok->Tokenize(run["prompt"].get<std::string>(),
                                     run["tokenize"]["add_special"].get<bool>(),
                                     run["tokenize"]["parse_special"].get<bool>());
      EXPECT_EQ(ids, run["input_ids"].get<std::vector<TokenId>>()) << path;
      auto greedy_text = [&](const nlohmann::json& section) {
        std::string text;
        for (TokenId id : section["greedy_ids"].get<std::vector<TokenId>>()) {
          text += tok->TokenToPiece(id, /*special=*/false);
        }
        return text;
      };
      EXPECT_EQ(greedy_text(run), run["greedy_text"].get<std::string>()) << path;
      if (run.contains("f32_compute") && !run["f32_compute"].is_null()) {
        EXPECT_EQ(greedy_text(run["f32_compute"]),
                  run["f32_compute"]["greedy_text"].get<std::string>())
            << path;
      }
      ++checked;
    }
  }
  if (checked == 0) GTEST_SKIP() << "no stories260K run files in ../shared/models/golden";
  std::printf("[ golden   ] stories260K run files: %zu prompts and greedy texts checked\n", checked);
}

// A 32k-token vocabulary must tokenize a few kilobytes in well under a second (hash lookups and a
// heap per word, nothing quadratic in the vocabulary).
TEST(TokenizerSpeedTest, FewKilobytesAreFast) {
  DB_REFERENCE_MODEL_OR_SKIP(spm_path, "tokenizer/ggml-vocab-llama-spm.gguf");
  DB_REFERENCE_MODEL_OR_SKIP(bpe_path, "tokenizer/ggml-vocab-gpt-2.gguf");
  DB_REFERENCE_MODEL_OR_SKIP(prompt_path, "golden/prompt-long-public.txt");
  std::string text;
  const std::string prompt = ReadFile(prompt_path);
  while (text.size() < 8192) text += prompt;
  for (const std::string& path : {spm_path, bpe_path}) {
    auto tok = LoadTokenizer(path);
    ASSERT_NE(tok, nullptr);
    const auto t0 = std::chrono::steady_clock::now();
    const auto ids = tok->Tokenize(text, true);
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::printf("[ speed    ] %s: %zu bytes -> %zu tokens in %.2f ms\n",
                path.substr(path.rfind('/') + 1).c_str(), text.size(), ids.size(), ms);
    EXPECT_LT(ms, 1000.0);
    // Round trip: the pieces after BOS give the text back (the SentencePiece prefix space is
    // dropped from the first piece).
    ASSERT_FALSE(ids.empty());
    const size_t skip = tok->add_bos() ? 1 : 0;
    EXPECT_EQ(tok->Detokenize(std::span<const TokenId>(ids).subspan(skip)), text);
  }
}

// Random text round-trips through tokenize + detokenize (SentencePiece with byte fallback, and a
// byte-level vocabulary that does not clean spaces), and random bytes never yield an id outside
// the vocabulary.
TEST(TokenizerRoundTripTest, RandomTextRoundTrips) {
  std::mt19937 rng(20261129);
  const std::vector<std::string> alphabet = {
      "a", "Z", "q", " ", "  ", "\n", "\t", "\r\n", "7", "42", ",", ".", "'s", "'", "!", "<s>",
      "\xC3\xA4", "\xE4\xB8\x96", "\xF0\x9F\xA6\x99", "\xE2\x80\x8D", "\xC2\xBD",
      "\xD0\xBD\xD0\xB5", "\xE1\x9E\x80\xE1\x9E\xB6", "\xEF\xBD\x9E"};
  size_t checked = 0;
  for (const char* name : {"llama-spm", "deepseek-llm"}) {
    const std::string path =
        ::dualblade::testing::ReferenceModelsDir() + "/tokenizer/ggml-vocab-" + name + ".gguf";
    if (!::dualblade::testing::FileExists(path)) continue;
    auto tok = LoadTokenizer(path);
    ASSERT_NE(tok, nullptr);
    for (int iter = 0; iter < 300; ++iter) {
      std::string text;
      const int n = 1 + static_cast<int>(rng() % 40);
      for (int i = 0; i < n; ++i) text += alphabet[rng() % alphabet.size()];
      const auto ids = tok->Tokenize(text, /*add_special=*/false);
      EXPECT_EQ(tok->Detokenize(ids), text) << name;

      std::string bytes(rng() % 64, '\0');
      for (char& c : bytes) c = static_cast<char>(rng());
      for (TokenId id : tok->Tokenize(bytes, true, true)) {
        ASSERT_TRUE(id >= 0 && id < tok->n_vocab()) << name;
      }
    }
    ++checked;
  }
  if (checked == 0) GTEST_SKIP() << "no vocabularies in ../shared/models/tokenizer";
}

// Tokenize is const and shares no mutable state: threads get the same ids as one thread does.
TEST(TokenizerConcurrencyTest, ThreadsGetTheSameIds) {
  DB_REFERENCE_MODEL_OR_SKIP(path, "tokenizer/ggml-vocab-gpt-2.gguf");
  DB_REFERENCE_MODEL_OR_SKIP(prompt_path, "golden/prompt-long-public.txt");
  auto tok = LoadTokenizer(path);
  ASSERT_NE(tok, nullptr);
  const std::string text = ReadFile(prompt_path);
  const auto want = tok->Tokenize(text, true);
  std::vector<std::vector<TokenId>> got(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < got.size(); ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) got[t] = tok->Tokenize(text, true);
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& ids : got) EXPECT_EQ(ids, want);
}

}  // namespace
}  // namespace dualblade
