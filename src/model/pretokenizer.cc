// Pretokenizer: llama.cpp's regex word split on PCRE2.
#include "model/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <array>
#include <atomic>
#include <string_view>

#include "common/log.h"
#include "model/unicode.h"

namespace dualblade {

namespace {

// GPT-2's expression; also the second stage of falcon, starcoder and "default".
constexpr const char* kGpt2Regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";

// Llama 3's expression with the case-insensitive contractions spelled out, as llama.cpp has it.
constexpr const char* kLlama3Regex =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// Qwen2: Llama 3's with single digits.
constexpr const char* kQwen2Regex =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// Tekken and GPT-4o tell cased words apart with lookaheads: "a letter that is not a-z" and "a
// letter that is not A-Z" (ASCII ranges, as in their tokenizer.json).
constexpr const char* kTekkenRegex =
    R"([^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+)"
    R"(|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*)"
    R"(|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kGpt4oRegex =
    R"([^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+)"
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?)"
    R"(|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*)"
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?)"
    R"(|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// Poro/BLOOM: an optional space and a run of anything but whitespace and sentence punctuation
// (the class also excludes '(', '|' and ')', written as they are in tokenizer.json). The
// punctuation: … 。 ， 、 । ۔ ،
constexpr const char* kPoroRegex =
    R"( ?[^(\s|.,!?\x{2026}\x{3002}\x{FF0C}\x{3001}\x{964}\x{6D4}\x{60C})]+)";

// DeepSeek LLM's letters: the cased-letter ranges of its tokenizer.json, written as code points
// because several of them (U+1F7D, U+1FBE, U+1FD3, U+1FDB, U+2126, U+212A) are canonical
// singletons that any NFC-normalizing editor would silently turn into other characters.
constexpr const char* kDeepseekLetters =
    R"(A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293})"
    R"(\x{295}-\x{2AF}\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A})"
    R"(\x{38C}\x{38E}-\x{3A1}\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556})"
    R"(\x{10A0}-\x{10C5}\x{13A0}-\x{13F5}\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF})"
    R"(\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A}\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D})"
    R"(\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B}\x{1F5D})"
    R"(\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4})"
    R"(\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4})"
    R"(\x{1FF6}-\x{1FFC}\x{2102}\x{2107}\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124})"
    R"(\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134}\x{2139}\x{213C}-\x{213F})"
    R"(\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4})"
    R"(\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F})"
    R"(\x{A771}-\x{A787}\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17})"
    R"(\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}\x{10400}-\x{1044F}\x{104B0}-\x{104D3})"
    R"(\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2}\x{118A0}-\x{118DF})"
    R"(\x{1E900}-\x{1E943})";

// CJK ideographs, everything from U+0800 up to them, and Hangul syllables (DeepSeek).
constexpr const char* kDeepseekCjk = R"([\x{4E00}-\x{9FA5}\x{800}-\x{4E00}\x{AC00}-\x{D7FF}]+)";

struct NameSpec {
  const char* name;
  PreTokenizerSpec spec;
};

