#include "compute/rope.h"

#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace dualblade::compute {
namespace {

// Straight from the formulas: theta_i = pos * base^(-2i/n_dims) / factor_i, in double.
std::vector<float> ReferenceRope(const std::vector<float>& x, int n_head, int head_dim,
                                 int n_dims, bool neox, double base, int64_t pos,
                                 const std::vector<float>& factors) {
  std::vector<float> out = x;
  for (int h = 0; h < n_head; ++h) {
    for (int i = 0; i < n_dims / 2; ++i) {
      double theta = pos * std::pow(base, -2.0 * i / n_dims);
      if (!factors.empty()) theta /= factors[i];
      const int a = h * head_dim + (neox ? i : 2 * i);
      const int b = h * head_dim + (neox ? i + n_dims / 2 : 2 * i + 1);
      out[a] = static_cast<float>(x[a] * std::cos(theta) - x[b] * std::sin(theta));
      out[b] = static_cast<float>(x[a] * std::sin(theta) + x[b] * std::cos(theta));
    }
  }
  return out;
}

TEST(RopeTest, NormalAndNeoxMatchReference) {
  std::mt19937 rng(1);
  std::normal_distribution<float> d;
  for (bool neox : {false, true}) {
    for (int64_t pos : {0, 1, 17, 300}) {
      std::vector<float> x(3 * 64);
      for (auto& v : x) v = d(rng);
      RopeConfig cfg;
      cfg.style = neox ? RopeStyle::kNeox : RopeStyle::kNormal;
      cfg.n_dims = 48;  // partial rotation: dims 48..63 stay as they are
      cfg.freq_base = neox ? 1e6f : 1e4f;
      Rope rope(cfg);
      auto got = x;
      rope.Apply(got.data(), 3, 64, pos);
      auto want = ReferenceRope(x, 3, 64, 48, neox, cfg.freq_base, pos, {});
      for (size_t i = 0; i < x.size(); ++i) {
        ASSERT_NEAR(got[i], want[i], 2e-4) << "neox " << neox << " pos " << pos << " i " << i;
      }
      for (int h = 0; h < 3; ++h)
        for (int i = 48; i < 64; ++i) ASSERT_EQ(got[h * 64 + i], x[h * 64 + i]);
    }
  }
}

TEST(RopeTest, Llama3FactorsMatchKnownValuesAndApply) {
  // Llama 3.1/3.2: factor 8 (32 for 3.2), low 1, high 4, original context 8192, base 500000.
  auto f = Llama3RopeFreqFactors(64, 500000.0f, 32.0f, 1.0f, 4.0f, 8192.0f);
  ASSERT_EQ(f.size(), 32u);
  EXPECT_EQ(f[0], 1.0f);     // highest frequency: untouched
  EXPECT_EQ(f[31], 32.0f);   // lowest frequency: fully scaled
  for (size_t i = 1; i < f.size(); ++i) EXPECT_GE(f[i], f[i - 1]);
  RopeConfig cfg;
  cfg.n_dims = 64;
  cfg.freq_base = 500000.0f;
  cfg.freq_factors = f;
  Rope rope(cfg);
  std::vector<float> x(64);
  for (int i = 0; i < 64; ++i) x[i] = 0.01f * i - 0.3f;
  auto got = x;
  rope.Apply(got.data(), 1, 64, 1234);
  auto want = ReferenceRope(x, 1, 64, 64, false, 500000.0, 1234, f);
  for (int i = 0; i < 64; ++i) EXPECT_NEAR(got[i], want[i], 2e-4);
}

}  // namespace
}  // namespace dualblade::compute
