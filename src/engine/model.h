// Model: a GGUF transformer opened for inference: its hyperparameters and views of its weights,
// which stay in the memory-mapped file (zero copy). Architectures `llama` (Llama 2/3, TinyLlama,
// Mistral, SmolLM) and `qwen2` (QKV biases, NeoX RoPE); anything else is refused by name.
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

namespace dualblade::engine {

enum class Arch : uint8_t { kLlama, kQwen2 };

struct ModelConfig {
  Arch arch = Arch::kLlama;
  std::string arch_name;   // general.architecture
  std::string name;        // general.name, or the file name
  int64_t n_vocab = 0;
  int64_t n_embd = 0;
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t n_embd_head = 0;  // head_dim
  int64_t n_ff = 0;
  int64_t n_ctx_train = 0;
  float rms_eps = 1e-5f;
  compute::RopeConfig rope;

  int64_t n_embd_q() const { return n_head * n_embd_head; }
  int64_t n_embd_kv() const { return n_head_kv * n_embd_head; }
};

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
  const ModelWeights& weights() const { return weights_; }
  const GgufFile& gguf() const { return *gguf_; }
  // Bytes of all tensors (what the weights occupy once paged in).
  uint64_t weight_bytes() const { return weight_bytes_; }

 private:
  Model() = default;
  Status LoadConfig();
  Status LoadWeights();

  std::unique_ptr<GgufFile> gguf_;
  ModelConfig config_;
  ModelWeights weights_;
  uint64_t weight_bytes_ = 0;
};

}  // namespace dualblade::engine
