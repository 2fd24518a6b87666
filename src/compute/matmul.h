// Matrix multiplication of activations by a weight matrix stored in any supported GGUF type:
// y[t][j] = sum_i W[j][i] * x[t][i] for t < n_tokens, j < n_out. Weights stay in their mapped,
// quantized form; three strategies:
//   - GEMM: tiles of weight rows dequantized to F32 and multiplied with OpenBLAS sgemm (prefill);
//   - quantized GEMV: the activations are rounded to the weight type's partner type (Q8_0 for
//     Q4_0/Q8_0, Q8_K for the K-quants, F16 for F16, BF16 for BF16) and multiplied with the
//     type's dot kernel, exactly as llama.cpp's CPU backend does, so decode tracks llama.cpp;
//   - F32 GEMV: each weight row dequantized and dotted in F32 (the f32_compute reference).
// Thread-safety: a Matmul holds scratch buffers; one per engine thread. Run parallelizes over
// weight rows on the given pool.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "compute/thread_pool.h"
#include "model/ggml_types.h"

namespace dualblade::compute {

// A weight matrix: n_out rows of n_in elements (ne[0] = n_in), row_bytes apart.
struct WeightMatrix {
  GgmlType type = GgmlType::kF32;
  const uint8_t* data = nullptr;
  int64_t n_in = 0;
  int64_t n_out = 0;
  size_t row_bytes = 0;
};

enum class MatmulMode : uint8_t {
  kAuto,                  // GEMM from kGemmMinTokens tokens up, quantized GEMV below
  kQuantizedActivations,  // always llama.cpp's CPU arithmetic (partner-type activations)
  kF32,                   // always F32 arithmetic on dequantized weights
};

// Batches of at least this many tokens go through BLAS in kAuto (ggml-blas uses 32 too).
inline constexpr int64_t kGemmMinTokens = 32;

// True when Matmul can multiply weights of this type.
bool MatmulSupportsType(GgmlType type);

// Dequantizes one row of n elements of `type` to F32. REQUIRES: MatmulSupportsType(type).
void DequantizeRow(GgmlType type, const void* row, float* out, int64_t n);

class Matmul {
 public:
  explicit Matmul(MatmulMode mode = MatmulMode::kAuto) : mode_(mode) {}
  Matmul(const Matmul&) = delete;
  Matmul& operator=(const Matmul&) = delete;

  MatmulMode mode() const { return mode_; }

  // x: [n_tokens, w.n_in]; y: [n_tokens, w.n_out] (overwritten). pool may be null.
  void Run(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y, ThreadPool* pool);

 private:
  void RunGemm(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y,
               ThreadPool* pool);
  void RunQuantized(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y,
                    ThreadPool* pool);
  void RunF32Rows(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y,
                  ThreadPool* pool);

  MatmulMode mode_;
  std::vector<uint8_t> xq_;                    // activations in the partner type
  std::vector<std::vector<float>> tiles_;      // per-thread dequantized weight tiles
};

}  // namespace dualblade::compute
