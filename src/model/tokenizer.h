// Tokenizer: text <-> token ids for a GGUF vocabulary, token for token like llama.cpp.
//
// Two algorithms, chosen by `tokenizer.ggml.model`:
//   "llama": SentencePiece-style BPE over characters, merging the adjacent pair whose merged text
//            is the highest-scoring token first; spaces escaped as U+2581; a leading space added
//            (add_space_prefix); characters no token covers fall back to <0xXX> byte tokens.
//   "gpt2":  byte-level BPE: the text is split into words by the pre-tokenizer's expressions,
//            every byte is mapped into GPT-2's printable alphabet, and within each word the
//            adjacent pair with the lowest merge rank is merged first.
// Before either runs, the text is cut at special tokens: user-defined tokens always, control
// tokens only when parse_special is set (llama.cpp tokenizer_st_partition).
//
// Thread-safety: immutable after Create; every method is const and safe from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/status.h"
#include "model/vocab.h"

namespace dualblade {

class GgufFile;
class Pretokenizer;

using TokenId = int32_t;
inline constexpr TokenId kNoToken = -1;

// Token attribute bits (llama.cpp `llama_token_attr`).
enum TokenAttr : uint32_t {
  kAttrUndefined = 0,
  kAttrUnknown = 1u << 0,
  kAttrUnused = 1u << 1,
  kAttrNormal = 1u << 2,
  kAttrControl = 1u << 3,
  kAttrUserDefined = 1u << 4,
  kAttrByte = 1u << 5,
  kAttrNormalized = 1u << 6,
  kAttrLstrip = 1u << 7,  // a special token swallows the whitespace before it
  kAttrRstrip = 1u << 8,  // ... and after it
  kAttrSingleWord = 1u << 9,
};

class Tokenizer {
 public:
  enum class Type { kSpm, kBpe };

  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Builds a tokenizer from `vocab`, applying llama.cpp's defaults for absent keys. Errors:
  // NotSupported for another tokenizer model or pre-tokenizer; Corruption for duplicate tokens
  // or arrays shorter than the token list; InvalidArgument when add_bos/add_eos is requested but
  // there is no such token, or a byte-level vocabulary has no merges.
  static Result<std::unique_ptr<Tokenizer>> Create(const Vocab& vocab);

  // Token ids of `text` (any bytes; invalid UTF-8 is handled as llama.cpp does). `add_special`
  // adds BOS/EOS as the vocabulary prescribes; `parse_special` also recognizes control tokens
  // such as "<|endoftext|>" written in the text.
  std::vector<TokenId> Tokenize(std::string_view text, bool add_special,
                                bool parse_special = false) const;

  // The bytes token `id` stands for. Control and unknown tokens render as their text only when
  // `special` is set, else as nothing. REQUIRES: 0 <= id < n_vocab().
  const std::string& TokenToPiece(TokenId id, bool special = true) const;

  // llama.cpp's llama_detokenize: pieces concatenated; the first piece loses one leading space
  // when the vocabulary adds a space prefix; `remove_special` drops a leading BOS / trailing EOS
  // the vocabulary adds; `unparse_special` renders control tokens; byte-level vocabularies then
  // tidy spaces before punctuation and contractions when their pre-tokenizer asks for it.
  // REQUIRES: every id in range.
  std::string Detokenize(std::span<const TokenId> ids, bool remove_special = false,
                         bool unparse_special = false) const;

  Type type() const { return type_; }
  int32_t n_vocab() const { return static_cast<int32_t>(tokens_.size()); }
  // kNoToken when the vocabulary has none.
  TokenId bos() const { return bos_id_; }
  TokenId eos() const { return eos_id_; }
  TokenId eot() const { return eot_id_; }
  TokenId unk() const { return unk_id_; }
  bool add_bos() const { return add_bos_; }
  bool add_eos() const { return add_eos_; }
  bool add_space_prefix() const { return add_space_prefix_; }
  // Tokens that end generation (EOS, EOT, EOM and the end-of-turn tokens llama.cpp knows by text).
  bool IsEog(TokenId id) const { return eog_ids_.count(id) > 0; }

  // The vocabulary text of `id` (e.g. "▁there", "<0x0A>"). REQUIRES: id in range.
  const std::string& token_text(TokenId id) const { return tokens_[id].text; }
  float token_score(TokenId id) const { return tokens_[id].score; }
  uint32_t token_attr(TokenId id) const { return tokens_[id].attr; }
  // The id whose text is exactly `text`, or kNoToken.
  TokenId TextToToken(std::string_view text) const;

 private:
  struct TokenData {
    std::string text;
    float score = 0;
    uint32_t attr = kAttrNormal;
  };
  // Keys are views into tokens_[i].text and merge_text_, which never move once built, so the
  // maps hold no second copy of 100k+ strings.
  using ViewMap = std::unordered_map<std::string_view, int32_t>;

  Tokenizer();
  Status Init(const Vocab& vocab);
  void DetectSpecialTokens();
  void ApplyModelSpecificAttributes(const std::string& model_name);
  std::string PieceUncached(TokenId id) const;

  // Text (already split at special tokens) -> ids, appended to *out.
  void TokenizeSpm(std::string_view text, std::vector<TokenId>* out) const;
  void TokenizeBpe(std::string_view text, std::vector<TokenId>* out) const;
  // Merge rank of the pair (left, right), or -1.
  int32_t BpeRank(std::string_view left, std::string_view right, std::string* scratch) const;

  Type type_ = Type::kSpm;
  std::vector<TokenData> tokens_;
  ViewMap token_to_id_;
  std::string merge_text_;               // every merge, back to back
  ViewMap bpe_ranks_;                    // "left right" -> rank
  std::vector<TokenId> special_tokens_;  // control/user-defined/unknown ids, longest text first
  std::vector<std::string> pieces_;      // TokenToPiece(id, special=true), precomputed
  std::vector<TokenId> byte_tokens_;     // SentencePiece byte fallback: byte -> id or kNoToken
  std::unique_ptr<Pretokenizer> pretokenizer_;
  std::unordered_set<TokenId> eog_ids_;

  TokenId bos_id_ = kNoToken, eos_id_ = kNoToken, eot_id_ = kNoToken, eom_id_ = kNoToken;
  TokenId unk_id_ = kNoToken, sep_id_ = kNoToken, pad_id_ = kNoToken, mask_id_ = kNoToken;
  TokenId fim_pre_id_ = kNoToken, fim_suf_id_ = kNoToken, fim_mid_id_ = kNoToken;
  TokenId fim_pad_id_ = kNoToken, fim_rep_id_ = kNoToken, fim_sep_id_ = kNoToken;
  bool add_bos_ = false, add_eos_ = false, add_space_prefix_ = false;
  bool clean_spaces_ = false, ignore_merges_ = false;
};

// The tokenizer of a GGUF model file: LoadVocab then Tokenizer::Create, errors from either.
Result<std::unique_ptr<Tokenizer>> LoadTokenizer(const GgufFile& gguf);

}  // namespace dualblade
