#include "compute/matmul.h"

#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "model/quantize.h"
#include "model/vec_dot.h"

namespace dualblade::compute {
namespace {

struct Quantized {
  std::vector<uint8_t> bytes;
  std::vector<float> dequantized;  // what the weights really are after rounding
  WeightMatrix w;
};

Quantized MakeWeights(GgmlType type, int64_t n_out, int64_t n_in, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 0.1f);
  std::vector<float> f(static_cast<size_t>(n_out * n_in));
  for (auto& v : f) v = d(rng);
  const RowKernels* ops = GetRowKernels(type);
  Quantized q;
  const size_t row = RowSizeBytes(type, n_in);
  q.bytes.resize(row * n_out);
  q.dequantized.resize(f.size());
  for (int64_t r = 0; r < n_out; ++r) {
    uint8_t* dst = q.bytes.data() + r * row;
    const float* src = f.data() + r * n_in;
    switch (type) {
      case GgmlType::kQ8_0: QuantizeRowQ8_0Ref(src, dst, n_in); break;
      case GgmlType::kQ4_0: QuantizeRowQ4_0Ref(src, dst, n_in); break;
      default: ops->from_float(src, dst, n_in); break;  // F32/F16/BF16 are their own partners
    }
    ops->to_float(q.bytes.data() + r * row, q.dequantized.data() + r * n_in, n_in);
  }
  q.w = {type, q.bytes.data(), n_in, n_out, row};
  return q;
}

TEST(MatmulTest, EveryModeMatchesDoubleReference) {
  ThreadPool pool(2);
  for (GgmlType type : {GgmlType::kF32, GgmlType::kF16, GgmlType::kBF16, GgmlType::kQ8_0,
                        GgmlType::kQ4_0}) {
    if (!MatmulSupportsType(type)) continue;
    for (int64_t n_tokens : {1, 3, 40}) {
      const int64_t n_in = 256, n_out = 150;
      Quantized q = MakeWeights(type, n_out, n_in, 11);
      std::mt19937 rng(12);
      std::normal_distribution<float> d;
      std::vector<float> x(n_tokens * n_in);
      for (auto& v : x) v = d(rng);
      for (MatmulMode mode :
           {MatmulMode::kAuto, MatmulMode::kQuantizedActivations, MatmulMode::kF32}) {
        Matmul mm(mode);
        std::vector<float> y(n_tokens * n_out);
        mm.Run(q.w, x.data(), n_tokens, y.data(), (n_tokens % 2) ? &pool : nullptr);
        // Activation rounding to a 16-bit partner type costs up to 2^-8 relative (bf16).
        const bool rounds_x = mode == MatmulMode::kQuantizedActivations ||
                              (mode == MatmulMode::kAuto && n_tokens < kGemmMinTokens);
        // Q8_0 activations: up to amax/254 per element, ~0.01 per element here, so ~0.02 over
        // 256 random-sign products of weights ~0.1.
        const bool q8_x = type == GgmlType::kQ8_0 || type == GgmlType::kQ4_0;
        const double tol = !rounds_x ? 1e-4
                           : q8_x ? 0.05
                           : type == GgmlType::kBF16 ? 0.03
                           : type == GgmlType::kF16 ? 3e-3 : 1e-4;
        for (int64_t t = 0; t < n_tokens; ++t) {
          for (int64_t j = 0; j < n_out; ++j) {
            double ref = 0;
            for (int64_t i = 0; i < n_in; ++i)
              ref += double(q.dequantized[j * n_in + i]) * x[t * n_in + i];
            ASSERT_NEAR(y[t * n_out + j], ref, tol)
                << GgmlTypeName(type) << " mode " << int(mode) << " t " << t << " j " << j;
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace dualblade::compute
