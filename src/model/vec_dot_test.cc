// Dot kernels: SIMD against the scalar reference on random rows of every type (integer parts are
// exact, so the only difference is float summation order: relative error below 1e-5 of the sum
// of |terms|), the scalar reference against a double-precision dot of the dequantized rows, and
// the quantized dot of real model rows against the f32 model's.
#include "model/vec_dot.h"

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "model/dequantize.h"
#include "model/gguf.h"
#include "model/quantize.h"
#include "model/test_models.h"

namespace dualblade {
namespace {

const GgmlType kTypes[] = {GgmlType::kF32,  GgmlType::kF16,  GgmlType::kBF16,
                           GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ4_K,
                           GgmlType::kQ5_K, GgmlType::kQ6_K};

// Random weight bytes of `type`: f32 rows quantized for float types and Q8_0/Q4_0; random bytes
// with sane scales for the K-quants (every bit pattern of their packed fields is valid).
std::vector<uint8_t> RandomWeights(GgmlType type, int64_t n, std::mt19937* rng) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> f(n);
  for (float& v : f) v = nd(*rng);
  std::vector<uint8_t> out(RowSizeBytes(type, n));
  switch (type) {
    case GgmlType::kQ8_0: QuantizeRowQ8_0Ref(f.data(), out.data(), n); break;
    case GgmlType::kQ4_0: QuantizeRowQ4_0Ref(f.data(), out.data(), n); break;
    case GgmlType::kQ4_K: case GgmlType::kQ5_K: case GgmlType::kQ6_K: {
      for (uint8_t& b : out) b = static_cast<uint8_t>((*rng)());
      const size_t bs = GgmlTypeInfo(type)->type_size;
      for (size_t off = 0; off < out.size(); off += bs) {
        // d (and dmin) sit at the start of Q4_K/Q5_K blocks and at the end of Q6_K blocks.
        const uint16_t d = 0x2000 | static_cast<uint16_t>((*rng)() & 0x3FF);  // ~0.008..0.016
        if (type == GgmlType::kQ6_K) {
          std::memcpy(&out[off + bs - 2], &d, 2);
        } else {
          std::memcpy(&out[off], &d, 2);
          std::memcpy(&out[off + 2], &d, 2);
        }
      }
      break;
    }
    default: QuantizeActivationRow(type, f.data(), out.data(), n);
  }
  return out;
}

TEST(VecDotTest, SimdMatchesScalarOnRandomRows) {
  std::printf("dispatch: %s\n", VecDotIsa());
  if (!CpuHasAvx2Fma()) GTEST_SKIP() << "this CPU lacks AVX2/FMA/F16C";
  std::mt19937 rng(42);
  const VecDotFn simd[] = {VecDotF32Avx2,  VecDotF16Avx2,  VecDotBF16Avx2, VecDotQ8_0Avx2,
                           VecDotQ4_0Avx2, VecDotQ4_KAvx2, VecDotQ5_KAvx2, VecDotQ6_KAvx2};
  for (size_t ti = 0; ti < std::size(kTypes); ++ti) {
    const GgmlType t = kTypes[ti];
    const RowKernels* k = GetRowKernels(t);
    ASSERT_NE(k, nullptr);
    const VecDotFn avx2 = simd[ti];
    for (int64_t n : {256, 512, 4096, 256 * 11}) {
      for (int rep = 0; rep < 20; ++rep) {
        std::vector<uint8_t> w = RandomWeights(t, n, &rng);
        std::vector<float> xf(n);
        std::normal_distribution<float> nd(0.0f, 2.0f);
        for (float& v : xf) v = nd(rng);
        std::vector<uint8_t> x(RowSizeBytes(k->vec_dot_type, n));
        k->from_float(xf.data(), x.data(), n);
        // Scale of the terms, for a relative tolerance.
        std::vector<float> wd(n), xd(n);
        k->to_float(w.data(), wd.data(), n);
        DequantizeRow(k->vec_dot_type, x.data(), xd.data(), n);
        double abs_sum = 0, exact = 0;
        for (int64_t i = 0; i < n; ++i) {
          abs_sum += std::fabs(static_cast<double>(wd[i]) * xd[i]);
          exact += static_cast<double>(wd[i]) * xd[i];
        }
        const float s = k->vec_dot_scalar(n, w.data(), x.data());
        const float v = avx2(n, w.data(), x.data());
        EXPECT_NEAR(v, s, 1e-5 * abs_sum) << GgmlTypeName(t) << " n=" << n;
        // And the reference is the dot of the dequantized rows.
        EXPECT_NEAR(s, exact, 1e-5 * abs_sum) << GgmlTypeName(t) << " n=" << n;
      }
    }
  }
}

TEST(VecDotTest, ShortAndOddLengthsOfFloatTypes) {
  if (!CpuHasAvx2Fma()) GTEST_SKIP() << "this CPU lacks AVX2/FMA/F16C";
  std::mt19937 rng(7);
  for (int64_t n : {1, 7, 9, 33, 100}) {
    for (GgmlType t : {GgmlType::kF32, GgmlType::kF16, GgmlType::kBF16}) {
      std::vector<uint8_t> w = RandomWeights(t, n, &rng), x = RandomWeights(t, n, &rng);
      const RowKernels* k = GetRowKernels(t);
      VecDotFn avx2 = t == GgmlType::kF32   ? VecDotF32Avx2
                      : t == GgmlType::kF16 ? VecDotF16Avx2
                                            : VecDotBF16Avx2;
      EXPECT_NEAR(avx2(n, w.data(), x.data()), k->vec_dot_scalar(n, w.data(), x.data()),
                  1e-4 * n);
    }
  }
}

// Real weights: each quantized model's rows, dotted with a quantized activation, stay within
// quantization error of the f32 model's rows dotted with the f32 activation.
TEST(VecDotTest, ModelRowsMatchF32Model) {
  DB_REFERENCE_MODEL_OR_SKIP(f32_path, "rand-llama-f32.gguf");
  auto f32 = GgufFile::Open(f32_path);
  ASSERT_TRUE(f32.ok());
  for (const char* file : {"rand-llama-f16.gguf", "rand-llama-bf16.gguf", "rand-llama-q8_0.gguf",
                           "rand-llama-q4_0.gguf", "rand-llama-q4_k_m.gguf",
                           "rand-llama-q5_k_m.gguf", "rand-llama-q6_k.gguf"}) {
    auto q = GgufFile::Open(testing::ReferenceModelsDir() + "/" + file);
    ASSERT_TRUE(q.ok());
    const GgufTensor* t = (*q)->FindTensor("blk.0.ffn_gate.weight");
    const GgufTensor* r = (*f32)->FindTensor("blk.0.ffn_gate.weight");
    ASSERT_TRUE(t && r);
    const int64_t n = t->ne[0];
    std::mt19937 rng(9);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> xf(n);
    for (float& v : xf) v = nd(rng);
    const RowKernels* k = GetRowKernels(t->type);
    std::vector<uint8_t> x(RowSizeBytes(k->vec_dot_type, n));
    k->from_float(xf.data(), x.data(), n);
    double err2 = 0, ref2 = 0;
    for (int64_t row = 0; row < t->n_rows(); ++row) {
      const float got = k->vec_dot(n, t->data + row * t->row_bytes(), x.data());
      const float want = VecDotF32Scalar(n, r->data + row * r->row_bytes(), xf.data());
      err2 += (got - want) * (got - want);
      ref2 += want * want;
    }
    // Relative RMS error: about 1/(2^bits) of the weights plus the activation rounding.
    const double tol = t->type == GgmlType::kQ4_0 || t->type == GgmlType::kQ4_K ? 0.12
                       : t->type == GgmlType::kQ5_K                             ? 0.06
                       : t->type == GgmlType::kQ6_K                             ? 0.03
                       : t->type == GgmlType::kQ8_0                             ? 0.015
                                                                                : 0.005;
    std::printf("%-24s %-5s relative rms error %.4f (tolerance %.2f)\n", file,
                GgmlTypeName(t->type).c_str(), std::sqrt(err2 / ref2), tol);
    EXPECT_LT(std::sqrt(err2 / ref2), tol) << file;
  }
}

}  // namespace
}  // namespace dualblade
