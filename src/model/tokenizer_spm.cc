// SentencePiece-style merging (llama.cpp llm_tokenizer_spm_session).
//
// The text (spaces already escaped to U+2581) starts as one symbol per UTF-8 character, chained
// in a doubly linked list. Every adjacent pair whose concatenation is a token is queued with that
// token's score; the best pair (highest score, then leftmost) is merged and its new neighbours
// are queued. A queued pair is stale once either side has changed: then the sizes no longer add
// up to the size recorded when it was queued. Finally each symbol becomes its token, or, when it
// is not one (a character the vocabulary lacks), its bytes as <0xXX> tokens.
#include <queue>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/tokenizer.h"
#include "model/tokenizer_symbols.h"
#include "model/unicode.h"

namespace dualblade {

namespace {

using tokenizer_internal::Symbol;

struct Bigram {
  int left;
  int right;
  float score;
  size_t size;  // bytes of the merged text when queued
};

// Highest score first; on a tie the leftmost pair, so equal inputs merge in a fixed order.
struct BigramLess {
  bool operator()(const Bigram& l, const Bigram& r) const {
    return l.score < r.score || (l.score == r.score && l.left > r.left);
  }
};

}  // namespace

void Tokenizer::TokenizeSpm(std::string_view text, std::vector<TokenId>* out) const {
  std::vector<Symbol> symbols;
  tokenizer_internal::SplitIntoSymbols(text, &symbols);

  std::priority_queue<Bigram, std::vector<Bigram>, BigramLess> queue;
  // Which pair produced each merged text: used to split a symbol that is not a token back into
  // the pieces it was merged from (llama.cpp keeps the last pair seen for a text).
  std::unordered_map<std::string_view, std::pair<int, int>> rev_merge;

  auto try_add = [&](int left, int right) {
    if (left == -1 || right == -1) return;
    const std::string_view merged(symbols[left].text, symbols[left].n + symbols[right].n);
    const TokenId id = TextToToken(merged);
    if (id == kNoToken) return;
    queue.push({left, right, tokens_[id].score, merged.size()});
    rev_merge[merged] = {left, right};
  };

  for (int i = 1; i < static_cast<int>(symbols.size()); ++i) try_add(i - 1, i);

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    if (!tokenizer_internal::MergeIfCurrent(&symbols, b.left, b.right, b.size)) continue;
    try_add(symbols[b.left].prev, b.left);
    try_add(b.left, symbols[b.left].next);
  }

  // A symbol that is not a token: split it along the merge that made it, or emit its bytes.
  auto resegment = [&](auto&& self, const Symbol& s) -> void {
    const std::string_view piece(s.text, s.n);
    const TokenId id = TextToToken(piece);
    if (id != kNoToken) {
      out->push_back(id);
      return;
    }
    const auto it = rev_merge.find(piece);
    if (it == rev_merge.end()) {
      for (char c : piece) {
        const TokenId byte = byte_tokens_[static_cast<uint8_t>(c)];
        // llama.cpp aborts when a vocabulary lacks a byte token; unknown is the gentler answer.
        if (byte != kNoToken) {
          out->push_back(byte);
        } else if (unk_id_ != kNoToken) {
          out->push_back(unk_id_);
        }
      }
      return;
    }
    self(self, symbols[it->second.first]);
    self(self, symbols[it->second.second]);
  };
  if (symbols.empty()) return;
  for (int i = 0; i != -1; i = symbols[i].next) resegment(resegment, symbols[i]);
}

}  // namespace dualblade
