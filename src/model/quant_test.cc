// Tensor-type tests: half/bfloat conversions against the compiler's IEEE types, quantization
// bit-exact with the files llama.cpp wrote, dequantization of every reference model type against
// the f32 model within the type's quantization error.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "model/dequantize.h"
#include "model/fp16.h"
#include "model/gguf.h"
#include "model/quant_blocks.h"
#include "model/quantize.h"
#include "model/test_models.h"
#include "model/vec_dot.h"

namespace dualblade {
namespace {

TEST(Fp16Test, EveryHalfConvertsLikeTheCompiler) {
  for (uint32_t h = 0; h < 65536; ++h) {
    _Float16 ref;
    const uint16_t bits = static_cast<uint16_t>(h);
    std::memcpy(&ref, &bits, 2);
    const float want = static_cast<float>(ref);
    const float got = Fp16ToFp32(bits);
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got)) << h;
    } else {
      ASSERT_EQ(F32Bits(got), F32Bits(want)) << h;
    }
  }
}

TEST(Fp16Test, FloatToHalfRoundsToNearestEven) {
  std::mt19937 rng(1);
  auto check = [](float f) {
    const _Float16 ref = static_cast<_Float16>(f);
    uint16_t want;
    std::memcpy(&want, &ref, 2);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(Fp16ToFp32(Fp32ToFp16(f))));
      return;
    }
    ASSERT_EQ(Fp32ToFp16(f), want) << f;
  };
  for (int i = 0; i < 2000000; ++i) check(F32FromBits(static_cast<uint32_t>(rng())));
  // Every exponent near the half range, with ties.
  for (uint32_t e = 100; e < 145; ++e) {
    for (uint32_t m = 0; m < 0x800000; m += 0x7FF) check(F32FromBits((e << 23) | m));
    check(F32FromBits((e << 23) | 0x1000));
    check(F32FromBits((e << 23) | 0x3000));
  }
  check(65504.0f);
  check(65519.99f);
  check(65520.0f);
}

TEST(Bf16Test, RoundsToNearestEvenAndKeepsNaN) {
  EXPECT_EQ(Fp32ToBf16(1.0f), 0x3F80);
  EXPECT_EQ(Fp32ToBf16(F32FromBits(0x3F808000)), 0x3F80);  // tie, even stays
  EXPECT_EQ(Fp32ToBf16(F32FromBits(0x3F818000)), 0x3F82);  // tie, odd rounds up
  EXPECT_EQ(Fp32ToBf16(F32FromBits(0x3F808001)), 0x3F81);
  EXPECT_TRUE(std::isnan(Bf16ToFp32(Fp32ToBf16(std::nanf("")))));
  EXPECT_EQ(Bf16ToFp32(0x4049), 3.140625f);
}

std::vector<float> RandomRow(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = nd(rng);
  return v;
}

TEST(QuantizeTest, Q8_0AndQ8_KRoundTripWithinHalfAStep) {
  const int64_t n = 1024;
  std::vector<float> x = RandomRow(n, 3);
  std::vector<BlockQ8_0> q8(n / 32);
  std::vector<float> back(n);
  QuantizeRowQ8_0(x.data(), q8.data(), n);
  DequantizeRowQ8_0(q8.data(), back.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    const float d = Fp16ToFp32(q8[i / 32].d);
    // fp16 rounding of d moves the largest q by up to 127 * 2^-11 steps.
    EXPECT_LE(std::fabs(back[i] - x[i]), 0.57f * d) << i;
  }
  std::vector<BlockQ8_K> qk(n / 256);
  QuantizeRowQ8_K(x.data(), qk.data(), n);
  DequantizeRowQ8_K(qk.data(), back.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_LE(std::fabs(back[i] - x[i]), 0.5f * std::fabs(qk[i / 256].d) * 1.01f) << i;
  }
  for (const BlockQ8_K& b : qk) {
    for (int g = 0; g < 16; ++g) {
      int s = 0;
      for (int l = 0; l < 16; ++l) s += b.qs[g * 16 + l];
      EXPECT_EQ(b.bsums[g], s);
    }
  }
}

