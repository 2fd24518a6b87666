// Pretokenizer: splits text into the words that byte-level BPE merges within, using the regular
// expressions of the vocabulary's pre-tokenizer type (GGUF key `tokenizer.ggml.pre`).
//
// The split reproduces llama.cpp's unicode_regex_split: the expressions apply in sequence, each
// one splitting every word left by the previous one; the text a match does not cover between two
// matches is a word too (nothing is dropped). Each expression sees one word as its whole subject,
// so `$` and lookaheads such as `\s+(?!\S)` stop at the word's end. Matching uses PCRE2 in UTF +
// UCP mode (`\p{L}`, `\p{N}` follow Unicode categories), JIT-compiled where available; `\s` is
// exactly Unicode's White_Space, as in llama.cpp. Categories come from PCRE2's Unicode tables
// (Unicode 14 in PCRE2 10.42) and llama.cpp's from its own generated ones: characters assigned
// in later Unicode versions may be classified differently (they are "unassigned" here).
//
// Thread-safety: immutable after Create; Split may run concurrently from any number of threads.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace dualblade {

// Which family of split expressions a pre-tokenizer name selects (llama.cpp LLAMA_VOCAB_PRE_TYPE_*,
// several names share one family).
enum class PreRegex {
  kDefault,        // "default" and BPE vocabularies that name none
  kLlama3,         // llama3, llama-bpe, dbrx, smaug-bpe, ...
  kDeepseekLlm,
  kDeepseekCoder,
  kFalcon,
  kStarcoder,      // starcoder, refact, command-r, smollm, codeshell, exaone, minerva-7b
  kGpt2,           // gpt-2, mpt, olmo, phi-2, jina-*, ...
  kQwen2,          // qwen2, stablelm2, megrez, hunyuan, deepseek-r1-qwen
  kTekken,         // Mistral's tekken (Mistral Nemo)
  kGpt4o,          // gpt-4o, llama4
  kPoro,           // poro-chat, bloom, gpt3-finnish
  kViking,
};

// What a pre-tokenizer name means for the tokenizer (llama.cpp llama_vocab::impl::load).
struct PreTokenizerSpec {
  PreRegex regex = PreRegex::kDefault;
  bool clean_spaces = true;    // detokenize strips the space before ?!., and 's 'm 're 've
  bool ignore_merges = false;  // a word that is already a token is taken whole
  bool add_bos = false;        // default for tokenizer.ggml.add_bos_token
};

// The spec for `name` (empty = "default"); NotSupported naming it when llama.cpp's list has no
// such pre-tokenizer or this implementation does not carry its expressions.
Result<PreTokenizerSpec> LookupPreTokenizer(std::string_view name);

// The expressions of a family, in the order they apply (PCRE2 syntax).
std::vector<std::string> PreRegexPatterns(PreRegex family);

class Pretokenizer {
 public:
  ~Pretokenizer();
  Pretokenizer(const Pretokenizer&) = delete;
  Pretokenizer& operator=(const Pretokenizer&) = delete;

  // Compiles `patterns`; InvalidArgument with PCRE2's message and offset when one does not
  // compile.
  static Result<std::unique_ptr<Pretokenizer>> Create(const std::vector<std::string>& patterns);

  // The words of `text`, in order, concatenating back to `text` after llama.cpp's lenient UTF-8
  // decoding (each undecodable byte becomes U+FFFD). Never contains an empty word.
  std::vector<std::string> Split(std::string_view text) const;

 private:
  struct Regex;
  Pretokenizer() = default;
  // Splits subject[begin, end) with `re`, appending word end offsets to *ends.
  void SplitOne(const Regex& re, const std::string& subject, size_t begin, size_t end,
                void* match_data, std::vector<size_t>* ends) const;

  std::vector<std::unique_ptr<Regex>> regexes_;
};

}  // namespace dualblade
