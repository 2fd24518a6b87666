// UTF-8 decoding with llama.cpp's lenient rules, and GPT-2's byte alphabet.
#include "model/unicode.h"

#include <gtest/gtest.h>

namespace dualblade {
namespace {

TEST(UnicodeTest, SequenceLengthComesFromTheLeadByteAlone) {
  EXPECT_EQ(Utf8SequenceLength('a'), 1u);
  EXPECT_EQ(Utf8SequenceLength(0x80), 1u);  // stray continuation byte
  EXPECT_EQ(Utf8SequenceLength(0xC3), 2u);
  EXPECT_EQ(Utf8SequenceLength(0xE2), 3u);
  EXPECT_EQ(Utf8SequenceLength(0xF0), 4u);
  EXPECT_EQ(Utf8SequenceLength(0xFF), 4u);
}

TEST(UnicodeTest, DecodesValidText) {
  EXPECT_EQ(DecodeUtf8Lossy("a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"),
            (std::vector<uint32_t>{'a', 0xE9, 0x20AC, 0x1F600}));
  EXPECT_TRUE(DecodeUtf8Lossy("").empty());
}

TEST(UnicodeTest, EachBadByteBecomesOneReplacementCharacter) {
  EXPECT_EQ(DecodeUtf8Lossy("\x80" "a"), (std::vector<uint32_t>{0xFFFD, 'a'}));
  EXPECT_EQ(DecodeUtf8Lossy("\xC3"), (std::vector<uint32_t>{0xFFFD}));
  // A truncated 3-byte sequence: the lead byte is bad, then the stray continuation byte is too.
  EXPECT_EQ(DecodeUtf8Lossy("\xE2\x82"), (std::vector<uint32_t>{0xFFFD, 0xFFFD}));
  EXPECT_EQ(DecodeUtf8Lossy("\xFF" "b"), (std::vector<uint32_t>{0xFFFD, 'b'}));
  // Past U+10FFFF (F4 90 80 80 = U+110000).
  EXPECT_EQ(DecodeUtf8Lossy("\xF4\x90\x80\x80"), (std::vector<uint32_t>{0xFFFD}));
}

TEST(UnicodeTest, EncodeInvertsDecodeOnValidText) {
  const std::string s = "Hello, \xD0\xBC\xD0\xB8\xD1\x80 \xE4\xB8\x96 \xF0\x9F\xA6\x99";
  EXPECT_EQ(EncodeUtf8(DecodeUtf8Lossy(s)), s);
}

TEST(UnicodeTest, ByteAlphabetIsGpt2s) {
  EXPECT_EQ(ByteToUnicode('!'), "!");
  EXPECT_EQ(ByteToUnicode(' '), "\xC4\xA0");   // U+0120 'Ġ'
  EXPECT_EQ(ByteToUnicode('\n'), "\xC4\x8A");  // U+010A 'Ċ'
  EXPECT_EQ(ByteToUnicode(0xAD), "\xC5\x83");  // the soft hyphen is remapped too (U+0143)
  EXPECT_EQ(ByteEncode("Hello world"), "Hello\xC4\xA0world");
}

TEST(UnicodeTest, ByteAlphabetRoundTripsEveryByte) {
  for (int b = 0; b < 256; ++b) {
    const auto cpts = DecodeUtf8Lossy(ByteToUnicode(static_cast<uint8_t>(b)));
    ASSERT_EQ(cpts.size(), 1u);
    EXPECT_EQ(UnicodeToByte(cpts[0]), b);
  }
  EXPECT_EQ(UnicodeToByte(0x2581), -1);
  EXPECT_EQ(UnicodeToByte(' '), -1);  // space is not in the alphabet: it is written U+0120
}

}  // namespace
}  // namespace dualblade
