// Model: a GGUF transformer opened for inference: its hyperparameters (read and verified by
// model/model_config.h) and views of its weights, which stay in the memory-mapped file (zero
// copy). Architectures `llama` (Llama 2/3, TinyLlama, Mistral, SmolLM) and `qwen2` (QKV biases,
// NeoX RoPE); anything else is refused by name.
// Thread-safety: immutable after Open.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "compute/matmul.h"
#include "compute/rope.h"
#include "model/gguf.h"
#include "model/model_config.h"

namespace dualblade::engine {

// The hyperparameters (model/model_config.h), plus what the engine derives from them.
using ModelConfig = ::dualblade::ModelConfig;

struct LayerWeights {
  const float* attn_norm = nullptr;     // (n_embd)
  compute::WeightMatrix wq, wk, wv, wo; // (n_embd_q, n_embd) (n_embd_kv, n_embd) x2 (n_embd, n_embd_q)
  const float* bq = nullptr;            // (n_embd_q) qwen2 only
  const float* bk = nullptr;            // (n_embd_kv)
  const float* bv = nullptr;            // (n_embd_kv)
  const float* ffn_norm = nullptr;      // (n_embd)
  compute::WeightMatrix w_gate, w_up;   // (n_ff, n_embd)
  compute::WeightMatrix w_down;         // (n_embd, n_ff)
};

struct ModelWeights {
  compute::WeightMatrix token_embd;  // (n_vocab, n_embd)
  const float* output_norm = nullptr;
  compute::WeightMatrix output;      // (n_vocab, n_embd); token_embd when tied
  std::vector<LayerWeights> layers;
};

class Model {
 public:
  // Maps and validates `path`. NotFound/IOError for the file, Corruption for a malformed GGUF,
  // NotSupported naming the architecture or a tensor's type, InvalidArgument for missing keys or
  // tensors of the wrong shape.
  static Result<std::unique_ptr<Model>> Open(const std::string& path);
  // Same, over an already opened file (takes ownership).
  static Result<std::unique_ptr<Model>> FromGguf(std::unique_ptr<GgufFile> gguf, std::string name);

  const ModelConfig& config() const { return config_; }
  // RoPE as the compute kernels take it (style, dimensions, base, scaling).
  const compute::RopeConfig& rope() const { return rope_; }
  // general.name, or the file name when the model has none.
  const std::string& display_name() const { return display_name_; }
  const ModelWeights& weights() const { return weights_; }
  const GgufFile& gguf() const { return *gguf_; }
  // Bytes of all tensors (what the weights occupy once paged in).
  uint64_t weight_bytes() const { return weight_bytes_; }

 private:
  Model() = default;
  Status LoadWeights();

  std::unique_ptr<GgufFile> gguf_;
  ModelConfig config_;
  compute::RopeConfig rope_;
  std::string display_name_;
  ModelWeights weights_;
  uint64_t weight_bytes_ = 0;
};

}  // namespace dualblade::engine
