#include "engine/model.h"

#include <cstring>
#include <string>

namespace dualblade::engine {
namespace {

// Built with appends: GCC 12 warns falsely (-Wrestrict) on `"[" + std::to_string(...)`.
std::string ShapeOf(int64_t ne0, int64_t ne1) {
  std::string s = "[";
  s.append(std::to_string(ne0)).append(", ").append(std::to_string(ne1)).append("]");
  return s;
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
  DB_ASSIGN_OR_RETURN(m->config_, ModelConfig::FromGguf(*m->gguf_));
  DB_RETURN_IF_ERROR(m->config_.VerifyTensors(*m->gguf_));
  const ModelConfig& c = m->config_;
  m->display_name_ = c.name.empty() ? std::move(name) : c.name;
  m->rope_.style =
      c.rope_type == RopeType::kNeox ? compute::RopeStyle::kNeox : compute::RopeStyle::kNormal;
  m->rope_.n_dims = static_cast<int>(c.n_rot);
  m->rope_.freq_base = c.rope_freq_base;
  m->rope_.freq_scale = c.rope_freq_scale();
  m->rope_.freq_factors = c.rope_freq_factors;
  DB_RETURN_IF_ERROR(m->LoadWeights());
  return m;
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
  if (!c.tied_output) {
    DB_RETURN_IF_ERROR(matrix("output.weight", c.n_embd, c.n_vocab, &w.output));
  } else {
    w.output = w.token_embd;  // tied embeddings
  }
  const bool biases = c.has_qkv_bias;
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
