// ModelConfig: the hyperparameters of a `llama` or `qwen2` GGUF model, read the way llama.cpp
// reads them (same keys, same defaults), and the check that every tensor the architecture needs
// is present with the expected shape and a supported type. Anything else is refused by name.
// Thread-safety: a plain value.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "model/gguf.h"

namespace dualblade {

enum class ModelArch : uint8_t { kLlama, kQwen2 };

// How RoPE pairs the dimensions of a head: llama rotates adjacent pairs (x[2i], x[2i+1]);
// qwen2 ("NeoX") rotates (x[i], x[i + n_rot/2]).
enum class RopeType : uint8_t { kNormal, kNeox };

enum class RopeScalingType : uint8_t { kNone, kLinear, kLlama3 };

struct ModelConfig {
  ModelArch arch = ModelArch::kLlama;
  std::string arch_name;    // general.architecture
  std::string name;         // general.name ("" when absent)

  int64_t n_layer = 0;
  int64_t n_embd = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;    // default n_head
  int64_t n_embd_head = 0;  // attention.key_length, default n_embd / n_head
  int64_t n_ff = 0;
  int64_t n_vocab = 0;      // vocab_size, else the tokens array length, else token_embd rows
  int64_t n_ctx_train = 0;  // context_length

  int64_t n_rot = 0;                 // rope.dimension_count, default n_embd_head
  float rope_freq_base = 10000.0f;   // rope.freq_base
  RopeType rope_type = RopeType::kNormal;
  RopeScalingType rope_scaling = RopeScalingType::kNone;
  float rope_scaling_factor = 1.0f;  // rope.scaling.factor (linear, llama3)
  int64_t rope_scaling_orig_ctx = 0; // rope.scaling.original_context_length
  // n_rot/2 divisors of each pair's theta (Llama-3 scaling): the `rope_freqs.weight` tensor when
  // the file has one, else computed from the llama3 scaling keys; empty without scaling.
  std::vector<float> rope_freq_factors;

  float rms_eps = 1e-5f;      // attention.layer_norm_rms_epsilon
  bool tied_output = false;   // no output.weight: logits use token_embd.weight
  bool has_qkv_bias = false;  // attn_{q,k,v}.bias present (always for qwen2)

  int64_t n_embd_q() const { return n_head * n_embd_head; }
  int64_t n_embd_kv() const { return n_head_kv * n_embd_head; }
  int64_t n_gqa() const { return n_head / n_head_kv; }
  // 1 / factor for linear scaling, else 1 (llama.cpp's rope_freq_scale).
  float rope_freq_scale() const {
    return rope_scaling == RopeScalingType::kLinear ? 1.0f / rope_scaling_factor : 1.0f;
  }

  // Reads and validates the hyperparameters. NotSupported naming the architecture ("architecture
  // 'falcon' is not supported (supported: llama, qwen2)") or feature (MoE, YaRN); InvalidArgument
  // for missing or inconsistent keys.
  static Result<ModelConfig> FromGguf(const GgufFile& f);

  // Checks every tensor the architecture needs: present, expected shape, supported type (norms
  // and biases F32). InvalidArgument naming the tensor and both shapes, or NotSupported naming
  // the tensor's type.
  Status VerifyTensors(const GgufFile& f) const;

  // One line: "llama: 2 layers, n_embd 256, 4 heads (2 kv) of 64, n_ff 512, vocab 512, ctx 2048".
  std::string Summary() const;
};

// Llama-3 RoPE frequency divisors (what llama.cpp's converter stores as rope_freqs.weight):
// pairs whose wavelength exceeds orig_ctx / low_freq_factor are slowed by `factor`, those below
// orig_ctx / high_freq_factor kept, and the band between interpolated smoothly.
std::vector<float> Llama3RopeFactors(int64_t n_rot, float freq_base, float factor,
                                     float low_freq_factor, float high_freq_factor,
                                     int64_t orig_ctx);

}  // namespace dualblade
