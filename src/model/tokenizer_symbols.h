// The symbol list both merge-based tokenizers (SentencePiece-style and byte-level BPE) work on:
// the text split into UTF-8 characters, linked left to right, merged pair by pair in place.
// Internal to the tokenizer implementation. Thread-safety: values, no shared state.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "model/unicode.h"

namespace dualblade::tokenizer_internal {

struct Symbol {
  int prev;          // index of the left neighbour, -1 at the start
  int next;          // index of the right neighbour, -1 at the end
  const char* text;  // points into the text being tokenized, which must outlive the list
  size_t n;          // bytes; 0 once merged into its left neighbour
};

// Replaces *symbols with one symbol per UTF-8 character of text (a truncated sequence at the end
// becomes one short symbol).
inline void SplitIntoSymbols(std::string_view text, std::vector<Symbol>* symbols) {
  symbols->clear();
  symbols->reserve(text.size());
  for (size_t offs = 0; offs < text.size();) {
    const size_t len =
        std::min(Utf8SequenceLength(static_cast<uint8_t>(text[offs])), text.size() - offs);
    const int index = static_cast<int>(symbols->size());
    symbols->push_back(
        {index - 1, offs + len == text.size() ? -1 : index + 1, text.data() + offs, len});
    offs += len;
  }
}

// Merges symbol `right` into its left neighbour `left` if the pair queued with merged size
// `size_bytes` is still current; returns false for a stale pair (either side merged away since,
// which the size check detects because live neighbours' sizes add up only to the queued text).
inline bool MergeIfCurrent(std::vector<Symbol>* symbols, int left, int right, size_t size_bytes) {
  Symbol& l = (*symbols)[left];
  Symbol& r = (*symbols)[right];
  if (l.n == 0 || r.n == 0 || l.n + r.n != size_bytes) return false;
  l.n += r.n;
  r.n = 0;
  l.next = r.next;
  if (r.next >= 0) (*symbols)[r.next].prev = left;
  return true;
}

}  // namespace dualblade::tokenizer_internal
