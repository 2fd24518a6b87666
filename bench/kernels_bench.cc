// Micro-benchmarks of the quantized dot kernels: one GEMV (a weight matrix of 1024 rows of 4096
// elements, about the shape of a small model's projection, times one activation row) per
// iteration, scalar reference against AVX2, for every supported weight type; plus activation
// quantization and row dequantization. Reported: weight bytes/s and elements/s.
//   build-*/src/model/kernels_bench --benchmark_min_time=0.2
#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <vector>

#include "model/dequantize.h"
#include "model/ggml_types.h"
#include "model/quantize.h"
#include "model/vec_dot.h"

namespace dualblade {
namespace {

constexpr int64_t kCols = 4096;
constexpr int64_t kRows = 1024;

const GgmlType kTypes[] = {GgmlType::kF32,  GgmlType::kF16,  GgmlType::kBF16,
                           GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kQ4_K,
                           GgmlType::kQ5_K, GgmlType::kQ6_K};

std::vector<float> Random(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = nd(rng);
  return v;
}

// Weights of `type`: K-quants from random bytes with small scales (any bit pattern is a valid
// block), the others quantized from random floats.
std::vector<uint8_t> Weights(GgmlType type) {
  const size_t row = RowSizeBytes(type, kCols);
  std::vector<uint8_t> w(row * kRows);
  std::mt19937 rng(1);
  if (type == GgmlType::kQ4_K || type == GgmlType::kQ5_K || type == GgmlType::kQ6_K) {
    for (uint8_t& b : w) b = static_cast<uint8_t>(rng());
    const size_t bs = GgmlTypeInfo(type)->type_size;
    const uint16_t d = 0x2000;
    for (size_t off = 0; off < w.size(); off += bs) {
      std::memcpy(&w[off + (type == GgmlType::kQ6_K ? bs - 2 : 0)], &d, 2);
      if (type != GgmlType::kQ6_K) std::memcpy(&w[off + 2], &d, 2);
    }
    return w;
  }
  std::vector<float> f = Random(kCols * kRows, 2);
  for (int64_t r = 0; r < kRows; ++r) {
    void* dst = w.data() + r * row;
    const float* src = f.data() + r * kCols;
    if (type == GgmlType::kQ8_0) QuantizeRowQ8_0Ref(src, dst, kCols);
    else if (type == GgmlType::kQ4_0) QuantizeRowQ4_0Ref(src, dst, kCols);
    else QuantizeActivationRow(type, src, dst, kCols);
  }
  return w;
}

void BM_Gemv(benchmark::State& state, GgmlType type, bool simd) {
  const RowKernels* k = GetRowKernels(type);
  if (simd && !CpuHasAvx2Fma()) {
    state.SkipWithError("no AVX2/FMA/F16C on this CPU");
    return;
  }
  const VecDotFn dot = simd ? k->vec_dot : k->vec_dot_scalar;
  const std::vector<uint8_t> w = Weights(type);
  const std::vector<float> xf = Random(kCols, 3);
  std::vector<uint8_t> x(RowSizeBytes(k->vec_dot_type, kCols));
  k->from_float(xf.data(), x.data(), kCols);
  const size_t row = RowSizeBytes(type, kCols);
  std::vector<float> y(kRows);
  for (auto _ : state) {
    for (int64_t r = 0; r < kRows; ++r) y[r] = dot(kCols, w.data() + r * row, x.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(w.size()));
  state.SetItemsProcessed(state.iterations() * kRows * kCols);
}

void BM_QuantizeActivation(benchmark::State& state, GgmlType act) {
  const std::vector<float> xf = Random(kCols, 4);
  std::vector<uint8_t> x(RowSizeBytes(act, kCols));
  for (auto _ : state) {
    QuantizeActivationRow(act, xf.data(), x.data(), kCols);
    benchmark::DoNotOptimize(x.data());
  }
  state.SetItemsProcessed(state.iterations() * kCols);
}

void BM_Dequantize(benchmark::State& state, GgmlType type, bool simd) {
  // The SIMD path is what GetRowKernels hands out on an AVX2 machine; the scalar one is the
  // reference DequantizeRow.
  const ToFloatFn deq = simd ? GetRowKernels(type)->to_float : nullptr;
  const std::vector<uint8_t> w = Weights(type);
  std::vector<float> out(kCols);
  const size_t row = RowSizeBytes(type, kCols);
  for (auto _ : state) {
    for (int64_t r = 0; r < kRows; ++r) {
      if (deq != nullptr) {
        deq(w.data() + r * row, out.data(), kCols);
      } else {
        DequantizeRow(type, w.data() + r * row, out.data(), kCols);
      }
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * kRows * kCols);
}

int Register() {
  for (GgmlType t : kTypes) {
    const std::string name = GgmlTypeName(t);
    benchmark::RegisterBenchmark(("gemv/" + name + "/scalar").c_str(), BM_Gemv, t, false);
    benchmark::RegisterBenchmark(("gemv/" + name + "/avx2").c_str(), BM_Gemv, t, true);
    benchmark::RegisterBenchmark(("dequantize/" + name + "/scalar").c_str(), BM_Dequantize, t,
                                 false);
    benchmark::RegisterBenchmark(("dequantize/" + name + "/dispatch").c_str(), BM_Dequantize, t,
                                 true);
  }
  for (GgmlType a : {GgmlType::kQ8_0, GgmlType::kQ8_K, GgmlType::kF16, GgmlType::kBF16}) {
    benchmark::RegisterBenchmark(("quantize_activation/" + GgmlTypeName(a)).c_str(),
                                 BM_QuantizeActivation, a);
  }
  return 0;
}
const int kRegistered = Register();

}  // namespace
}  // namespace dualblade

BENCHMARK_MAIN();
