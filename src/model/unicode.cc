// UTF-8 decoding as llama.cpp's unicode.cpp does it, and the GPT-2 byte alphabet.
#include "model/unicode.h"

#include <array>

#include "common/check.h"

namespace dualblade {

size_t Utf8SequenceLength(uint8_t lead) {
  // Indexed by the high nibble, as llama.cpp's unicode_len_utf8: continuation bytes count as 1.
  static constexpr size_t kLength[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLength[lead >> 4];
}

namespace {

bool IsContinuation(uint8_t b) { return (b & 0xC0) == 0x80; }

// Decodes one code point at `*offset`; returns false (offset untouched) when the bytes there do
// not form a sequence under llama.cpp's rules.
bool DecodeOne(std::string_view s, size_t* offset, uint32_t* cpt) {
  const size_t i = *offset;
  const auto b = [&](size_t k) { return static_cast<uint8_t>(s[i + k]); };
  const uint8_t b0 = b(0);
  if (!(b0 & 0x80)) {
    *cpt = b0;
    *offset += 1;
    return true;
  }
  if (!(b0 & 0x40)) return false;  // stray continuation byte
  if (!(b0 & 0x20)) {
    if (i + 1 >= s.size() || !IsContinuation(b(1))) return false;
    *cpt = ((b0 & 0x1Fu) << 6) | (b(1) & 0x3Fu);
    *offset += 2;
    return true;
  }
  if (!(b0 & 0x10)) {
    if (i + 2 >= s.size() || !IsContinuation(b(1)) || !IsContinuation(b(2))) return false;
    *cpt = ((b0 & 0x0Fu) << 12) | ((b(1) & 0x3Fu) << 6) | (b(2) & 0x3Fu);
    *offset += 3;
    return true;
  }
  if (!(b0 & 0x08)) {
    if (i + 3 >= s.size() || !IsContinuation(b(1)) || !IsContinuation(b(2)) ||
        !IsContinuation(b(3))) {
      return false;
    }
    *cpt = ((b0 & 0x07u) << 18) | ((b(1) & 0x3Fu) << 12) | ((b(2) & 0x3Fu) << 6) | (b(3) & 0x3Fu);
    *offset += 4;
    return true;
  }
  return false;
}

struct ByteTables {
  std::array<std::string, 256> byte_to_utf8;
  std::array<int16_t, 324> cpt_to_byte;  // code points 0..323 cover the whole image

  ByteTables() {
    cpt_to_byte.fill(-1);
    std::array<uint32_t, 256> cpt_of{};
    std::array<bool, 256> direct{};
    for (int ch = 0x21; ch <= 0x7E; ++ch) direct[ch] = true;
    for (int ch = 0xA1; ch <= 0xAC; ++ch) direct[ch] = true;
    for (int ch = 0xAE; ch <= 0xFF; ++ch) direct[ch] = true;
    uint32_t n = 0;
    for (int ch = 0; ch < 256; ++ch) cpt_of[ch] = direct[ch] ? ch : 256 + n++;
    for (int ch = 0; ch < 256; ++ch) {
      AppendUtf8(cpt_of[ch], &byte_to_utf8[ch]);
      cpt_to_byte[cpt_of[ch]] = static_cast<int16_t>(ch);
    }
  }
};

const ByteTables& Tables() {
  static const ByteTables tables;
  return tables;
}

}  // namespace

std::vector<uint32_t> DecodeUtf8Lossy(std::string_view text) {
  std::vector<uint32_t> out;
  out.reserve(text.size());
  size_t offset = 0;
  while (offset < text.size()) {
    uint32_t cpt = 0;
    if (DecodeOne(text, &offset, &cpt)) {
      // F4 90.. and above decode past U+10FFFF; llama.cpp throws on re-encoding those, we keep
      // going with the replacement character instead.
      out.push_back(cpt <= 0x10FFFF ? cpt : 0xFFFD);
    } else {
      out.push_back(0xFFFD);  // U+FFFD REPLACEMENT CHARACTER, one per bad byte
      ++offset;
    }
  }
  return out;
}

void AppendUtf8(uint32_t cpt, std::string* out) {
  DB_CHECK(cpt <= 0x10FFFF);
  if (cpt <= 0x7F) {
    out->push_back(static_cast<char>(cpt));
  } else if (cpt <= 0x7FF) {
    out->push_back(static_cast<char>(0xC0 | (cpt >> 6)));
    out->push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
  } else if (cpt <= 0xFFFF) {
    out->push_back(static_cast<char>(0xE0 | (cpt >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cpt >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cpt >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cpt >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cpt >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
  }
}

std::string EncodeUtf8(const std::vector<uint32_t>& cpts) {
  std::string out;
  out.reserve(cpts.size());
  for (uint32_t c : cpts) AppendUtf8(c, &out);
  return out;
}

const std::string& ByteToUnicode(uint8_t byte) { return Tables().byte_to_utf8[byte]; }

int UnicodeToByte(uint32_t cpt) {
  const auto& t = Tables().cpt_to_byte;
  return cpt < t.size() ? t[cpt] : -1;
}

std::string ByteEncode(std::string_view text) {
  std::string out;
  out.reserve(text.size() * 2);
  for (char c : text) out += ByteToUnicode(static_cast<uint8_t>(c));
  return out;
}

}  // namespace dualblade
