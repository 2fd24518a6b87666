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
#include "model/tokenizer_symbols.h"
#include "model/unicode.h"

namespace dualblade {

namespace {

using tokenizer_internal::Symbol;

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
    if (ignore_merges_ && TextToToken(word) != kNoToken) {
      symbols.assign(1, Symbol{-1, -1, word.data(), word.size()});
    } else {
      tokenizer_internal::SplitIntoSymbols(word, &symbols);
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
      if (!tokenizer_internal::MergeIfCurrent(&symbols, b.left, b.right, b.size)) continue;
      try_add(symbols[b.left].prev, b.left);
      try_add(b.left, symbols[b.left].next);
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
