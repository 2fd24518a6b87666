#include "compute/ops.h"

#include <immintrin.h>

#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace dualblade::compute {
namespace {

std::vector<float> RandomVector(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

TEST(OpsTest, RmsNormMatchesDoubleReference) {
  auto x = RandomVector(300, 1), w = RandomVector(300, 2);
  std::vector<float> out(300);
  RmsNorm(x.data(), w.data(), 300, 1e-5f, out.data());
  double ss = 0;
  for (float v : x) ss += double(v) * v;
  const double scale = 1.0 / std::sqrt(ss / 300 + 1e-5);
  for (int i = 0; i < 300; ++i) EXPECT_NEAR(out[i], x[i] * scale * w[i], 1e-5);
}

TEST(OpsTest, SwiGluMatchesFormula) {
  auto g = RandomVector(77, 3, 3.0f), u = RandomVector(77, 4);
  std::vector<float> out(77);
  SwiGlu(g.data(), u.data(), 77, out.data());
  for (int i = 0; i < 77; ++i) {
    const double silu = g[i] / (1.0 + std::exp(-double(g[i])));
    EXPECT_NEAR(out[i], silu * u[i], 1e-5);
  }
}

TEST(OpsTest, SoftmaxSumsToOneAndMasksNegInf) {
  std::vector<float> x = {1.0f, 2.0f, -INFINITY, 3.0f};
  Softmax(x.data(), 4);
  EXPECT_EQ(x[2], 0.0f);
  EXPECT_NEAR(x[0] + x[1] + x[3], 1.0f, 1e-6);
  EXPECT_NEAR(x[3] / x[1], std::exp(1.0f), 1e-5);
}

TEST(OpsTest, DotAndAxpyMatchScalar) {
  for (int64_t n : {1, 7, 8, 31, 64, 100, 1000}) {
    auto a = RandomVector(n, 5), b = RandomVector(n, 6);
    double ref = 0;
    for (int64_t i = 0; i < n; ++i) ref += double(a[i]) * b[i];
    EXPECT_NEAR(DotF32(a.data(), b.data(), n), ref, 1e-4 * std::sqrt(double(n)));
    auto y = b;
    AxpyF32(0.5f, a.data(), y.data(), n);
    for (int64_t i = 0; i < n; ++i) EXPECT_FLOAT_EQ(y[i], b[i] + 0.5f * a[i]);
  }
}

__attribute__((target("avx,f16c"))) float HwHalfToFloat(uint16_t h) { return _cvtsh_ss(h); }
__attribute__((target("avx,f16c"))) uint16_t HwFloatToHalf(float f) {
  return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
}

TEST(OpsTest, Fp16ConversionsAreExactForEveryHalf) {
  if (!__builtin_cpu_supports("f16c")) GTEST_SKIP() << "CPU lacks F16C to compare against";
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = Fp16ToFp32(static_cast<uint16_t>(h));
    const float hw = HwHalfToFloat(static_cast<uint16_t>(h));
    if (std::isnan(hw)) {
      ASSERT_TRUE(std::isnan(f));
      continue;
    }
    ASSERT_EQ(f, hw) << h;
    ASSERT_EQ(Fp32ToFp16(f), static_cast<uint16_t>(h)) << h;
  }
  auto x = RandomVector(1000, 7, 100.0f);
  std::vector<uint16_t> row(1000);
  std::vector<float> back(1000);
  Fp32ToFp16Row(x.data(), row.data(), 1000);
  Fp16ToFp32Row(row.data(), back.data(), 1000);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(row[i], HwFloatToHalf(x[i]));
    ASSERT_EQ(Fp32ToFp16(x[i]), row[i]);
    ASSERT_EQ(back[i], Fp16ToFp32(row[i]));
  }
}

}  // namespace
}  // namespace dualblade::compute
