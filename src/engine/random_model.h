// Random-weight models of real shapes, for tests and benchmarks (`dualblade mkmodel`): a complete
// `llama` GGUF that llama.cpp loads too, with a SentencePiece-style vocabulary that covers every
// byte (<0x00>..<0xFF> fallback tokens) plus short printable pieces, so any text tokenizes and
// generated ids print as text.
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"
#include "model/ggml_types.h"

namespace dualblade::engine {

struct RandomModelSpec {
  std::string name = "dualblade-random";
  int64_t n_layer = 2;
  int64_t n_embd = 64;
  int64_t n_head = 4;
  int64_t n_head_kv = 2;
  int64_t n_ff = 192;
  int64_t n_vocab = 512;
  int64_t n_ctx_train = 2048;
  float rope_freq_base = 10000.0f;
  // Llama-3 rope scaling (writes rope_freqs.weight) when factor > 0.
  float rope_llama3_factor = 0.0f;
  bool tied_output = false;
  GgmlType type = GgmlType::kF32;  // of the matrices; norms stay F32
  // llama.cpp's Q4_K_M mixture instead of one type: Q4_K matrices, Q6_K for the output matrix
  // (the token embeddings when tied) and for attn_v and ffn_down in the layers llama-quantize
  // gives more bits (the first and last eighth, every third in between). `type` is ignored.
  bool q4_k_m = false;
  uint64_t seed = 1;
};

// Presets: "tiny" (tests), "kv-heavy" (small weights, large KV per token: 24 layers, 4 KV heads
// of 128), "llama-3.2-1b" (that model's shapes, tied embeddings, Llama-3 RoPE scaling).
// NotFound for other names.
Result<RandomModelSpec> RandomModelPreset(std::string_view name);

// InvalidArgument naming the first dimension that does not fit (e.g. a row length that is not a
// multiple of the type's block, heads that do not divide the width).
Status ValidateRandomModelSpec(const RandomModelSpec& spec);

// Writes the model to `path` atomically (a failed write leaves nothing behind). Weights are
// generated tensor by tensor while writing, so large presets never sit in memory whole.
Status WriteRandomModel(const RandomModelSpec& spec, const std::string& path);

}  // namespace dualblade::engine
