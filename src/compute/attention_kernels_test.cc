#include "compute/attention_kernels.h"

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "compute/ops.h"
#include "model/vec_dot.h"

namespace dualblade::compute {
namespace {

#define SKIP_WITHOUT_AVX2() \
  if (!CpuHasAvx2Fma()) GTEST_SKIP() << "the CPU lacks AVX2/FMA/F16C"

TEST(ExpF32Avx2Test, WithinTwoUlpOfStdExp) {
  SKIP_WITHOUT_AVX2();
  std::vector<float> x;
  for (float v = -87.0f; v <= 88.0f; v += 0.0137f) x.push_back(v);
  for (float v : {0.0f, -0.0f, 1e-8f, -1e-8f, 0.5f, -0.5f, 0.34657359f, -0.34657359f}) x.push_back(v);
  std::vector<float> got(x.size());
  ExpF32Avx2(x.data(), got.data(), static_cast<int64_t>(x.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    const double want = std::exp(static_cast<double>(x[i]));
    const double ulp = std::nextafter(static_cast<float>(want), INFINITY) - static_cast<float>(want);
    ASSERT_LE(std::fabs(got[i] - want), 2 * ulp) << "exp(" << x[i] << ")";
  }
}

TEST(ExpF32Avx2Test, UnderflowsToZeroAndOverflowsToInfinity) {
  SKIP_WITHOUT_AVX2();
  const float inf = std::numeric_limits<float>::infinity();
  const float x[] = {-inf, -1000.0f, -88.0f, -87.5f, 89.0f, 1000.0f, inf};
  float got[7];
  ExpF32Avx2(x, got, 7);  // also covers the tail path (7 < 8 lanes)
  for (int i = 0; i < 4; ++i) EXPECT_EQ(got[i], 0.0f) << x[i];
  for (int i = 4; i < 7; ++i) EXPECT_EQ(got[i], inf) << x[i];
}

struct KernelCase {
  int head_dim;
  int n_keys;
  int64_t row_stride;  // elements
};

// Runs a kernel on one head taken at `offset` inside rows of row_stride elements.
std::vector<float> RunKernel(HeadPartialFn fn, const KernelCase& c, KvElemType type,
                             const std::vector<float>& q, const void* k, const void* v) {
  std::vector<float> scores(c.n_keys), st(2 + c.head_dim, -1.0f);
  HeadPartialArgs a;
  a.q = q.data();
  a.k = k;
  a.v = v;
  a.row_stride = c.row_stride;
  a.n_keys = c.n_keys;
  a.head_dim = c.head_dim;
  a.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  a.type = type;
  a.scores = scores.data();
  fn(a, st.data());
  return st;
}

TEST(HeadPartialTest, Avx2MatchesScalarReference) {
  SKIP_WITHOUT_AVX2();
  std::mt19937 rng(11);
  std::normal_distribution<float> dist(0.0f, 1.5f);
  const KernelCase cases[] = {
      {8, 1, 32},   {8, 7, 32},    {8, 8, 8},      {8, 100, 32}, {8, 256, 32},
      {16, 5, 32},  {16, 64, 16},  {24, 13, 48},   {64, 300, 64}, {128, 256, 512},
      {128, 9, 128}, {6, 20, 12},
  };
  for (const KernelCase& c : cases) {
    for (KvElemType type : {KvElemType::kF32, KvElemType::kF16}) {
      const size_t elems = static_cast<size_t>(c.n_keys) * c.row_stride;
      std::vector<float> q(c.head_dim), k(elems), v(elems);
      for (auto& x : q) x = dist(rng);
      for (auto& x : k) x = dist(rng);
      for (auto& x : v) x = dist(rng);
      std::vector<uint16_t> k16(elems), v16(elems);
      Fp32ToFp16Row(k.data(), k16.data(), static_cast<int64_t>(elems));
      Fp32ToFp16Row(v.data(), v16.data(), static_cast<int64_t>(elems));
      const void* kp = type == KvElemType::kF32 ? static_cast<const void*>(k.data()) : k16.data();
      const void* vp = type == KvElemType::kF32 ? static_cast<const void*>(v.data()) : v16.data();
      const auto want = RunKernel(HeadPartialScalar, c, type, q, kp, vp);
      const auto got = RunKernel(HeadPartialAvx2, c, type, q, kp, vp);
      const std::string what = "head_dim " + std::to_string(c.head_dim) + ", " +
                               std::to_string(c.n_keys) + " keys, " +
                               (type == KvElemType::kF32 ? "f32" : "f16");
      // Scores differ only in summation order; exp by at most 2 ulp.
      EXPECT_NEAR(got[0], want[0], 1e-5f * std::max(1.0f, std::fabs(want[0]))) << what;
      EXPECT_NEAR(got[1], want[1], 1e-5f * want[1]) << what;
      for (int d = 0; d < c.head_dim; ++d) {
        EXPECT_NEAR(got[2 + d], want[2 + d], 1e-5f * want[1]) << what << ", dim " << d;
      }
      // Deterministic: the same inputs give the same bits.
      EXPECT_EQ(got, RunKernel(HeadPartialAvx2, c, type, q, kp, vp)) << what;
    }
  }
}

TEST(HeadPartialTest, ScalarMatchesDefinition) {
  // Two keys, head_dim 2, by hand: scores q.k * scale.
  const float q[2] = {1.0f, 2.0f};
  const float k[4] = {1.0f, 0.0f, 0.5f, 0.5f};  // scores 1.0, 1.5 (scale 1)
  const float v[4] = {1.0f, 2.0f, 3.0f, 4.0f};
  float scores[2], st[4];
  HeadPartialArgs a;
  a.q = q;
  a.k = k;
  a.v = v;
  a.row_stride = 2;
  a.n_keys = 2;
  a.head_dim = 2;
  a.scale = 1.0f;
  a.scores = scores;
  HeadPartialScalar(a, st);
  const float e0 = std::exp(-0.5f);
  EXPECT_FLOAT_EQ(st[0], 1.5f);
  EXPECT_FLOAT_EQ(st[1], e0 + 1.0f);
  EXPECT_FLOAT_EQ(st[2], e0 * 1.0f + 3.0f);
  EXPECT_FLOAT_EQ(st[3], e0 * 2.0f + 4.0f);
}

}  // namespace
}  // namespace dualblade::compute
