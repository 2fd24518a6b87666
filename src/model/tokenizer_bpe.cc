// Byte-level BPE merging (llama.cpp llm_tokenizer_bpe_session).
//
// Each pre-tokenizer word is mapped into GPT-2's byte alphabet and starts as one symbol per
// character of that alphabet. Adjacent pairs listed in the merges are queued by rank; the
// lowest rank (then leftmost) pair merges first and its new neighbours are queued. A queued
// pair is stale once either side has changed (the sizes no longer add up). Words never merge
// across each other. A final symbol that is not a token contributes the single-byte tokens of
// its bytes that exist, as llama.cpp does.
#include <queue>
#include <string>
#include <vector>

#include "model/pretokenizer.h"
#include "model/tokenizer.h"
#include "model/unicode.h"

namespace dualblade {

namespace {

struct Symbol {
  int prev;
  int next;
  const char* text;
  size_t n;
};

struct Bigram {
  int left;
  int right;
  int32_t rank;
  size_t size;
};

// Lowest rank first; on a tie the leftmost pair.
struct BigramGreater {
  bool operator()(const Bigram& l, const Bigram& r) const {
    return l.rank > r.rank || (l.rank == r.rank && l.left > r.left);
  }
};

}  // namespace

void Tokenizer::TokenizeBpe(std::string_view text, std::vector<TokenId>* out) const {
  std::vector<Symbol> symbols;
  std::string scratch;
  for (const std::string& raw_word : pretokenizer_->Split(text)) {
    const std::string word = ByteEncode(raw_word);
    symbols.clear();
    if (ignore_merges_ && TextToToken(word) != kNoToken) {
      symbols.push_back({-1, -1, word.data(), word.size()});
    } else {
      for (size_t offs = 0; offs < word.size();) {
        const size_t len =
            std::min(Utf8SequenceLength(static_cast<uint8_t>(word[offs])), word.size() - offs);
        const int index = static_cast<int>(symbols.size());
        symbols.push_back(
            {index - 1, offs + len == word.size() ? -1 : index + 1, word.data() + offs, len});
        offs += len;
      }
    }

    std::priority_queue<Bigram, std::vector<Bigram>, BigramGreater> queue;
    auto try_add = [&](int left, int right) {
      if (left == -1 || right == -1) return;
      const Symbol& l = symbols[left];
      const Symbol& r = symbols[right];
      const int32_t rank =
          BpeRank(std::string_view(l.text, l.n), std::string_view(r.text, r.n), &scratch);
      if (rank < 0) return;
      queue.push({left, right, rank, l.n + r.n});
    };
    for (int i = 1; i < static_cast<int>(symbols.size()); ++i) try_add(i - 1, i);

    while (!queue.empty()) {
      const Bigram b = queue.top();
      queue.pop();
      Symbol& left = symbols[b.left];
      Symbol& right = symbols[b.right];
      // Both sides alive and adjacent (right.n > 0 means nothing merged it away), so the merged
      // text is still the one queued exactly when the sizes add up.
      if (left.n == 0 || right.n == 0 || left.n + right.n != b.size) continue;
      left.n += right.n;
      right.n = 0;
      left.next = right.next;
      if (right.next >= 0) symbols[right.next].prev = b.left;
      try_add(left.prev, b.left);
      try_add(b.left, left.next);
    }

    for (const Symbol& s : symbols) {
      if (s.n == 0) continue;
      const std::string_view piece(s.text, s.n);
      const TokenId id = TextToToken(piece);
      if (id != kNoToken) {
        out->push_back(id);
        continue;
      }
      for (char c : piece) {
        const TokenId byte = TextToToken(std::string_view(&c, 1));
        if (byte != kNoToken) out->push_back(byte);
      }
    }
  }
}

}  // namespace dualblade
