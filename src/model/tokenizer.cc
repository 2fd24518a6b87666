// Tokenizer: construction from a Vocab (llama.cpp llama_vocab::impl::load), the special-token
// partition, and detokenization. The two merge algorithms live in tokenizer_spm.cc and
// tokenizer_bpe.cc.
#include "model/tokenizer.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "model/gguf.h"
#include "model/pretokenizer.h"
#include "model/unicode.h"

namespace dualblade {

namespace {

uint32_t AttrFromType(int32_t type) {
  switch (static_cast<TokenType>(type)) {
    case TokenType::kUnknown: return kAttrUnknown;
    case TokenType::kUnused: return kAttrUnused;
    case TokenType::kNormal: return kAttrNormal;
    case TokenType::kControl: return kAttrControl;
    case TokenType::kUserDefined: return kAttrUserDefined;
    case TokenType::kByte: return kAttrByte;
    default: return kAttrUndefined;
  }
}

// C isspace() in the "C" locale, without its undefined behaviour on negative chars.
bool IsCSpace(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

void ReplaceAll(std::string* s, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(s->size());
  size_t pos = 0;
  for (size_t hit; (hit = s->find(from, pos)) != std::string::npos; pos = hit + from.size()) {
    out.append(*s, pos, hit - pos);
    out.append(to);
  }
  out.append(*s, pos, std::string::npos);
  s->swap(out);
}

constexpr std::string_view kEscapedSpace = "\xE2\x96\x81";  // U+2581 LOWER ONE EIGHTH BLOCK

bool IsOneOf(std::string_view s, std::initializer_list<std::string_view> list) {
  return std::find(list.begin(), list.end(), s) != list.end();
}

}  // namespace

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;

Result<std::unique_ptr<Tokenizer>> Tokenizer::Create(const Vocab& vocab) {
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  DB_RETURN_IF_ERROR(t->Init(vocab));
  return t;
}

Result<std::unique_ptr<Tokenizer>> LoadTokenizer(const GgufFile& gguf) {
  DB_ASSIGN_OR_RETURN(Vocab vocab, LoadVocab(gguf));
  return Tokenizer::Create(vocab);
}

Status Tokenizer::Init(const Vocab& v) {
  PreTokenizerSpec pre;
  if (v.model == "llama") {
    type_ = Type::kSpm;
    bos_id_ = 1, eos_id_ = 2, unk_id_ = 0;
    add_space_prefix_ = true, add_bos_ = true, add_eos_ = false, clean_spaces_ = false;
  } else if (v.model == "gpt2") {
    type_ = Type::kBpe;
    DB_ASSIGN_OR_RETURN(pre, LookupPreTokenizer(v.pre));
    bos_id_ = 11, eos_id_ = 11;  // llama.cpp's defaults for byte-level vocabularies
    add_space_prefix_ = false, add_bos_ = pre.add_bos, add_eos_ = false;
    clean_spaces_ = pre.clean_spaces, ignore_merges_ = pre.ignore_merges;
  } else {
    return Status::NotSupported("tokenizer model '" + v.model +
                                "' is not supported (supported: llama, gpt2)");
  }
  if (v.add_space_prefix) add_space_prefix_ = *v.add_space_prefix;

  const size_t n = v.tokens.size();
  if (n == 0) return Status::Corruption("the vocabulary has no tokens");
  if (n > static_cast<size_t>(INT32_MAX)) return Status::Corruption("the vocabulary is too large");
  if (!v.scores.empty() && v.scores.size() < n) {
    return Status::Corruption("the vocabulary has " + std::to_string(v.scores.size()) +
                              " scores for " + std::to_string(n) + " tokens");
  }
  if (!v.token_types.empty() && v.token_types.size() < n) {
    return Status::Corruption("the vocabulary has " + std::to_string(v.token_types.size()) +
                              " token types for " + std::to_string(n) + " tokens");
  }
  tokens_.resize(n);
  token_to_id_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    TokenData& t = tokens_[i];
    t.text = v.tokens[i].empty() ? "[EMPTY_" + std::to_string(i) + "]" : v.tokens[i];
    const auto [it, inserted] =
        token_to_id_.emplace(std::string_view(t.text), static_cast<int32_t>(i));
    if (!inserted) {
      return Status::Corruption("duplicate token '" + t.text + "' in the vocabulary (ids " +
                                std::to_string(it->second) + " and " + std::to_string(i) + ")");
    }
    t.score = v.scores.empty() ? 0.0f : v.scores[i];
    t.attr = v.token_types.empty() ? kAttrNormal : AttrFromType(v.token_types[i]);
  }