TEST(QuantizeTest, ZeroBlocksQuantizeToZero) {
  std::vector<float> x(256, 0.0f);
  BlockQ8_K k;
  QuantizeRowQ8_K(x.data(), &k, 256);
  EXPECT_EQ(k.d, 0.0f);
  BlockQ8_0 q[8];
  QuantizeRowQ8_0(x.data(), q, 256);
  EXPECT_EQ(q[0].d, 0);
  EXPECT_EQ(q[0].qs[5], 0);
  BlockQ4_0 q4[8];
  QuantizeRowQ4_0Ref(x.data(), q4, 256);
  EXPECT_EQ(q4[0].qs[0], 0x88);
}

struct Model {
  std::unique_ptr<GgufFile> f;
};

// Quantizing the f32 reference weights reproduces llama.cpp's Q8_0, Q4_0 and K-quant files bit
// for bit (llama-quantize without an importance matrix runs ggml's reference quantizers).
TEST(QuantizeTest, WeightQuantizationMatchesLlamaCppFiles) {
  DB_REFERENCE_MODEL_OR_SKIP(f32_path, "rand-llama-f32.gguf");
  auto f32 = GgufFile::Open(f32_path);
  ASSERT_TRUE(f32.ok());
  struct Case { const char* file; GgmlType type; void (*quant)(const float*, void*, int64_t); };
  for (const Case& c : {Case{"rand-llama-q8_0.gguf", GgmlType::kQ8_0, QuantizeRowQ8_0Ref},
                        Case{"rand-llama-q4_0.gguf", GgmlType::kQ4_0, QuantizeRowQ4_0Ref},
                        Case{"rand-llama-q4_k_m.gguf", GgmlType::kQ4_K, QuantizeRowQ4_KRef},
                        Case{"rand-llama-q5_k_m.gguf", GgmlType::kQ5_K, QuantizeRowQ5_KRef},
                        Case{"rand-llama-q6_k.gguf", GgmlType::kQ6_K, QuantizeRowQ6_KRef},
                        Case{"rand-llama-q4_k_m.gguf", GgmlType::kQ6_K, QuantizeRowQ6_KRef}}) {
    auto q = GgufFile::Open(testing::ReferenceModelsDir() + "/" + c.file);
    ASSERT_TRUE(q.ok());
    int compared = 0;
    for (const GgufTensor& t : (*q)->tensors()) {
      if (t.type != c.type) continue;
      const GgufTensor* src = (*f32)->FindTensor(t.name);
      ASSERT_NE(src, nullptr);
      std::vector<uint8_t> mine(t.nbytes);
      const size_t rb = t.row_bytes();
      for (int64_t r = 0; r < t.n_rows(); ++r) {
        c.quant(reinterpret_cast<const float*>(src->data) + r * t.ne[0], mine.data() + r * rb,
                t.ne[0]);
      }
      ASSERT_EQ(std::memcmp(mine.data(), t.data, t.nbytes), 0) << c.file << " " << t.name;
      ++compared;
    }
    EXPECT_GE(compared, c.type == GgmlType::kQ6_K && std::string(c.file) != "rand-llama-q6_k.gguf"
                            ? 3
                            : 10)
        << c.file;
  }
}

// Maximum |dequantized - f32| relative to the tensor's max |f32|, per storage type: half a
// quantization step of the coarsest block scale.
double RelTolerance(GgmlType t) {
  switch (t) {
    case GgmlType::kF16: return 1e-3;
    case GgmlType::kBF16: return 8e-3;
    case GgmlType::kQ8_0: return 1.0 / 127;
    case GgmlType::kQ6_K: return 1.0 / 24;
    case GgmlType::kQ5_K: return 1.0 / 12;
    case GgmlType::kQ4_0: case GgmlType::kQ4_K: return 1.0 / 6;
    default: return 0;
  }
}

class DequantizeModelTest : public ::testing::TestWithParam<const char*> {};

