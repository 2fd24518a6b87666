// Transformer: the forward pass of a llama/qwen2 model over a KvCache. Prefill runs a batch of
// tokens through GEMMs; decode runs one token through GEMVs; both append the new K/V rows to the
// cache and attend over it chunk by chunk (compute/attention.h), so the math is the same under
// every KV policy.
// Thread-safety: one Transformer per sequence, driven by one thread; it parallelizes internally
// on the pool.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/status.h"
#include "compute/attention.h"
#include "compute/matmul.h"
#include "compute/rope.h"
#include "compute/thread_pool.h"
#include "engine/kv_cache.h"
#include "engine/model.h"

namespace dualblade::engine {

class Transformer {
 public:
  // model, kv and pool must outlive this object; pool may be null (one thread). kv's geometry must
  // match the model (n_layer, n_head_kv, head_dim).
  Transformer(const Model& model, KvCache* kv, compute::ThreadPool* pool,
              compute::MatmulMode mode = compute::MatmulMode::kAuto);
  Transformer(const Transformer&) = delete;
  Transformer& operator=(const Transformer&) = delete;

  // Runs `tokens` at positions n_past() .. n_past() + size - 1, appending their K/V rows, and
  // writes the logits of the last token (n_vocab floats) to `logits` when it is not null.
  // InvalidArgument for a token id outside the vocabulary; NoSpace when the KV cache is full.
  // On error the cache may hold rows of some layers for these tokens: discard the sequence.
  Status Forward(std::span<const int32_t> tokens, float* logits);

  int64_t n_past() const { return kv_->n_tokens(0); }
  const Model& model() const { return model_; }

 private:
  Status Attention(int layer, int64_t n_tokens, int64_t pos0);

  const Model& model_;
  const ModelConfig& c_;
  KvCache* kv_;
  compute::ThreadPool* pool_;
  compute::Matmul matmul_;
  compute::Rope rope_;
  // Activations, [n_tokens, width] row-major.
  std::vector<float> x_, xn_, q_, k_, v_, attn_, gate_, up_, out_;
  std::vector<uint16_t> k16_, v16_;
  compute::ChunkedAttention attention_;  // reset per layer, buffers kept across tokens
};

// Checks that a KV geometry fits a model.
Status CheckKvGeometry(const ModelConfig& c, const KvGeometry& g);

}  // namespace dualblade::engine