  if (type_ == Type::kBpe) {
    if (v.merges.empty()) return Status::InvalidArgument("a byte-level BPE vocabulary needs merges");
    size_t total = 0;
    for (const std::string& m : v.merges) total += m.size();
    merge_text_.reserve(total);  // no reallocation below: the views stay valid
    for (const std::string& m : v.merges) merge_text_ += m;
    bpe_ranks_.reserve(v.merges.size());
    size_t offset = 0;
    for (size_t i = 0; i < v.merges.size(); ++i) {
      const std::string_view m(merge_text_.data() + offset, v.merges[i].size());
      offset += m.size();
      // llama.cpp splits at the first space after the first character and looks pairs up as
      // "left right", so a merge without such a space can never match; the first of two
      // identical merges keeps its rank.
      if (m.find(' ', 1) != std::string_view::npos) bpe_ranks_.emplace(m, static_cast<int32_t>(i));
    }
    DB_ASSIGN_OR_RETURN(pretokenizer_, Pretokenizer::Create(PreRegexPatterns(pre.regex)));
  } else {
    byte_tokens_.assign(256, kNoToken);
    static const char kHex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; ++b) {
      const std::string hex = {'<', '0', 'x', kHex[b >> 4], kHex[b & 15], '>'};
      TokenId id = TextToToken(hex);
      if (id == kNoToken) id = TextToToken(std::string(1, static_cast<char>(b)));
      byte_tokens_[b] = id;
    }
  }

  // Special ids: a default outside the vocabulary is dropped; a stored id outside it is ignored.
  const struct {
    const std::optional<uint32_t>& stored;
    TokenId* id;
  } kIds[] = {{v.bos_id, &bos_id_}, {v.eos_id, &eos_id_}, {v.eot_id, &eot_id_},
              {v.eom_id, &eom_id_}, {v.unk_id, &unk_id_}, {v.sep_id, &sep_id_},
              {v.pad_id, &pad_id_}, {v.mask_id, &mask_id_}, {v.fim_pre_id, &fim_pre_id_},
              {v.fim_suf_id, &fim_suf_id_}, {v.fim_mid_id, &fim_mid_id_},
              {v.fim_pad_id, &fim_pad_id_}, {v.fim_rep_id, &fim_rep_id_},
              {v.fim_sep_id, &fim_sep_id_}};
  for (const auto& k : kIds) {
    if (*k.id >= 0 && static_cast<size_t>(*k.id) >= n) *k.id = kNoToken;
    if (k.stored && *k.stored < n) *k.id = static_cast<TokenId>(*k.stored);
  }
  if (v.add_bos) add_bos_ = *v.add_bos;
  if (v.add_eos) add_eos_ = *v.add_eos;
  if (add_bos_ && bos_id_ == kNoToken) {
    return Status::InvalidArgument("tokenizer.ggml.add_bos_token is true but there is no BOS token");
  }
  if (add_eos_ && eos_id_ == kNoToken) {
    return Status::InvalidArgument("tokenizer.ggml.add_eos_token is true but there is no EOS token");
  }

  DetectSpecialTokens();

  for (size_t i = 0; i < n; ++i) {
    if (tokens_[i].attr & (kAttrControl | kAttrUserDefined | kAttrUnknown)) {
      special_tokens_.push_back(static_cast<TokenId>(i));
    }
  }
  // Longest first, so that a special token is never cut by a shorter one it contains.
  std::stable_sort(special_tokens_.begin(), special_tokens_.end(), [&](TokenId a, TokenId b) {
    return tokens_[a].text.size() > tokens_[b].text.size();
  });

