// Vocab: a tokenizer vocabulary exactly as a GGUF file describes it (the `tokenizer.ggml.*` keys),
// before any defaults are applied. Tokenizer::Create turns it into a working tokenizer with
// llama.cpp's defaults for whatever the file leaves out, so a Vocab built by hand (tests) and one
// loaded from a file behave the same.
//
// Thread-safety: a plain value.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace dualblade {

class GgufFile;

// `tokenizer.ggml.token_type` values (llama.cpp `llama_token_type`; part of the file format).
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

struct Vocab {
  std::string model;  // tokenizer.ggml.model: "llama" (SentencePiece-style) or "gpt2" (byte BPE)
  std::string pre;    // tokenizer.ggml.pre; empty when absent
  std::string name;   // general.name; llama.cpp keys a few token attributes on it (Phi-3)

  std::vector<std::string> tokens;   // id -> text
  std::vector<float> scores;         // id -> score (SentencePiece merge priority); empty = all 0
  std::vector<int32_t> token_types;  // id -> TokenType value; empty = all normal
  std::vector<std::string> merges;   // "left right", rank = index (gpt2 only)

  // Special token ids as stored. Absent means the model type's default; a value outside the
  // vocabulary is ignored (stories260K stores 4294967295 for "none"), both as llama.cpp does.
  std::optional<uint32_t> bos_id, eos_id, eot_id, eom_id, unk_id, sep_id, pad_id, mask_id;
  // Fill-in-the-middle tokens; when absent, Tokenizer::Create finds them by text.
  std::optional<uint32_t> fim_pre_id, fim_suf_id, fim_mid_id, fim_pad_id, fim_rep_id, fim_sep_id;
  std::optional<bool> add_bos, add_eos, add_space_prefix;
};

// Reads the `tokenizer.ggml.*` keys (and general.name) of `gguf`. NotFound when the file has no
// tokenizer; InvalidArgument naming the key when one has the wrong type; the arrays' lengths are
// checked by Tokenizer::Create.
Result<Vocab> LoadVocab(const GgufFile& gguf);

}  // namespace dualblade