TEST_P(DequantizeModelTest, MatchesF32ModelWithinQuantizationError) {
  DB_REFERENCE_MODEL_OR_SKIP(f32_path, "rand-llama-f32.gguf");
  auto f32 = GgufFile::Open(f32_path);
  auto q = GgufFile::Open(testing::ReferenceModelsDir() + "/" + GetParam());
  ASSERT_TRUE(f32.ok() && q.ok());
  for (const GgufTensor& t : (*q)->tensors()) {
    const GgufTensor* ref = (*f32)->FindTensor(t.name);
    ASSERT_NE(ref, nullptr);
    const float* want = reinterpret_cast<const float*>(ref->data);
    std::vector<float> got(t.ne[0]);
    double max_ref = 0, max_err = 0, sum_err2 = 0, sum_ref2 = 0;
    for (int64_t r = 0; r < t.n_rows(); ++r) {
      DequantizeRow(t.type, t.data + r * t.row_bytes(), got.data(), t.ne[0]);
      for (int64_t i = 0; i < t.ne[0]; ++i) {
        const double w = want[r * t.ne[0] + i], e = got[i] - w;
        max_ref = std::max(max_ref, std::fabs(w));
        max_err = std::max(max_err, std::fabs(e));
        sum_err2 += e * e;
        sum_ref2 += w * w;
      }
    }
    if (t.type == GgmlType::kF32) {
      EXPECT_EQ(max_err, 0.0) << t.name;
      continue;
    }
    EXPECT_LE(max_err, RelTolerance(t.type) * max_ref)
        << GetParam() << " " << t.name << " " << GgmlTypeName(t.type);
    // And the error is noise-sized, not a layout mix-up (which gives relative RMS ~1).
    EXPECT_LT(std::sqrt(sum_err2 / sum_ref2), 0.12) << GetParam() << " " << t.name;
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, DequantizeModelTest,
                         ::testing::Values("rand-llama-f16.gguf", "rand-llama-bf16.gguf",
                                           "rand-llama-q8_0.gguf", "rand-llama-q4_0.gguf",
                                           "rand-llama-q4_k_m.gguf", "rand-llama-q5_k_m.gguf",
                                           "rand-llama-q6_k.gguf"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& c : s) if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           return s;
                         });

}  // namespace
}  // namespace dualblade

namespace dualblade {
namespace {

// The AVX2 dequantizers return the very same floats as the scalar reference.
TEST(DequantizeTest, SimdIsBitIdenticalToScalar) {
  if (!CpuHasAvx2Fma()) GTEST_SKIP() << "this CPU lacks AVX2/FMA/F16C";
  struct Case { GgmlType type; void (*simd)(const void*, float*, int64_t); };
  const Case cases[] = {{GgmlType::kF16, DequantizeRowF16Avx2},
                        {GgmlType::kQ8_0, DequantizeRowQ8_0Avx2},
                        {GgmlType::kQ4_0, DequantizeRowQ4_0Avx2},
                        {GgmlType::kQ4_K, DequantizeRowQ4_KAvx2},
                        {GgmlType::kQ5_K, DequantizeRowQ5_KAvx2},
                        {GgmlType::kQ6_K, DequantizeRowQ6_KAvx2}};
  std::mt19937 rng(5);
  for (const Case& c : cases) {
    const GgmlTypeTraits* tr = GgmlTypeInfo(c.type);
    for (int64_t n : {tr->block_size * 1, tr->block_size * 8, tr->block_size == 1 ? int64_t{13} : int64_t{256}}) {
      if (n % tr->block_size != 0) continue;
      std::vector<uint8_t> w(RowSizeBytes(c.type, n));
      for (uint8_t& b : w) b = static_cast<uint8_t>(rng());
      // Keep every fp16 finite: clear the top exponent bit of each 16-bit word of F16 rows and
      // of each block's d/dmin.
      if (c.type == GgmlType::kF16) {
        for (size_t i = 1; i < w.size(); i += 2) w[i] &= 0xBF;
      } else {
        for (size_t off = 0; off < w.size(); off += tr->type_size) {
          if (c.type == GgmlType::kQ6_K) {
            w[off + tr->type_size - 1] &= 0xBF;
          } else {
            w[off + 1] &= 0xBF;
            if (c.type == GgmlType::kQ4_K || c.type == GgmlType::kQ5_K) w[off + 3] &= 0xBF;
          }
        }
      }
      std::vector<float> want(n), got(n);
      DequantizeRow(c.type, w.data(), want.data(), n);
      c.simd(w.data(), got.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_EQ(F32Bits(got[i]), F32Bits(want[i]))
            << GgmlTypeName(c.type) << " n=" << n << " i=" << i << " " << got[i] << " vs "
            << want[i];
      }
    }
  }
}

}  // namespace
}  // namespace dualblade
