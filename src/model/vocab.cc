// LoadVocab: the GGUF tokenizer keys into a Vocab.
#include "model/vocab.h"

#include "model/gguf.h"

namespace dualblade {

namespace {

// Optional keys: absent -> nullopt; present with the wrong type -> the getter's error.
template <typename T, typename Getter>
Status ReadOptional(const GgufFile& g, const char* key, Getter get, std::optional<T>* out) {
  if (!g.Has(key)) return Status::OK();
  auto r = (g.*get)(key);
  if (!r.ok()) return r.status();
  *out = *r;
  return Status::OK();
}

// A special token id. Some converters store "none" as a signed -1: it becomes 0xFFFFFFFF, which
// like any id outside the vocabulary leaves the default in place.
Status ReadId(const GgufFile& g, const char* key, std::optional<uint32_t>* out) {
  if (!g.Has(key)) return Status::OK();
  auto u = g.GetU32(key);
  if (u.ok()) {
    *out = *u;
    return Status::OK();
  }
  auto i = g.GetI64(key);
  if (i.ok() && *i < 0) {
    *out = UINT32_MAX;
    return Status::OK();
  }
  return u.status();
}

Result<std::vector<std::string>> ReadStrings(const GgufFile& g, const char* key) {
  DB_ASSIGN_OR_RETURN(auto views, g.GetStringArray(key));
  return std::vector<std::string>(views.begin(), views.end());
}

}  // namespace

Result<Vocab> LoadVocab(const GgufFile& g) {
  Vocab v;
  if (!g.Has("tokenizer.ggml.model")) {
    return Status::NotFound("the model file has no tokenizer (tokenizer.ggml.model is absent)");
  }
  DB_ASSIGN_OR_RETURN(std::string_view model, g.GetString("tokenizer.ggml.model"));
  v.model = std::string(model);
  if (g.Has("tokenizer.ggml.pre")) {
    DB_ASSIGN_OR_RETURN(std::string_view pre, g.GetString("tokenizer.ggml.pre"));
    v.pre = std::string(pre);
  }
  if (g.Has("general.name")) {
    DB_ASSIGN_OR_RETURN(std::string_view name, g.GetString("general.name"));
    v.name = std::string(name);
  }

  if (!g.Has("tokenizer.ggml.tokens")) {
    return Status::NotFound("the model file has no tokenizer.ggml.tokens");
  }
  DB_ASSIGN_OR_RETURN(v.tokens, ReadStrings(g, "tokenizer.ggml.tokens"));
  if (const GgufValue* scores = g.Find("tokenizer.ggml.scores")) {
    // Float scores as a rule; llama.cpp also accepts int32 ones.
    if (scores->type == GgufType::kArray && scores->elem_type == GgufType::kI32) {
      DB_ASSIGN_OR_RETURN(auto ints, g.GetI32Array("tokenizer.ggml.scores"));
      v.scores.assign(ints.begin(), ints.end());
    } else {
      DB_ASSIGN_OR_RETURN(v.scores, g.GetF32Array("tokenizer.ggml.scores"));
    }
  }
  if (g.Has("tokenizer.ggml.token_type")) {
    DB_ASSIGN_OR_RETURN(v.token_types, g.GetI32Array("tokenizer.ggml.token_type"));
  }
  if (g.Has("tokenizer.ggml.merges")) {
    DB_ASSIGN_OR_RETURN(v.merges, ReadStrings(g, "tokenizer.ggml.merges"));
  }

  const struct {
    const char* key;
    std::optional<uint32_t>* id;
  } kIds[] = {
      {"tokenizer.ggml.bos_token_id", &v.bos_id},
      {"tokenizer.ggml.eos_token_id", &v.eos_id},
      {"tokenizer.ggml.eot_token_id", &v.eot_id},
      {"tokenizer.ggml.eom_token_id", &v.eom_id},
      {"tokenizer.ggml.unknown_token_id", &v.unk_id},
      {"tokenizer.ggml.seperator_token_id", &v.sep_id},  // sic: the key's spelling in GGUF
      {"tokenizer.ggml.padding_token_id", &v.pad_id},
      {"tokenizer.ggml.mask_token_id", &v.mask_id},
      {"tokenizer.ggml.fim_pre_token_id", &v.fim_pre_id},
      {"tokenizer.ggml.fim_suf_token_id", &v.fim_suf_id},
      {"tokenizer.ggml.fim_mid_token_id", &v.fim_mid_id},
      {"tokenizer.ggml.fim_pad_token_id", &v.fim_pad_id},
      {"tokenizer.ggml.fim_rep_token_id", &v.fim_rep_id},
      {"tokenizer.ggml.fim_sep_token_id", &v.fim_sep_id},
      // Older names of the first three; like llama.cpp, they win when both are present.
      {"tokenizer.ggml.prefix_token_id", &v.fim_pre_id},
      {"tokenizer.ggml.suffix_token_id", &v.fim_suf_id},
      {"tokenizer.ggml.middle_token_id", &v.fim_mid_id},
  };
  for (const auto& k : kIds) {
    DB_RETURN_IF_ERROR(ReadId(g, k.key, k.id));
  }
  DB_RETURN_IF_ERROR(ReadOptional(g, "tokenizer.ggml.add_bos_token", &GgufFile::GetBool, &v.add_bos));
  DB_RETURN_IF_ERROR(ReadOptional(g, "tokenizer.ggml.add_eos_token", &GgufFile::GetBool, &v.add_eos));
  DB_RETURN_IF_ERROR(
      ReadOptional(g, "tokenizer.ggml.add_space_prefix", &GgufFile::GetBool, &v.add_space_prefix));
  return v;
}

}  // namespace dualblade
