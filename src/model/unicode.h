// UTF-8 helpers with llama.cpp's exact (lenient) semantics, and GPT-2's byte <-> unicode table.
//
// Tokenizers must reproduce llama.cpp token for token, including on malformed input, so the
// decoding rules here are llama.cpp's (unicode.cpp), not a strict validator's: a sequence's length
// comes from its lead byte alone, and an undecodable byte becomes U+FFFD and decoding resumes at
// the next byte.
//
// Thread-safety: pure functions over immutable tables; safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dualblade {

// Bytes in the UTF-8 sequence that `lead` starts: 1 for ASCII and for stray continuation bytes
// (0x80..0xBF), 2 for 0xC0..0xDF, 3 for 0xE0..0xEF, 4 for 0xF0..0xFF. Never 0.
size_t Utf8SequenceLength(uint8_t lead);

// Code points of `text`; an invalid or truncated sequence yields U+FFFD for its first byte and
// decoding continues with the byte after it.
std::vector<uint32_t> DecodeUtf8Lossy(std::string_view text);

// Appends the UTF-8 encoding of `cpt` (any value up to 0x10FFFF, surrogates included, as
// llama.cpp does). REQUIRES: cpt <= 0x10FFFF.
void AppendUtf8(uint32_t cpt, std::string* out);
std::string EncodeUtf8(const std::vector<uint32_t>& cpts);

// GPT-2's reversible byte-to-unicode map (bytes.py `bytes_to_unicode`): the printable bytes
// '!'..'~', 0xA1..0xAC and 0xAE..0xFF map to themselves, the other 68 bytes to U+0100.. in order.
// Returned as UTF-8.
const std::string& ByteToUnicode(uint8_t byte);
// The inverse: the byte that code point `cpt` stands for, or -1 when it stands for none.
int UnicodeToByte(uint32_t cpt);

// `text` with every byte replaced by ByteToUnicode(byte) (the byte-level BPE alphabet).
std::string ByteEncode(std::string_view text);

}  // namespace dualblade
