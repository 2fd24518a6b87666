// Sampler: picks the next token from logits. Temperature 0 is greedy (ties go to the lower id,
// so runs are reproducible); otherwise top-k, then temperature softmax, then top-p (nucleus),
// drawn from a generator seeded once, so a seed reproduces a run exactly.
// Thread-safety: one Sampler per sequence.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace dualblade::engine {

struct SamplerConfig {
  float temperature = 0.0f;  // <= 0: greedy
  int top_k = 40;            // <= 0: whole vocabulary
  float top_p = 0.95f;       // >= 1: no nucleus cut
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplerConfig& config);

  int32_t Sample(const float* logits, int64_t n_vocab);

  // Index of the largest logit, lowest index among equals.
  static int32_t Greedy(const float* logits, int64_t n_vocab);

 private:
  SamplerConfig config_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> candidates_;
};

}  // namespace dualblade::engine
