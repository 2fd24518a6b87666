#include "engine/sampler.h"

#include <map>
#include <vector>

#include <gtest/gtest.h>

namespace dualblade::engine {
namespace {

TEST(SamplerTest, GreedyBreaksTiesTowardLowerId) {
  std::vector<float> logits = {0.5f, 2.0f, -1.0f, 2.0f};
  Sampler s(SamplerConfig{});
  EXPECT_EQ(s.Sample(logits.data(), 4), 1);
}

TEST(SamplerTest, SeedReproducesAndTopKLimitsChoices) {
  std::vector<float> logits = {1.0f, 1.1f, 0.9f, 1.05f, -5.0f, 0.95f};
  SamplerConfig cfg;
  cfg.temperature = 1.0f;
  cfg.top_k = 3;
  cfg.top_p = 1.0f;
  cfg.seed = 7;
  Sampler a(cfg), b(cfg);
  std::map<int, int> counts;
  for (int i = 0; i < 3000; ++i) {
    const int32_t x = a.Sample(logits.data(), 6);
    ASSERT_EQ(x, b.Sample(logits.data(), 6));
    ++counts[x];
  }
  // The three largest logits are ids 1, 3 and 0.
  EXPECT_EQ(counts.size(), 3u);
  EXPECT_GT(counts[1], 800);
  EXPECT_GT(counts[3], 800);
  EXPECT_GT(counts[0], 800);
}

TEST(SamplerTest, TopPKeepsTheNucleus) {
  // Probabilities at temperature 1: id 2 dominates (~0.88), so top-p 0.5 always picks it.
  std::vector<float> logits = {0.0f, 1.0f, 3.0f};
  SamplerConfig cfg;
  cfg.temperature = 1.0f;
  cfg.top_k = 0;
  cfg.top_p = 0.5f;
  Sampler s(cfg);
  for (int i = 0; i < 200; ++i) ASSERT_EQ(s.Sample(logits.data(), 3), 2);
}

}  // namespace
}  // namespace dualblade::engine
