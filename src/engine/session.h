// Session: one sequence through a model: prefill the prompt in micro-batches, then decode token by
// token, sampling each next token; times both phases. The KV cache (any policy) is owned here.
// Thread-safety: one thread drives a Session.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "common/status.h"
#include "compute/thread_pool.h"
#include "engine/kv_cache.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "engine/transformer.h"

namespace dualblade::engine {

struct SessionOptions {
  int n_ubatch = 512;  // prompt tokens per forward pass (llama.cpp's default micro-batch)
  compute::MatmulMode mode = compute::MatmulMode::kAuto;
};

struct SessionStats {
  int64_t prompt_tokens = 0;
  double prefill_ms = 0;
  int64_t decoded_tokens = 0;  // forward passes of one generated token
  double decode_ms = 0;
  double ttft_ms = 0;          // prefill plus the first sample
  // Time blocked on KV reads (KvStats::stall_ms) during prefill and during decode.
  double prefill_stall_ms = 0;
  double decode_stall_ms = 0;
};

class Session {
 public:
  // model and pool must outlive the session; pool may be null.
  Session(const Model& model, std::unique_ptr<KvCache> kv, compute::ThreadPool* pool,
          const SessionOptions& options = {});

  using ProgressFn = std::function<void(int64_t done_tokens, int64_t total_tokens)>;
  using TokenFn = std::function<void(int32_t token)>;

  // Runs the prompt; afterwards logits() holds the last prompt token's logits.
  Status Prefill(std::span<const int32_t> prompt, const ProgressFn& progress = nullptr);
  // Runs one token; afterwards logits() holds its logits.
  Status Decode(int32_t token);

  // Prefill, then up to n_predict sampled tokens (on_token is called for each as soon as it is
  // chosen); stops early after a token for which `is_end` (if set) is true, or when the context
  // is full.
  using EndFn = std::function<bool(int32_t token)>;
  Status Generate(std::span<const int32_t> prompt, int n_predict, Sampler* sampler,
                  const EndFn& is_end, const TokenFn& on_token,
                  const ProgressFn& progress = nullptr);

  const std::vector<float>& logits() const { return logits_; }
  const SessionStats& stats() const { return stats_; }
  const std::vector<int32_t>& generated() const { return generated_; }
  KvCache& kv() { return *kv_; }
  int64_t n_past() const { return transformer_.n_past(); }

 private:
  const Model& model_;
  std::unique_ptr<KvCache> kv_;
  SessionOptions options_;
  Transformer transformer_;
  std::vector<float> logits_;
  std::vector<int32_t> generated_;
  SessionStats stats_;
};

}  // namespace dualblade::engine