  pieces_.resize(n);
  for (size_t i = 0; i < n; ++i) pieces_[i] = PieceUncached(static_cast<TokenId>(i));

  ApplyModelSpecificAttributes(v.name);
  return Status::OK();
}

// llama.cpp finds end-of-turn, fill-in-the-middle and end-of-generation tokens by their text and
// forces them to be control tokens (so that parse_special=false leaves them alone in text).
void Tokenizer::DetectSpecialTokens() {
  auto mark = [&](TokenId id) { tokens_[id].attr |= kAttrControl; };
  auto detect = [&](TokenId* slot, std::initializer_list<std::string_view> names) {
    if (*slot != kNoToken) return;
    for (std::string_view name : names) {
      const TokenId id = TextToToken(name);
      if (id != kNoToken) {
        *slot = id;
        mark(id);
        return;
      }
    }
  };
  detect(&eot_id_, {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                    "<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]",
                    "<\xEF\xBD\x9C" "end\xE2\x96\x81" "of\xE2\x96\x81" "sentence\xEF\xBD\x9C>",
                    "<end_of_utterance>"});
  detect(&eom_id_, {"<|eom_id|>"});
  // DeepSeek's are written with U+FF5C FULLWIDTH VERTICAL LINE and U+2581.
  detect(&fim_pre_id_, {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>",
                        "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "begin\xEF\xBD\x9C>", "<PRE>",
                        "\xE2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>"});
  detect(&fim_suf_id_, {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>",
                        "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "hole\xEF\xBD\x9C>", "<SUF>",
                        "\xE2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>"});
  detect(&fim_mid_id_, {"<|fim_middle|>", "<fim-middle>", "<fim_middle>",
                        "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "end\xEF\xBD\x9C>", "<MID>",
                        "\xE2\x96\x81<MID>", "<|code_middle|>", "<|middle|>"});
  detect(&fim_pad_id_, {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"});
  detect(&fim_rep_id_, {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"});
  detect(&fim_sep_id_, {"<|file_sep|>"});

  // Control tokens named "unused" are unused.
  for (TokenData& t : tokens_) {
    if ((t.attr & kAttrControl) && t.text.find("unused") != std::string::npos) {
      t.attr |= kAttrUnused;
    }
  }

  for (TokenId id : {fim_pad_id_, fim_rep_id_, fim_sep_id_, eos_id_, eot_id_, eom_id_}) {
    if (id != kNoToken) eog_ids_.insert(id);
  }
  for (size_t i = 0; i < tokens_.size(); ++i) {
    if (IsOneOf(tokens_[i].text,
                {"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>",
                 "<|calls|>", "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>",
                 "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>", "<end_of_utterance>", "<eos>",
                 "<turn|>", "<|tool_response>",
                 "<\xEF\xBD\x9C" "end\xE2\x96\x81" "of\xE2\x96\x81" "sentence\xEF\xBD\x9C>",
                 "[e~["})) {
      eog_ids_.insert(static_cast<TokenId>(i));
      mark(static_cast<TokenId>(i));
    }
    // Harmony-format markers always render (llama.cpp's gpt-oss rule).
    if (IsOneOf(tokens_[i].text, {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"})) {
      tokens_[i].attr = kAttrUserDefined;
    }
  }
  // With <|return|> and <|call|> (or <|calls|> and <|flush|>) present, <|end|> is not an EOG.
  const TokenId end = TextToToken("<|end|>");
  const bool has_call = TextToToken("<|call|>") != kNoToken || TextToToken("<|calls|>") != kNoToken;
  if (end != kNoToken && eog_ids_.count(end) && has_call &&
      (TextToToken("<|return|>") != kNoToken || TextToToken("<|flush|>") != kNoToken)) {
    eog_ids_.erase(end);
    tokens_[end].attr = kAttrUserDefined;
  }
}

// Per-model attributes llama.cpp sets by model name (Phi-3: special tokens eat the whitespace
// that follows them).
void Tokenizer::ApplyModelSpecificAttributes(const std::string& model_name) {
  std::string lower = model_name;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower.find("phi-3") == std::string::npos && lower.find("phi3") == std::string::npos) return;
  for (TokenId id : special_tokens_) tokens_[id].attr |= kAttrRstrip;
  if (TokenId id = TextToToken("</s>"); id != kNoToken) tokens_[id].attr |= kAttrRstrip;
  for (std::string_view s : {"<unk>", "<s>", "<|endoftext|>"}) {
    if (TokenId id = TextToToken(s); id != kNoToken) tokens_[id].attr &= ~kAttrRstrip;
  }
}

TokenId Tokenizer::TextToToken(std::string_view text) const {
  auto it = token_to_id_.find(text);
  return it == token_to_id_.end() ? kNoToken : it->second;
}

int32_t Tokenizer::BpeRank(std::string_view left, std::string_view right,
                           std::string* scratch) const {
  scratch->assign(left);
  scratch->push_back(' ');
  scratch->append(right);
  auto it = bpe_ranks_.find(std::string_view(*scratch));
  return it == bpe_ranks_.end() ? -1 : it->second;
}

std::string Tokenizer::PieceUncached(TokenId id) const {
  const TokenData& t = tokens_[id];
  if (t.attr & (kAttrUnknown | kAttrControl | kAttrUserDefined)) return t.text;
  if (t.attr & kAttrNormal) {
    if (type_ == Type::kSpm) {
      std::string s = t.text;
      ReplaceAll(&s, kEscapedSpace, " ");
      return s;
    }
    std::string s;
    for (uint32_t cpt : DecodeUtf8Lossy(t.text)) {
      const int byte = UnicodeToByte(cpt);
      if (byte >= 0) {
        s.push_back(static_cast<char>(byte));
        continue;
      }
      // Outside GPT-2's alphabet: llama.cpp's llama_decode_text marker, kept byte for byte.
      std::string utf8;
      AppendUtf8(cpt, &utf8);
      s += "[UNK_BYTE_0x";
      static const char kHex[] = "0123456789abcdef";
      for (char c : utf8) {
        s.push_back(kHex[static_cast<uint8_t>(c) >> 4]);
        s.push_back(kHex[static_cast<uint8_t>(c) & 15]);
      }
      s += t.text + "]";
    }
    return s;
  }
  if (t.attr & kAttrByte) {
    // "<0xXX>"
    const std::string hex = t.text.size() >= 5 ? t.text.substr(3, 2) : std::string();
    return std::string(1, static_cast<char>(std::strtol(hex.c_str(), nullptr, 16)));
  }
  return std::string();  // undefined tokens render as nothing
}

const std::string& Tokenizer::TokenToPiece(TokenId id, bool special) const {
  DB_CHECK(id >= 0 && id < n_vocab());
  static const std::string kEmpty;
  if (!special && (tokens_[id].attr & (kAttrUnknown | kAttrControl))) return kEmpty;
  return pieces_[id];
}

namespace {

// A piece of the input: a special token already recognized, or a byte range still to tokenize.
struct Fragment {
  TokenId token;  // kNoToken for raw text
  size_t offset;
  size_t length;
};

}  // namespace

std::vector<TokenId> Tokenizer::Tokenize(std::string_view text, bool add_special,
                                         bool parse_special) const {
  // Cut the text at special tokens, longest first (llama.cpp tokenizer_st_partition).
  std::vector<Fragment> frags, next;
  if (!text.empty()) frags.push_back({kNoToken, 0, text.size()});
  for (TokenId special : special_tokens_) {
    const TokenData& st = tokens_[special];
    // Control and unknown tokens only count when asked for; user-defined ones always do.
    if (!parse_special && (st.attr & (kAttrControl | kAttrUnknown))) continue;
    next.clear();
    for (const Fragment& f : frags) {
      if (f.token != kNoToken) {
        next.push_back(f);
        continue;
      }
      size_t base = f.offset, len = f.length;
      while (len > 0) {
        const size_t match = text.substr(0, base + len).find(st.text, base);
        if (match == std::string_view::npos) {
          next.push_back({kNoToken, base, len});
          break;
        }
        size_t left_len = match - base;
        if (st.attr & kAttrLstrip) {
          while (left_len > 0 && IsCSpace(text[base + left_len - 1])) --left_len;
        }
        if (left_len > 0) next.push_back({kNoToken, base, left_len});
        next.push_back({special, 0, 0});
        size_t right = match + st.text.size();
        size_t right_len = base + len - right;
        if (st.attr & kAttrRstrip) {
          while (right_len > 0 && IsCSpace(text[right])) ++right, --right_len;
        }
        base = right, len = right_len;
      }
    }
    frags.swap(next);
  }

  std::vector<TokenId> out;
  out.reserve(text.size() / 2 + 4);
  if (add_special && add_bos_) out.push_back(bos_id_);
  if (type_ == Type::kSpm) {
    bool prev_special = true;  // the text's start counts as following a special token
    std::string buf;
    for (const Fragment& f : frags) {
      if (f.token != kNoToken) {
        out.push_back(f.token);
        prev_special = true;
        continue;
      }
      buf.clear();
      if (add_space_prefix_ && prev_special) buf.push_back(' ');
      buf.append(text.substr(f.offset, f.length));
      ReplaceAll(&buf, " ", kEscapedSpace);
      TokenizeSpm(buf, &out);
      prev_special = false;
    }
  } else {
    for (const Fragment& f : frags) {
      if (f.token != kNoToken) {
        out.push_back(f.token);
      } else {
        TokenizeBpe(text.substr(f.offset, f.length), &out);
      }
    }
  }
  if (add_special && add_eos_) out.push_back(eos_id_);
  return out;
}

std::string Tokenizer::Detokenize(std::span<const TokenId> ids, bool remove_special,
                                  bool unparse_special) const {
  bool remove_space = add_space_prefix_;
  if (remove_special && add_bos_ && !ids.empty() && ids.front() == bos_id_) {
    remove_space = false;
    ids = ids.subspan(1);
  }
  if (remove_special && add_eos_ && !ids.empty() && ids.back() == eos_id_) {
    ids = ids.first(ids.size() - 1);
  }
  std::string text;
  for (TokenId id : ids) {
    std::string_view piece = TokenToPiece(id, unparse_special);
    if (remove_space && !piece.empty() && piece.front() == ' ') piece.remove_prefix(1);
    remove_space = false;
    text.append(piece);
  }
  if (!clean_spaces_ || text.empty()) return text;

  // llama.cpp's clean_up_tokenization_spaces: three passes rewriting the bytes in place. They
  // read text[i - 1] after earlier writes (and pass 2 blanks the byte it skips), so they are kept
  // in this exact form to give the same output on every input.
  size_t total = text.size();
  // 1: " ?", " !", " .", " ," lose the space.
  {
    const size_t n = total;
    total = 1;
    for (size_t i = 1; i < n; ++i) {
      const char x = text[i];
      if (text[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) --total;
      text[total++] = x;
    }
  }
  // 2: " ' " becomes "'".
  {
    const size_t n = total;
    total = 1;
    for (size_t i = 1; i < n; ++i) {
      const char x = text[i];
      if (x == '\'' && i + 1 < n && text[i - 1] == ' ' && text[i + 1] == ' ') {
        --total;
        text[++i] = '\0';
      }
      text[total++] = x;
    }
  }
  // 3: " 's", " 'm", " 're", " 've" lose the space (" 't", " 'd", " 'll" keep it).
  {
    const size_t n = total;
    total = 1;
    for (size_t i = 1; i < n; ++i) {
      const char x = text[i];
      if (text[i - 1] == ' ' && x == '\'' && i + 1 < n) {
        const char x1 = text[i + 1];
        if (x1 == 's' || x1 == 'm') {
          --total;
        } else if (i + 2 < n) {
          const char x2 = text[i + 2];
          if ((x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e')) --total;
        }
      }
      text[total++] = x;
    }
  }
  text.resize(total);
  return text;
}

}  // namespace dualblade
