#include "engine/random_model.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "compute/rope.h"
#include "model/gguf_writer.h"
#include "model/quantize.h"

namespace dualblade::engine {
namespace {

// splitmix64: fast, and each tensor's stream depends only on (seed, tensor name).
struct Rng {
  uint64_t state;
  uint64_t Next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double Uniform() { return (static_cast<double>(Next() >> 11) + 0.5) * 0x1.0p-53; }
  // Box-Muller; one normal per call keeps the stream simple.
  float Normal(float mean, float stddev) {
    const double u1 = Uniform(), u2 = Uniform();
    return mean + stddev * static_cast<float>(std::sqrt(-2.0 * std::log(u1)) *
                                              std::cos(2.0 * M_PI * u2));
  }
};

uint64_t NameHash(std::string_view s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (char c : s) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ull;
  return h;
}

// llama.cpp's llama_ftype numbers for general.file_type.
uint32_t FileType(GgmlType t) {
  switch (t) {
    case GgmlType::kF16: return 1;
    case GgmlType::kQ4_0: return 2;
    case GgmlType::kQ8_0: return 7;
    case GgmlType::kBF16: return 32;
    case GgmlType::kQ4_K: return 15;  // only written as the Q4_K_M mixture
    default: return 0;
  }
}

// llama.cpp's use_more_bits(): which layers Q4_K_M gives Q6_K attn_v and ffn_down.
bool UseMoreBits(int64_t layer, int64_t n_layer) {
  return layer < n_layer / 8 || layer >= 7 * n_layer / 8 || (layer - n_layer / 8) % 3 == 2;
}

// Vocabulary: <unk> <s> </s>, the 256 byte tokens, then printable pieces of growing length
// ("a", "▁a", "ab", "▁ab", ...) with decreasing scores until n_vocab tokens exist.
void BuildVocab(int64_t n_vocab, std::vector<std::string>* tokens, std::vector<float>* scores,
                std::vector<int32_t>* types) {
  auto add = [&](std::string text, float score, int32_t type) {
    tokens->push_back(std::move(text));
    scores->push_back(score);
    types->push_back(type);
  };
  add("<unk>", 0.0f, 2);  // llama_token_type: 2 unknown, 3 control, 6 byte, 1 normal
  add("<s>", 0.0f, 3);
  add("</s>", 0.0f, 3);
  for (int b = 0; b < 256 && static_cast<int64_t>(tokens->size()) < n_vocab; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
    add(buf, 0.0f, 6);
  }
  const std::string kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's escaped space
  std::vector<std::string> frontier;
  for (char ch = '!'; ch <= '~'; ++ch) frontier.emplace_back(1, ch);
  float score = -1.0f;
  while (static_cast<int64_t>(tokens->size()) < n_vocab) {
    for (const std::string& s : frontier) {
      if (static_cast<int64_t>(tokens->size()) >= n_vocab) break;
      add(s, score, 1);
      score -= 1.0f;
      if (static_cast<int64_t>(tokens->size()) >= n_vocab) break;
      std::string spaced = kSpace;  // not kSpace + s: GCC 12 warns falsely (-Wrestrict) on it
      spaced.append(s);
      add(std::move(spaced), score, 1);
      score -= 1.0f;
    }
    if (frontier.size() == 94 && frontier[0].size() == 1 &&
        static_cast<int64_t>(tokens->size()) < n_vocab) {
      add(kSpace, score, 1);  // a lone space piece, once
      score -= 1.0f;
    }
    std::vector<std::string> next;  // longer pieces over lowercase letters
    for (const std::string& s : frontier) {
      if (s.find_first_not_of("abcdefghijklmnopqrstuvwxyz") != std::string::npos) continue;
      for (char ch = 'a'; ch <= 'z'; ++ch) {
        next.push_back(s);
        next.back().push_back(ch);
      }
      if (next.size() > static_cast<size_t>(n_vocab)) break;
    }
    frontier = std::move(next);
  }
}

}  // namespace

Result<RandomModelSpec> RandomModelPreset(std::string_view name) {
  RandomModelSpec s;
  s.name = "dualblade-" + std::string(name);
  if (name == "tiny") return s;
  if (name == "kv-heavy") {
    s.n_layer = 24;
    s.n_embd = 512;
    s.n_head = 4;
    s.n_head_kv = 4;
    s.n_ff = 1024;
    s.n_vocab = 4096;
    s.n_ctx_train = 32768;
    return s;
  }
  if (name == "llama-3.2-1b") {
    s.n_layer = 16;
    s.n_embd = 2048;
    s.n_head = 32;
    s.n_head_kv = 8;
    s.n_ff = 8192;
    s.n_vocab = 128256;
    s.n_ctx_train = 131072;
    s.rope_freq_base = 500000.0f;
    s.rope_llama3_factor = 32.0f;
    s.tied_output = true;
    return s;
  }
  return Status::NotFound("unknown preset '" + std::string(name) +
                          "' (presets: tiny, kv-heavy, llama-3.2-1b)");
}

Status ValidateRandomModelSpec(const RandomModelSpec& s) {
  auto bad = [](const std::string& what) { return Status::InvalidArgument(what); };
  if (s.n_layer <= 0 || s.n_embd <= 0 || s.n_head <= 0 || s.n_head_kv <= 0 || s.n_ff <= 0) {
    return bad("layers, dim, heads, kv-heads and ff must all be positive");
  }
  if (s.n_vocab < 259) return bad("the vocabulary needs at least 259 tokens (3 special + 256 bytes)");
  if (s.n_embd % s.n_head != 0) return bad("dim must be a multiple of heads");
  if (s.n_head % s.n_head_kv != 0) return bad("heads must be a multiple of kv-heads");
  if ((s.n_embd / s.n_head) % 2 != 0) return bad("the head size (dim / heads) must be even");
  if (s.q4_k_m) {
    // The K-quant super-block is 256 wide; llama-quantize would fall back to other types for
    // narrower rows, which would no longer be the mixture asked for.
    if (s.n_embd % 256 != 0 || s.n_ff % 256 != 0) {
      return bad("dim and ff must be multiples of 256 for type q4_k_m");
    }
    return Status::OK();
  }
  switch (s.type) {
    case GgmlType::kF32: case GgmlType::kF16: case GgmlType::kBF16:
    case GgmlType::kQ8_0: case GgmlType::kQ4_0: break;
    default:
      return Status::NotSupported("mkmodel writes f32, f16, bf16, q8_0 or q4_0, not " +
                                  GgmlTypeName(s.type));
  }
  const int64_t block = GgmlTypeInfo(s.type)->block_size;
  if (s.n_embd % block != 0 || s.n_ff % block != 0) {
    return bad("dim and ff must be multiples of " + std::to_string(block) + " for type " +
               GgmlTypeName(s.type));
  }
  return Status::OK();
}

Status WriteRandomModel(const RandomModelSpec& s, const std::string& path) {
  DB_RETURN_IF_ERROR(ValidateRandomModelSpec(s));
  const int64_t head_dim = s.n_embd / s.n_head;
  GgufWriter w;
  w.SetString("general.architecture", "llama");
  w.SetString("general.name", s.name);
  w.SetU32("general.file_type", FileType(s.q4_k_m ? GgmlType::kQ4_K : s.type));
  w.SetU32("general.quantization_version", 2);
  w.SetU32("llama.context_length", static_cast<uint32_t>(s.n_ctx_train));
  w.SetU32("llama.embedding_length", static_cast<uint32_t>(s.n_embd));
  w.SetU32("llama.block_count", static_cast<uint32_t>(s.n_layer));
  w.SetU32("llama.feed_forward_length", static_cast<uint32_t>(s.n_ff));
  w.SetU32("llama.rope.dimension_count", static_cast<uint32_t>(head_dim));
  w.SetU32("llama.attention.head_count", static_cast<uint32_t>(s.n_head));
  w.SetU32("llama.attention.head_count_kv", static_cast<uint32_t>(s.n_head_kv));
  w.SetF32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.SetF32("llama.rope.freq_base", s.rope_freq_base);
  w.SetU32("llama.vocab_size", static_cast<uint32_t>(s.n_vocab));
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
  BuildVocab(s.n_vocab, &tokens, &scores, &types);
  w.SetString("tokenizer.ggml.model", "llama");
  w.SetStringArray("tokenizer.ggml.tokens", tokens);
  w.SetF32Array("tokenizer.ggml.scores", scores);
  w.SetI32Array("tokenizer.ggml.token_type", types);
  w.SetU32("tokenizer.ggml.unknown_token_id", 0);
  w.SetU32("tokenizer.ggml.bos_token_id", 1);
  w.SetU32("tokenizer.ggml.eos_token_id", 2);
  w.SetBool("tokenizer.ggml.add_bos_token", true);
  w.SetBool("tokenizer.ggml.add_eos_token", false);

  // Weight scales follow the reference random models (../shared/models/README.md), scaled by
  // the input width so activations keep unit size at any dim.
  const float in_scale = 1.0f / std::sqrt(static_cast<float>(s.n_embd));
  auto matrix = [&](const std::string& name, int64_t n_in, int64_t n_out, float stddev,
                    GgmlType type) -> Status {
    const uint64_t seed = s.seed ^ NameHash(name);
    return w.AddTensor(name, type, {n_in, n_out}, [=](std::span<uint8_t> out) -> Status {
      Rng rng{seed};
      std::vector<float> row(static_cast<size_t>(n_in));
      const size_t row_bytes = RowSizeBytes(type, n_in);
      for (int64_t r = 0; r < n_out; ++r) {
        for (auto& v : row) v = rng.Normal(0.0f, stddev);
        QuantizeWeightRow(type, row.data(), out.data() + r * row_bytes, n_in);
      }
      return Status::OK();
    });
  };
  auto vector = [&](const std::string& name, int64_t n, float mean, float stddev) -> Status {
    std::vector<float> v(static_cast<size_t>(n));
    Rng rng{s.seed ^ NameHash(name)};
    for (auto& x : v) x = rng.Normal(mean, stddev);
    std::vector<uint8_t> bytes(v.size() * 4);
    std::memcpy(bytes.data(), v.data(), bytes.size());
    return w.AddTensor(name, GgmlType::kF32, {n}, std::move(bytes));
  };
  // Per-tensor types: `s.type` everywhere, or the Q4_K_M mixture.
  const GgmlType base = s.q4_k_m ? GgmlType::kQ4_K : s.type;
  const GgmlType output_type = s.q4_k_m ? GgmlType::kQ6_K : s.type;
  auto more_bits_type = [&](int64_t layer) {
    return s.q4_k_m && UseMoreBits(layer, s.n_layer) ? GgmlType::kQ6_K : base;
  };
  // Tied embeddings double as the output matrix, so llama-quantize gives them the output's type.
  DB_RETURN_IF_ERROR(matrix("token_embd.weight", s.n_embd, s.n_vocab, 0.5f,
                            s.tied_output ? output_type : base));
  DB_RETURN_IF_ERROR(vector("output_norm.weight", s.n_embd, 1.0f, 0.2f));
  if (!s.tied_output) {
    DB_RETURN_IF_ERROR(matrix("output.weight", s.n_embd, s.n_vocab, 4.0f * in_scale,
                              output_type));
  }
  if (s.rope_llama3_factor > 0.0f) {
    auto f = compute::Llama3RopeFreqFactors(static_cast<int>(head_dim), s.rope_freq_base,
                                            s.rope_llama3_factor, 1.0f, 4.0f, 8192.0f);
    std::vector<uint8_t> bytes(f.size() * 4);
    std::memcpy(bytes.data(), f.data(), bytes.size());
    DB_RETURN_IF_ERROR(w.AddTensor("rope_freqs.weight", GgmlType::kF32,
                                   {static_cast<int64_t>(f.size())}, std::move(bytes)));
  }
  const int64_t n_q = s.n_embd, n_kv = s.n_head_kv * head_dim;
  for (int64_t i = 0; i < s.n_layer; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    DB_RETURN_IF_ERROR(vector(p + "attn_norm.weight", s.n_embd, 1.0f, 0.2f));
    DB_RETURN_IF_ERROR(matrix(p + "attn_q.weight", s.n_embd, n_q, 1.5f * in_scale, base));
    DB_RETURN_IF_ERROR(matrix(p + "attn_k.weight", s.n_embd, n_kv, 1.5f * in_scale, base));
    DB_RETURN_IF_ERROR(matrix(p + "attn_v.weight", s.n_embd, n_kv, in_scale, more_bits_type(i)));
    DB_RETURN_IF_ERROR(matrix(p + "attn_output.weight", n_q, s.n_embd, in_scale, base));
    DB_RETURN_IF_ERROR(vector(p + "ffn_norm.weight", s.n_embd, 1.0f, 0.2f));
    DB_RETURN_IF_ERROR(matrix(p + "ffn_gate.weight", s.n_embd, s.n_ff, in_scale, base));
    DB_RETURN_IF_ERROR(matrix(p + "ffn_up.weight", s.n_embd, s.n_ff, in_scale, base));
    DB_RETURN_IF_ERROR(matrix(p + "ffn_down.weight", s.n_ff, s.n_embd,
                              1.0f / std::sqrt(static_cast<float>(s.n_ff)), more_bits_type(i)));
  }
  return w.WriteFile(path);
}

}  // namespace dualblade::engine
