#include "engine/model.h"

#include <cstring>

namespace dualblade::engine {
namespace {

std::string Key(const std::string& arch, const char* suffix) { return arch + "." + suffix; }

// Optional integer key: `fallback` when absent.
Result<int64_t> OptionalInt(const GgufFile& f, const std::string& key, int64_t fallback) {
  if (!f.Has(key)) return fallback;
  DB_ASSIGN_OR_RETURN(uint32_t v, f.GetU32(key));
  return static_cast<int64_t>(v);
}

Result<int64_t> RequiredInt(const GgufFile& f, const std::string& key) {
  if (!f.Has(key)) return Status::InvalidArgument("the model lacks the key '" + key + "'");
  DB_ASSIGN_OR_RETURN(uint32_t v, f.GetU32(key));
  if (v == 0) return Status::InvalidArgument("the model's '" + key + "' is 0");
  return static_cast<int64_t>(v);
}

Result<float> OptionalFloat(const GgufFile& f, const std::string& key, float fallback) {
  if (!f.Has(key)) return fallback;
  return f.GetF32(key);
}

std::string ShapeOf(int64_t ne0, int64_t ne1) {
  return "[" + std::to_string(ne0) + ", " + std::to_string(ne1) + "]";
}

}  // namespace

Result<std::unique_ptr<Model>> Model::Open(const std::string& path) {
  DB_ASSIGN_OR_RETURN(auto gguf, GgufFile::Open(path));
  std::string name = path;
  if (auto slash = name.rfind('/'); slash != std::string::npos) name = name.substr(slash + 1);
  return FromGguf(std::move(gguf), name);
}

Result<std::unique_ptr<Model>> Model::FromGguf(std::unique_ptr<GgufFile> gguf, std::string name) {
  std::unique_ptr<Model> m(new Model());
  m->gguf_ = std::move(gguf);
  m->config_.name = std::move(name);
  DB_RETURN_IF_ERROR(m->LoadConfig());
  DB_RETURN_IF_ERROR(m->LoadWeights());
  return m;
}

Status Model::LoadConfig() {
  const GgufFile& f = *gguf_;
  ModelConfig& c = config_;
  if (!f.Has("general.architecture")) {
    return Status::InvalidArgument("the model lacks the key 'general.architecture'");
  }
  DB_ASSIGN_OR_RETURN(std::string_view arch, f.GetString("general.architecture"));
  c.arch_name = std::string(arch);
  if (c.arch_name == "llama") {
    c.arch = Arch::kLlama;
  } else if (c.arch_name == "qwen2") {
    c.arch = Arch::kQwen2;
  } else {
    return Status::NotSupported("architecture '" + c.arch_name +
                                "' is not supported (supported: llama, qwen2)");
  }
  const std::string& a = c.arch_name;
  DB_ASSIGN_OR_RETURN(c.n_embd, RequiredInt(f, Key(a, "embedding_length")));
  DB_ASSIGN_OR_RETURN(c.n_layer, RequiredInt(f, Key(a, "block_count")));
  DB_ASSIGN_OR_RETURN(c.n_head, RequiredInt(f, Key(a, "attention.head_count")));
  DB_ASSIGN_OR_RETURN(c.n_head_kv, OptionalInt(f, Key(a, "attention.head_count_kv"), c.n_head));
  DB_ASSIGN_OR_RETURN(c.n_ff, RequiredInt(f, Key(a, "feed_forward_length")));
  DB_ASSIGN_OR_RETURN(c.n_ctx_train, OptionalInt(f, Key(a, "context_length"), 2048));
  DB_ASSIGN_OR_RETURN(c.n_embd_head,
                      OptionalInt(f, Key(a, "attention.key_length"), c.n_embd / c.n_head));
  DB_ASSIGN_OR_RETURN(int64_t v_len, OptionalInt(f, Key(a, "attention.value_length"), c.n_embd_head));
  DB_ASSIGN_OR_RETURN(c.rms_eps, OptionalFloat(f, Key(a, "attention.layer_norm_rms_epsilon"), 1e-5f));
  if (c.n_head_kv == 0 || c.n_head % c.n_head_kv != 0) {
    return Status::InvalidArgument("head_count " + std::to_string(c.n_head) +
                                   " is not a multiple of head_count_kv " +
                                   std::to_string(c.n_head_kv));
  }
  if (v_len != c.n_embd_head || c.n_embd_head <= 0 || c.n_embd_head % 2 != 0) {
    return Status::NotSupported("head sizes key " + std::to_string(c.n_embd_head) + " / value " +
                                std::to_string(v_len) + " are not supported");
  }
  c.rope.style = c.arch == Arch::kQwen2 ? compute::RopeStyle::kNeox : compute::RopeStyle::kNormal;
  DB_ASSIGN_OR_RETURN(int64_t n_rot, OptionalInt(f, Key(a, "rope.dimension_count"), c.n_embd_head));
  if (n_rot <= 0 || n_rot > c.n_embd_head || n_rot % 2 != 0) {
    return Status::InvalidArgument("rope.dimension_count " + std::to_string(n_rot) +
                                   " does not fit head size " + std::to_string(c.n_embd_head));
  }
  c.rope.n_dims = static_cast<int>(n_rot);
  DB_ASSIGN_OR_RETURN(c.rope.freq_base, OptionalFloat(f, Key(a, "rope.freq_base"), 10000.0f));
  const std::string scaling_key = Key(a, "rope.scaling.type");
  if (f.Has(scaling_key)) {
    DB_ASSIGN_OR_RETURN(std::string_view type, f.GetString(scaling_key));
    if (type == "linear") {
      DB_ASSIGN_OR_RETURN(float factor, OptionalFloat(f, Key(a, "rope.scaling.factor"), 1.0f));
      if (factor > 0.0f) c.rope.freq_scale = 1.0f / factor;
    } else if (type != "none" && type != "llama3") {
      return Status::NotSupported("rope scaling '" + std::string(type) + "' is not supported");
    }
  } else if (f.Has(Key(a, "rope.scale_linear"))) {
    DB_ASSIGN_OR_RETURN(float factor, f.GetF32(Key(a, "rope.scale_linear")));
    if (factor > 0.0f) c.rope.freq_scale = 1.0f / factor;
  }
  // Llama-3 scaling: the converter stores the per-pair divisors as a tensor.
  if (const GgufTensor* t = f.FindTensor("rope_freqs.weight")) {
    if (t->type != GgmlType::kF32 || t->n_elements() != n_rot / 2) {
      return Status::InvalidArgument("rope_freqs.weight must be F32 with " +
                                     std::to_string(n_rot / 2) + " elements");
    }
    c.rope.freq_factors.resize(static_cast<size_t>(n_rot / 2));
    std::memcpy(c.rope.freq_factors.data(), t->data, t->nbytes);
  }
  const GgufTensor* embd = f.FindTensor("token_embd.weight");
  if (embd == nullptr) return Status::InvalidArgument("the model lacks tensor 'token_embd.weight'");
  c.n_vocab = embd->ne[1];
  return Status::OK();
}

Status Model::LoadWeights() {
  const GgufFile& f = *gguf_;
  const ModelConfig& c = config_;
  auto matrix = [&](const std::string& name, int64_t n_in, int64_t n_out,
                    compute::WeightMatrix* out) -> Status {
    const GgufTensor* t = f.FindTensor(name);
    if (t == nullptr) return Status::InvalidArgument("the model lacks tensor '" + name + "'");
    if (t->n_dims != 2 || t->ne[0] != n_in || t->ne[1] != n_out) {
      return Status::InvalidArgument("tensor '" + name + "' has shape " + t->ShapeString() +
                                     ", expected " + ShapeOf(n_in, n_out));
    }
    DB_RETURN_IF_ERROR(CheckSupportedWeightType(t->type, name));
    if (!compute::MatmulSupportsType(t->type)) {
      return Status::NotSupported("tensor '" + name + "' has type " + GgmlTypeName(t->type) +
                                  ", which has no compute kernel yet");
    }
    *out = {t->type, t->data, n_in, n_out, t->row_bytes()};
    return Status::OK();
  };
  auto vector = [&](const std::string& name, int64_t n, bool required,
                    const float** out) -> Status {
    const GgufTensor* t = f.FindTensor(name);
    if (t == nullptr) {
      if (!required) return Status::OK();
      return Status::InvalidArgument("the model lacks tensor '" + name + "'");
    }
    if (t->type != GgmlType::kF32 || t->n_elements() != n) {
      return Status::InvalidArgument("tensor '" + name + "' must be F32 with " +
                                     std::to_string(n) + " elements");
    }
    if (reinterpret_cast<uintptr_t>(t->data) % alignof(float) != 0) {
      return Status::Corruption("tensor '" + name + "' is not 4-byte aligned");
    }
    *out = reinterpret_cast<const float*>(t->data);
    return Status::OK();
  };
  ModelWeights& w = weights_;
  DB_RETURN_IF_ERROR(matrix("token_embd.weight", c.n_embd, c.n_vocab, &w.token_embd));
  DB_RETURN_IF_ERROR(vector("output_norm.weight", c.n_embd, true, &w.output_norm));
  if (f.FindTensor("output.weight") != nullptr) {
    DB_RETURN_IF_ERROR(matrix("output.weight", c.n_embd, c.n_vocab, &w.output));
  } else {
    w.output = w.token_embd;  // tied embeddings
  }
  const bool biases = c.arch == Arch::kQwen2;
  w.layers.resize(static_cast<size_t>(c.n_layer));
  for (int64_t i = 0; i < c.n_layer; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    LayerWeights& l = w.layers[i];
    DB_RETURN_IF_ERROR(vector(p + "attn_norm.weight", c.n_embd, true, &l.attn_norm));
    DB_RETURN_IF_ERROR(matrix(p + "attn_q.weight", c.n_embd, c.n_embd_q(), &l.wq));
    DB_RETURN_IF_ERROR(matrix(p + "attn_k.weight", c.n_embd, c.n_embd_kv(), &l.wk));
    DB_RETURN_IF_ERROR(matrix(p + "attn_v.weight", c.n_embd, c.n_embd_kv(), &l.wv));
    DB_RETURN_IF_ERROR(matrix(p + "attn_output.weight", c.n_embd_q(), c.n_embd, &l.wo));
    DB_RETURN_IF_ERROR(vector(p + "attn_q.bias", c.n_embd_q(), biases, &l.bq));
    DB_RETURN_IF_ERROR(vector(p + "attn_k.bias", c.n_embd_kv(), biases, &l.bk));
    DB_RETURN_IF_ERROR(vector(p + "attn_v.bias", c.n_embd_kv(), biases, &l.bv));
    DB_RETURN_IF_ERROR(vector(p + "ffn_norm.weight", c.n_embd, true, &l.ffn_norm));
    DB_RETURN_IF_ERROR(matrix(p + "ffn_gate.weight", c.n_embd, c.n_ff, &l.w_gate));
    DB_RETURN_IF_ERROR(matrix(p + "ffn_up.weight", c.n_embd, c.n_ff, &l.w_up));
    DB_RETURN_IF_ERROR(matrix(p + "ffn_down.weight", c.n_ff, c.n_embd, &l.w_down));
  }
  for (const GgufTensor& t : f.tensors()) weight_bytes_ += t.nbytes;
  return Status::OK();
}

}  // namespace dualblade::engine