// llama.cpp's name table (llama-vocab.cpp), restricted to the families implemented here.
constexpr PreTokenizerSpec Spec(PreRegex r, bool clean, bool ignore_merges = false,
                                bool add_bos = false) {
  return PreTokenizerSpec{r, clean, ignore_merges, add_bos};
}
const NameSpec kNames[] = {
    {"default", Spec(PreRegex::kDefault, true)},
    {"llama3", Spec(PreRegex::kLlama3, true, true, true)},
    {"llama-v3", Spec(PreRegex::kLlama3, true, true, true)},
    {"llama-bpe", Spec(PreRegex::kLlama3, true, true, true)},
    {"falcon3", Spec(PreRegex::kLlama3, true, true, true)},
    {"falcon-h1", Spec(PreRegex::kLlama3, true, true, true)},
    {"pixtral", Spec(PreRegex::kLlama3, true, true, true)},
    {"midm-2.0", Spec(PreRegex::kLlama3, true, true, true)},
    {"lfm2", Spec(PreRegex::kLlama3, true, true, true)},
    {"dbrx", Spec(PreRegex::kLlama3, true)},
    {"smaug-bpe", Spec(PreRegex::kLlama3, true)},
    {"deepseek-llm", Spec(PreRegex::kDeepseekLlm, false)},
    {"deepseek-coder", Spec(PreRegex::kDeepseekCoder, false)},
    {"falcon", Spec(PreRegex::kFalcon, true)},
    {"starcoder", Spec(PreRegex::kStarcoder, true)},
    {"refact", Spec(PreRegex::kStarcoder, true)},
    {"codeshell", Spec(PreRegex::kStarcoder, true)},
    {"exaone", Spec(PreRegex::kStarcoder, true)},
    {"minerva-7b", Spec(PreRegex::kStarcoder, true)},
    {"command-r", Spec(PreRegex::kStarcoder, false)},
    {"smollm", Spec(PreRegex::kStarcoder, false)},
    {"gpt-2", Spec(PreRegex::kGpt2, true)},
    {"phi-2", Spec(PreRegex::kGpt2, true)},
    {"mpt", Spec(PreRegex::kGpt2, true)},
    {"olmo", Spec(PreRegex::kGpt2, true)},
    {"jina-es", Spec(PreRegex::kGpt2, true)},
    {"jina-de", Spec(PreRegex::kGpt2, true)},
    {"jina-v2-es", Spec(PreRegex::kGpt2, true)},
    {"jina-v2-de", Spec(PreRegex::kGpt2, true)},
    {"gigachat", Spec(PreRegex::kGpt2, true)},
    {"a.x-4.0", Spec(PreRegex::kGpt2, true)},
    {"mellum", Spec(PreRegex::kGpt2, true)},
    {"exaone4", Spec(PreRegex::kGpt2, true)},
    {"qwen2", Spec(PreRegex::kQwen2, false)},
    {"deepseek-r1-qwen", Spec(PreRegex::kQwen2, false)},
    {"kormo", Spec(PreRegex::kQwen2, false)},
    {"hunyuan", Spec(PreRegex::kQwen2, false)},
    {"stablelm2", Spec(PreRegex::kQwen2, true)},
    {"megrez", Spec(PreRegex::kQwen2, true)},
    {"tekken", Spec(PreRegex::kTekken, false, true, true)},
    {"gpt-4o", Spec(PreRegex::kGpt4o, false)},
    {"llama4", Spec(PreRegex::kGpt4o, false)},
    {"poro-chat", Spec(PreRegex::kPoro, false)},
    {"bloom", Spec(PreRegex::kPoro, true)},
    {"gpt3-finnish", Spec(PreRegex::kPoro, true)},
    {"viking", Spec(PreRegex::kViking, false)},
};

bool IsSurrogate(uint32_t cpt) { return cpt >= 0xD800 && cpt <= 0xDFFF; }

// Unicode's White_Space property (PropList.txt), llama.cpp's unicode_set_whitespace. PCRE2's UCP
// `\s` adds U+180E, so `\s` and `\S` are spelled out with this set instead.
constexpr std::string_view kWhiteSpace =
    R"(\t\n\x{0B}\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F})"
    R"(\x{205F}\x{3000})";

// `pattern` with every `\s` / `\S` replaced by an explicit White_Space class (inside a bracket
// class `\s` contributes the members). REQUIRES: no `\S` inside a bracket class.
std::string ExpandWhitespace(std::string_view pattern) {
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char e = pattern[++i];
      if (e == 's') {
        out += in_class ? std::string(kWhiteSpace) : "[" + std::string(kWhiteSpace) + "]";
      } else if (e == 'S') {
        DB_CHECK(!in_class);
        out += "[^" + std::string(kWhiteSpace) + "]";
      } else {
        out += c;
        out += e;
      }
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = true;
    } else if (c == ']' && in_class) {
      in_class = false;
    }
    out += c;
  }
  return out;
}

}  // namespace

Result<PreTokenizerSpec> LookupPreTokenizer(std::string_view name) {
  if (name.empty()) name = "default";
  for (const NameSpec& n : kNames) {
    if (name == n.name) return n.spec;
  }
  return Status::NotSupported("unknown or unsupported pre-tokenizer type '" + std::string(name) +
                              "'");
}

std::vector<std::string> PreRegexPatterns(PreRegex family) {
  switch (family) {
    case PreRegex::kDefault:
      return {R"([\p{P}\$\+<=>\^~\|]+)", kGpt2Regex, R"(\p{N}+)", "[0-9][0-9][0-9]"};
    case PreRegex::kLlama3:
      return {kLlama3Regex};
    case PreRegex::kDeepseekLlm:
      return {R"([\r\n])",
              std::string(R"(\s?[)") + kDeepseekLetters + "]+",
              R"(\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+)",
              R"(\s+$)",
              kDeepseekCjk,
              R"(\p{N}+)"};
    case PreRegex::kDeepseekCoder:
      return {R"([\r\n])", R"(\s?\p{L}+)", R"(\s?\p{P}+)", kDeepseekCjk, R"(\p{N})"};
    case PreRegex::kFalcon:
      return {R"([\p{P}\$\+<=>\^~\|`]+)", kGpt2Regex, "[0-9][0-9][0-9]"};
    case PreRegex::kStarcoder:
      return {R"(\p{N})", kGpt2Regex};
    case PreRegex::kGpt2:
      return {kGpt2Regex};
    case PreRegex::kQwen2:
      return {kQwen2Regex};
    case PreRegex::kTekken:
      return {kTekkenRegex};
    case PreRegex::kGpt4o:
      return {kGpt4oRegex};
    case PreRegex::kPoro:
      return {kPoroRegex};
    case PreRegex::kViking:
      return {kPoroRegex, R"(\p{N})"};
  }
  return {};
}

