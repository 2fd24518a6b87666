#include "compute/rope.h"

#include <cmath>
#include <numbers>

#include "common/check.h"

namespace dualblade::compute {

Rope::Rope(RopeConfig config) : config_(std::move(config)) {
  DB_CHECK(config_.n_dims > 0 && config_.n_dims % 2 == 0);
  DB_CHECK(config_.freq_factors.empty() ||
           config_.freq_factors.size() == static_cast<size_t>(config_.n_dims / 2));
  theta_scale_ = std::pow(config_.freq_base, -2.0f / static_cast<float>(config_.n_dims));
}

void Rope::Apply(float* x, int n_head, int head_dim, int64_t pos) const {
  const int n_dims = config_.n_dims;
  DB_CHECK(n_dims <= head_dim);
  // ggml_rope_cache_init: theta advances by repeated float multiplication, not pow per pair;
  // doing the same keeps the angles identical to llama.cpp's.
  float cos_sin[512];
  std::vector<float> big;
  float* cache = cos_sin;
  if (n_dims > 512) {
    big.resize(static_cast<size_t>(n_dims));
    cache = big.data();
  }
  float theta = static_cast<float>(pos);
  for (int i0 = 0; i0 < n_dims; i0 += 2) {
    const float ff = config_.freq_factors.empty() ? 1.0f : config_.freq_factors[i0 / 2];
    const float t = config_.freq_scale * (theta / ff);
    cache[i0] = std::cos(t);
    cache[i0 + 1] = std::sin(t);
    theta *= theta_scale_;
  }
  for (int h = 0; h < n_head; ++h) {
    float* v = x + static_cast<int64_t>(h) * head_dim;
    if (config_.style == RopeStyle::kNormal) {
      for (int i0 = 0; i0 < n_dims; i0 += 2) {
        const float c = cache[i0], s = cache[i0 + 1];
        const float x0 = v[i0], x1 = v[i0 + 1];
        v[i0] = x0 * c - x1 * s;
        v[i0 + 1] = x0 * s + x1 * c;
      }
    } else {
      const int half = n_dims / 2;
      for (int i0 = 0; i0 < n_dims; i0 += 2) {
        const float c = cache[i0], s = cache[i0 + 1];
        const int ic = i0 / 2;
        const float x0 = v[ic], x1 = v[ic + half];
        v[ic] = x0 * c - x1 * s;
        v[ic + half] = x0 * s + x1 * c;
      }
    }
  }
}

std::vector<float> Llama3RopeFreqFactors(int n_dims, float freq_base, float factor,
                                         float low_freq_factor, float high_freq_factor,
                                         float original_max_positions) {
  // Same formula as convert_hf_to_gguf.py (LlamaModel.generate_extra_tensors) and HF's
  // _compute_llama3_parameters.
  const double low_freq_wavelen = original_max_positions / low_freq_factor;
  const double high_freq_wavelen = original_max_positions / high_freq_factor;
  std::vector<float> factors;
  factors.reserve(static_cast<size_t>(n_dims / 2));
  for (int i = 0; i < n_dims; i += 2) {
    const double freq = 1.0 / std::pow(static_cast<double>(freq_base),
                                       static_cast<double>(i) / n_dims);
    const double wavelen = 2.0 * std::numbers::pi / freq;
    double f;
    if (wavelen < high_freq_wavelen) {
      f = 1.0;
    } else if (wavelen > low_freq_wavelen) {
      f = factor;
    } else {
      const double smooth = (original_max_positions / wavelen - low_freq_factor) /
                            (high_freq_factor - low_freq_factor);
      f = 1.0 / ((1.0 - smooth) / factor + smooth);
    }
    factors.push_back(static_cast<float>(f));
  }
  return factors;
}

}  // namespace dualblade::compute
