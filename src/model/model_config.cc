#include "model/model_config.h"

#include <cmath>
#include <cstring>

namespace dualblade {
namespace {

std::string Key(const std::string& arch, const char* suffix) { return arch + "." + suffix; }

Result<int64_t> RequiredCount(const GgufFile& f, const std::string& key) {
  if (!f.Has(key)) return Status::InvalidArgument("the model lacks the key '" + key + "'");
  DB_ASSIGN_OR_RETURN(uint32_t v, f.GetU32(key));
  if (v == 0) return Status::InvalidArgument("the model's '" + key + "' is 0");
  return static_cast<int64_t>(v);
}

Result<int64_t> OptionalCount(const GgufFile& f, const std::string& key, int64_t fallback) {
  if (!f.Has(key)) return fallback;
  DB_ASSIGN_OR_RETURN(uint32_t v, f.GetU32(key));
  return static_cast<int64_t>(v);
}

Result<float> OptionalFloat(const GgufFile& f, const std::string& key, float fallback) {
  if (!f.Has(key)) return fallback;
  return f.GetF32(key);
}

std::string Shape(std::initializer_list<int64_t> ne) {
  std::string s = "[";
  for (int64_t e : ne) s += (s.size() > 1 ? ", " : "") + std::to_string(e);
  return s + "]";
}

}  // namespace

std::vector<float> Llama3RopeFactors(int64_t n_rot, float freq_base, float factor,
                                     float low_freq_factor, float high_freq_factor,
                                     int64_t orig_ctx) {
  const double low_wavelen = orig_ctx / static_cast<double>(low_freq_factor);
  const double high_wavelen = orig_ctx / static_cast<double>(high_freq_factor);
  std::vector<float> out;
  for (int64_t i = 0; i < n_rot; i += 2) {
    const double freq = 1.0 / std::pow(static_cast<double>(freq_base), static_cast<double>(i) / n_rot);
    const double wavelen = 2 * M_PI / freq;
    if (wavelen < high_wavelen) {
      out.push_back(1.0f);
    } else if (wavelen > low_wavelen) {
      out.push_back(factor);
    } else {
      const double smooth =
          (orig_ctx / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
      out.push_back(static_cast<float>(1.0 / ((1 - smooth) / factor + smooth)));
    }
  }
  return out;
}

Result<ModelConfig> ModelConfig::FromGguf(const GgufFile& f) {
  ModelConfig c;
  if (!f.Has("general.architecture")) {
    return Status::InvalidArgument("the model lacks the key 'general.architecture'");
  }
  DB_ASSIGN_OR_RETURN(std::string_view arch, f.GetString("general.architecture"));
  c.arch_name = std::string(arch);
  if (c.arch_name == "llama") {
    c.arch = ModelArch::kLlama;
    c.rope_type = RopeType::kNormal;
  } else if (c.arch_name == "qwen2") {
    c.arch = ModelArch::kQwen2;
    c.rope_type = RopeType::kNeox;
  } else {
    return Status::NotSupported("architecture '" + c.arch_name +
                                "' is not supported (supported: llama, qwen2)");
  }
  if (auto name = f.GetString("general.name"); name.ok()) c.name = std::string(*name);
  const std::string& a = c.arch_name;

  DB_ASSIGN_OR_RETURN(int64_t n_expert, OptionalCount(f, Key(a, "expert_count"), 0));
  if (n_expert > 0) {
    return Status::NotSupported("mixture-of-experts models (" + std::to_string(n_expert) +
                                " experts) are not supported");
  }
  DB_ASSIGN_OR_RETURN(c.n_layer, RequiredCount(f, Key(a, "block_count")));
  DB_ASSIGN_OR_RETURN(c.n_embd, RequiredCount(f, Key(a, "embedding_length")));
  DB_ASSIGN_OR_RETURN(c.n_ff, RequiredCount(f, Key(a, "feed_forward_length")));
  DB_ASSIGN_OR_RETURN(c.n_head, RequiredCount(f, Key(a, "attention.head_count")));
  DB_ASSIGN_OR_RETURN(c.n_head_kv, OptionalCount(f, Key(a, "attention.head_count_kv"), c.n_head));
  DB_ASSIGN_OR_RETURN(c.n_ctx_train, RequiredCount(f, Key(a, "context_length")));
  if (c.n_head_kv == 0 || c.n_head % c.n_head_kv != 0) {
    return Status::InvalidArgument("attention.head_count " + std::to_string(c.n_head) +
                                   " is not a multiple of attention.head_count_kv " +
                                   std::to_string(c.n_head_kv));
  }
  if (c.n_embd % c.n_head != 0 && !f.Has(Key(a, "attention.key_length"))) {
    return Status::InvalidArgument("embedding_length " + std::to_string(c.n_embd) +
                                   " is not a multiple of head_count " + std::to_string(c.n_head));
  }
  DB_ASSIGN_OR_RETURN(c.n_embd_head,
                      OptionalCount(f, Key(a, "attention.key_length"), c.n_embd / c.n_head));
  DB_ASSIGN_OR_RETURN(int64_t n_embd_head_v,
                      OptionalCount(f, Key(a, "attention.value_length"), c.n_embd_head));
  if (n_embd_head_v != c.n_embd_head) {
    return Status::NotSupported("different key and value head sizes (" +
                                std::to_string(c.n_embd_head) + ", " +
                                std::to_string(n_embd_head_v) + ") are not supported");
  }
  DB_ASSIGN_OR_RETURN(c.rms_eps,
                      OptionalFloat(f, Key(a, "attention.layer_norm_rms_epsilon"), 1e-5f));
  if (!(c.rms_eps > 0.0f)) return Status::InvalidArgument("the RMSNorm epsilon must be positive");

  // Vocabulary size: the explicit key, else the tokenizer's token list, else the embedding rows.
  if (f.Has(Key(a, "vocab_size"))) {
    DB_ASSIGN_OR_RETURN(c.n_vocab, RequiredCount(f, Key(a, "vocab_size")));
  } else if (f.Has("tokenizer.ggml.tokens")) {
    DB_ASSIGN_OR_RETURN(uint64_t n, f.GetArrayLength("tokenizer.ggml.tokens"));
    c.n_vocab = static_cast<int64_t>(n);
  } else if (const GgufTensor* e = f.FindTensor("token_embd.weight")) {
    c.n_vocab = e->ne[1];
  }
  if (c.n_vocab <= 0) return Status::InvalidArgument("the model's vocabulary size is unknown");

  // RoPE.
  DB_ASSIGN_OR_RETURN(c.n_rot, OptionalCount(f, Key(a, "rope.dimension_count"), c.n_embd_head));
  if (c.n_rot <= 0 || c.n_rot > c.n_embd_head || c.n_rot % 2 != 0) {
    return Status::InvalidArgument("rope.dimension_count " + std::to_string(c.n_rot) +
                                   " does not fit the head size " + std::to_string(c.n_embd_head));
  }
  DB_ASSIGN_OR_RETURN(c.rope_freq_base, OptionalFloat(f, Key(a, "rope.freq_base"), 10000.0f));
  DB_ASSIGN_OR_RETURN(c.rope_scaling_factor, OptionalFloat(f, Key(a, "rope.scaling.factor"), 1.0f));
  DB_ASSIGN_OR_RETURN(c.rope_scaling_orig_ctx,
                      OptionalCount(f, Key(a, "rope.scaling.original_context_length"), 0));
  std::string scaling = "none";
  if (f.Has(Key(a, "rope.scaling.type"))) {
    DB_ASSIGN_OR_RETURN(std::string_view s, f.GetString(Key(a, "rope.scaling.type")));
    scaling = std::string(s);
  } else if (f.Has(Key(a, "rope.scale_linear"))) {  // the older key for linear scaling
    DB_ASSIGN_OR_RETURN(c.rope_scaling_factor, f.GetF32(Key(a, "rope.scale_linear")));
    scaling = "linear";
  }
  if (scaling == "linear") {
    c.rope_scaling = RopeScalingType::kLinear;
  } else if (scaling == "llama3") {
    c.rope_scaling = RopeScalingType::kLlama3;
  } else if (scaling != "none") {
    return Status::NotSupported("rope scaling '" + scaling +
                                "' is not supported (supported: none, linear, llama3)");
  }
  if (c.rope_scaling != RopeScalingType::kNone && !(c.rope_scaling_factor > 0.0f)) {
    return Status::InvalidArgument("rope.scaling.factor must be positive");
  }
  if (c.rope_scaling == RopeScalingType::kLinear && c.rope_scaling_factor == 1.0f) {
    c.rope_scaling = RopeScalingType::kNone;
  }
  // Llama-3 scaling as llama.cpp's converter stores it: a tensor of per-pair divisors.
  if (const GgufTensor* t = f.FindTensor("rope_freqs.weight")) {
    if (t->type != GgmlType::kF32 || t->n_elements() != c.n_rot / 2) {
      return Status::InvalidArgument("tensor 'rope_freqs.weight' must be F32 with " +
                                     std::to_string(c.n_rot / 2) + " elements, got " +
                                     GgmlTypeName(t->type) + " " + t->ShapeString());
    }
    c.rope_freq_factors.resize(static_cast<size_t>(c.n_rot / 2));
    std::memcpy(c.rope_freq_factors.data(), t->data, t->nbytes);
    c.rope_scaling = RopeScalingType::kLlama3;
  } else if (c.rope_scaling == RopeScalingType::kLlama3) {
    DB_ASSIGN_OR_RETURN(float low, OptionalFloat(f, Key(a, "rope.scaling.low_freq_factor"), 1.0f));
    DB_ASSIGN_OR_RETURN(float high, OptionalFloat(f, Key(a, "rope.scaling.high_freq_factor"), 4.0f));
    if (c.rope_scaling_orig_ctx <= 0 || !(high > low)) {
      return Status::InvalidArgument(
          "llama3 rope scaling needs rope.scaling.original_context_length and "
          "high_freq_factor > low_freq_factor");
    }
    c.rope_freq_factors = Llama3RopeFactors(c.n_rot, c.rope_freq_base, c.rope_scaling_factor, low,
                                            high, c.rope_scaling_orig_ctx);
  }

  c.tied_output = f.FindTensor("output.weight") == nullptr;
  c.has_qkv_bias = c.arch == ModelArch::kQwen2 || f.FindTensor("blk.0.attn_q.bias") != nullptr;
  return c;
}

Status ModelConfig::VerifyTensors(const GgufFile& f) const {
  auto check = [&](const std::string& name, std::initializer_list<int64_t> ne,
                   bool matrix) -> Status {
    const GgufTensor* t = f.FindTensor(name);
    if (t == nullptr) return Status::InvalidArgument("the model lacks tensor '" + name + "'");
    bool same = t->n_dims == ne.size();
    size_t d = 0;
    for (int64_t e : ne) same = same && t->ne[d++] == e;
    if (!same) {
      return Status::InvalidArgument("tensor '" + name + "' has shape " + t->ShapeString() +
                                     ", expected " + Shape(ne));
    }
    if (matrix) return CheckSupportedWeightType(t->type, name);
    if (t->type != GgmlType::kF32) {
      return Status::NotSupported("tensor '" + name + "' has type " + GgmlTypeName(t->type) +
                                  " (1-D tensors must be F32)");
    }
    return Status::OK();
  };
  DB_RETURN_IF_ERROR(check("token_embd.weight", {n_embd, n_vocab}, true));
  DB_RETURN_IF_ERROR(check("output_norm.weight", {n_embd}, false));
  if (!tied_output) DB_RETURN_IF_ERROR(check("output.weight", {n_embd, n_vocab}, true));
  for (int64_t l = 0; l < n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    DB_RETURN_IF_ERROR(check(p + "attn_norm.weight", {n_embd}, false));
    DB_RETURN_IF_ERROR(check(p + "attn_q.weight", {n_embd, n_embd_q()}, true));
    DB_RETURN_IF_ERROR(check(p + "attn_k.weight", {n_embd, n_embd_kv()}, true));
    DB_RETURN_IF_ERROR(check(p + "attn_v.weight", {n_embd, n_embd_kv()}, true));
    DB_RETURN_IF_ERROR(check(p + "attn_output.weight", {n_embd_q(), n_embd}, true));
    if (has_qkv_bias) {
      DB_RETURN_IF_ERROR(check(p + "attn_q.bias", {n_embd_q()}, false));
      DB_RETURN_IF_ERROR(check(p + "attn_k.bias", {n_embd_kv()}, false));
      DB_RETURN_IF_ERROR(check(p + "attn_v.bias", {n_embd_kv()}, false));
    }
    DB_RETURN_IF_ERROR(check(p + "ffn_norm.weight", {n_embd}, false));
    DB_RETURN_IF_ERROR(check(p + "ffn_gate.weight", {n_embd, n_ff}, true));
    DB_RETURN_IF_ERROR(check(p + "ffn_up.weight", {n_embd, n_ff}, true));
    DB_RETURN_IF_ERROR(check(p + "ffn_down.weight", {n_ff, n_embd}, true));
  }
  return Status::OK();
}

std::string ModelConfig::Summary() const {
  return arch_name + ": " + std::to_string(n_layer) + " layers, n_embd " +
         std::to_string(n_embd) + ", " + std::to_string(n_head) + " heads (" +
         std::to_string(n_head_kv) + " kv) of " + std::to_string(n_embd_head) + ", n_ff " +
         std::to_string(n_ff) + ", vocab " + std::to_string(n_vocab) + ", ctx " +
         std::to_string(n_ctx_train) + (tied_output ? ", tied output" : "") +
         (has_qkv_bias ? ", qkv bias" : "");
}

}  // namespace dualblade
