// Rotary position embedding as llama.cpp computes it (ggml_rope_ext without YaRN): the "normal"
// style of the llama architecture rotates adjacent pairs (x[2i], x[2i+1]); the "NeoX" style of
// qwen2 rotates (x[i], x[i + n_dims/2]). Optional per-pair frequency factors implement Llama-3
// scaling. Thread-safety: a Rope is immutable after construction; Apply is reentrant.
#pragma once

#include <cstdint>
#include <vector>

namespace dualblade::compute {

enum class RopeStyle { kNormal, kNeox };

struct RopeConfig {
  RopeStyle style = RopeStyle::kNormal;
  int n_dims = 0;            // rotated dimensions per head (rope.dimension_count), even
  float freq_base = 10000.0f;
  float freq_scale = 1.0f;   // 1 / linear scaling factor
  std::vector<float> freq_factors;  // empty, or n_dims/2 divisors of theta (Llama-3 scaling)
};

class Rope {
 public:
  explicit Rope(RopeConfig config);

  // Rotates in place the first n_dims elements of each of n_head heads of head_dim elements
  // stored back to back in x, for token position pos.
  void Apply(float* x, int n_head, int head_dim, int64_t pos) const;

  const RopeConfig& config() const { return config_; }

 private:
  RopeConfig config_;
  float theta_scale_;
};

// Llama-3 frequency factors (the `rope_freqs.weight` tensor llama.cpp's converter writes), from
// the HF rope_scaling keys: factor, low_freq_factor, high_freq_factor,
// original_max_position_embeddings. Returns n_dims/2 factors.
std::vector<float> Llama3RopeFreqFactors(int n_dims, float freq_base, float factor,
                                         float low_freq_factor, float high_freq_factor,
                                         float original_max_positions);

}  // namespace dualblade::compute
