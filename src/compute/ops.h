// Element-wise and row kernels of the transformer forward pass, in F32, written to follow
// llama.cpp's CPU arithmetic (double accumulation where ggml uses ggml_float) so results track it
// to the last few bits. Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>

namespace dualblade::compute {

// out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i] (w may be null: no gain). out may alias x.
void RmsNorm(const float* x, const float* w, int64_t n, float eps, float* out);

// out[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + exp(-g)). out may alias gate or up.
void SwiGlu(const float* gate, const float* up, int64_t n, float* out);

// In-place softmax of x[0..n): max-subtracted, normalized; -inf entries become 0.
void Softmax(float* x, int64_t n);

// y[i] += x[i]
void AddInPlace(float* y, const float* x, int64_t n);

// Dot product of two F32 vectors (AVX2/FMA when the CPU has it, chosen at run time).
float DotF32(const float* a, const float* b, int64_t n);
// y[i] += a * x[i]
void AxpyF32(float a, const float* x, float* y, int64_t n);
// y[i] *= a
void ScaleF32(float a, float* y, int64_t n);

// IEEE half <-> single conversion (round to nearest even), exact for every value.
float Fp16ToFp32(uint16_t h);
uint16_t Fp32ToFp16(float f);
void Fp16ToFp32Row(const uint16_t* src, float* dst, int64_t n);
void Fp32ToFp16Row(const float* src, uint16_t* dst, int64_t n);

}  // namespace dualblade::compute