struct Pretokenizer::Regex {
  pcre2_code* code = nullptr;
  ~Regex() { pcre2_code_free(code); }
};

Pretokenizer::~Pretokenizer() = default;

Result<std::unique_ptr<Pretokenizer>> Pretokenizer::Create(
    const std::vector<std::string>& patterns) {
  std::unique_ptr<Pretokenizer> p(new Pretokenizer());
  for (const std::string& source : patterns) {
    const std::string pattern = ExpandWhitespace(source);
    int err = 0;
    PCRE2_SIZE err_offset = 0;
    // DOLLAR_ENDONLY: `\s+$` must not match before a final newline (ECMAScript semantics).
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                     PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &err,
                                     &err_offset, nullptr);
    if (code == nullptr) {
      std::array<PCRE2_UCHAR, 256> msg{};
      pcre2_get_error_message(err, msg.data(), msg.size());
      return Status::InvalidArgument("pre-tokenizer expression '" + source +
                                     "' does not compile at offset " +
                                     std::to_string(err_offset) + ": " +
                                     reinterpret_cast<const char*>(msg.data()));
    }
    auto re = std::make_unique<Regex>();
    re->code = code;
    // Without JIT support pcre2_match interprets the pattern: slower, same results.
    (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    p->regexes_.push_back(std::move(re));
  }
  return p;
}

void Pretokenizer::SplitOne(const Regex& re, const std::string& subject, size_t begin, size_t end,
                            void* match_data, std::vector<size_t>* ends) const {
  auto* md = static_cast<pcre2_match_data*>(match_data);
  const auto* s = reinterpret_cast<PCRE2_SPTR>(subject.data() + begin);
  const size_t len = end - begin;
  size_t offset = 0;    // where the next search starts
  size_t prev_end = 0;  // end of the last word emitted
  while (offset < len) {
    const int rc = pcre2_match(re.code, s, len, offset, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      // Resource limits only (the subject is valid UTF-8 by construction): keep the rest whole.
      static std::atomic<bool> warned{false};
      if (!warned.exchange(true)) DB_LOG_WARN("pre-tokenizer match failed with PCRE2 error %d", rc);
      break;
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t m_begin = ov[0], m_end = ov[1];
    if (m_end == m_begin) {  // none of the expressions can match empty; step over it anyway
      offset = m_end + Utf8SequenceLength(s[m_end]);
      continue;
    }
    if (m_begin > prev_end) ends->push_back(begin + m_begin);  // the gap is a word of its own
    ends->push_back(begin + m_end);
    prev_end = offset = m_end;
  }
  if (prev_end < len) ends->push_back(end);
}

std::vector<std::string> Pretokenizer::Split(std::string_view text) const {
  // `source` holds the words' bytes; `subject` is the same code points with surrogates replaced
  // by U+FFFD (same 3-byte length) because PCRE2 rejects them as UTF-8.
  std::string source, subject;
  source.reserve(text.size());
  subject.reserve(text.size());
  for (uint32_t cpt : DecodeUtf8Lossy(text)) {
    AppendUtf8(cpt, &source);
    AppendUtf8(IsSurrogate(cpt) ? 0xFFFD : cpt, &subject);
  }
  if (source.empty()) return {};

  pcre2_match_data* md = pcre2_match_data_create(32, nullptr);
  DB_CHECK(md != nullptr);
  std::vector<size_t> ends = {source.size()}, next;
  for (const auto& re : regexes_) {
    next.clear();
    size_t begin = 0;
    for (size_t end : ends) {
      SplitOne(*re, subject, begin, end, md, &next);
      begin = end;
    }
    ends.swap(next);
  }
  pcre2_match_data_free(md);

  std::vector<std::string> words;
  words.reserve(ends.size());
  size_t begin = 0;
  for (size_t end : ends) {
    words.emplace_back(source, begin, end - begin);
    begin = end;
  }
  return words;
}

}  // namespace dualblade
