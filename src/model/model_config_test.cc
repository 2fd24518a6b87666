#include "model/model_config.h"

#include <cmath>
#include <functional>

#include <gtest/gtest.h>

#include "model/gguf_writer.h"
#include "model/test_models.h"

namespace dualblade {
namespace {

Result<ModelConfig> OpenConfig(const std::string& path, std::unique_ptr<GgufFile>* keep) {
  DB_ASSIGN_OR_RETURN(*keep, GgufFile::Open(path));
  return ModelConfig::FromGguf(**keep);
}

TEST(ModelConfigTest, Stories260K) {
  DB_REFERENCE_MODEL_OR_SKIP(path, "stories260K.gguf");
  std::unique_ptr<GgufFile> f;
  auto c = OpenConfig(path, &f);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->arch, ModelArch::kLlama);
  EXPECT_EQ(c->n_layer, 5);
  EXPECT_EQ(c->n_embd, 64);
  EXPECT_EQ(c->n_head, 8);
  EXPECT_EQ(c->n_head_kv, 4);
  EXPECT_EQ(c->n_embd_head, 8);
  EXPECT_EQ(c->n_gqa(), 2);
  EXPECT_EQ(c->n_rot, 8);
  EXPECT_EQ(c->n_ff, 172);
  EXPECT_EQ(c->n_vocab, 512);
  EXPECT_EQ(c->n_ctx_train, 2048);
  EXPECT_EQ(c->rope_freq_base, 10000.0f);  // absent: llama.cpp's default
  EXPECT_EQ(c->rope_type, RopeType::kNormal);
  EXPECT_EQ(c->rope_scaling, RopeScalingType::kNone);
  EXPECT_TRUE(c->rope_freq_factors.empty());
  EXPECT_FLOAT_EQ(c->rms_eps, 1e-5f);
  EXPECT_FALSE(c->tied_output);
  EXPECT_FALSE(c->has_qkv_bias);
  EXPECT_TRUE(c->VerifyTensors(*f).ok()) << c->VerifyTensors(*f).ToString();
  EXPECT_EQ(c->Summary(),
            "llama: 5 layers, n_embd 64, 8 heads (4 kv) of 8, n_ff 172, vocab 512, ctx 2048");
}

TEST(ModelConfigTest, EveryReferenceModelVerifies) {
  DB_REFERENCE_MODEL_OR_SKIP(dir, "");
  for (const char* name :
       {"stories260K-q8_0.gguf", "stories260K-q4_0.gguf", "rand-llama-f32.gguf",
        "rand-llama-f16.gguf", "rand-llama-bf16.gguf", "rand-llama-q8_0.gguf",
        "rand-llama-q4_0.gguf", "rand-llama-q4_k_m.gguf", "rand-llama-q5_k_m.gguf",
        "rand-llama-q6_k.gguf", "rand-qwen2-f32.gguf", "rand-qwen2-q8_0.gguf"}) {
    std::unique_ptr<GgufFile> f;
    auto c = OpenConfig(dir + name, &f);
    ASSERT_TRUE(c.ok()) << name << ": " << c.status().ToString();
    Status st = c->VerifyTensors(*f);
    EXPECT_TRUE(st.ok()) << name << ": " << st.ToString();
    if (std::string(name).starts_with("rand-")) {
      EXPECT_EQ(c->n_layer, 2) << name;
      EXPECT_EQ(c->n_embd, 256) << name;
      EXPECT_EQ(c->n_embd_head, 64) << name;
      EXPECT_EQ(c->n_ff, 512) << name;
      EXPECT_EQ(c->n_vocab, 512) << name;
    }
  }
}

TEST(ModelConfigTest, Qwen2) {
  DB_REFERENCE_MODEL_OR_SKIP(path, "rand-qwen2-f32.gguf");
  std::unique_ptr<GgufFile> f;
  auto c = OpenConfig(path, &f);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->arch, ModelArch::kQwen2);
  EXPECT_EQ(c->rope_type, RopeType::kNeox);
  EXPECT_EQ(c->rope_freq_base, 1000000.0f);
  EXPECT_FLOAT_EQ(c->rms_eps, 1e-6f);
  EXPECT_EQ(c->n_head_kv, 1);
  EXPECT_EQ(c->n_rot, 64);
  EXPECT_TRUE(c->tied_output);
  EXPECT_TRUE(c->has_qkv_bias);
}

// A tiny llama model, all F32 zeros; `edit` may change keys and tensors before writing.
struct Tiny {
  std::vector<uint8_t> bytes;
  std::unique_ptr<GgufFile> file;
};
Tiny MakeTiny(const std::function<void(GgufWriter*)>& edit_keys,
              const std::function<bool(const std::string&)>& skip = nullptr,
              GgmlType q_type = GgmlType::kF32) {
  GgufWriter w;
  w.SetString("general.architecture", "llama");
  w.SetU32("llama.block_count", 1);
  w.SetU32("llama.embedding_length", 32);
  w.SetU32("llama.feed_forward_length", 64);
  w.SetU32("llama.attention.head_count", 4);
  w.SetU32("llama.attention.head_count_kv", 2);
  w.SetU32("llama.context_length", 128);
  w.SetF32("llama.attention.layer_norm_rms_epsilon", 1e-6f);
  w.SetStringArray("tokenizer.ggml.tokens", std::vector<std::string>(8, "t"));
  if (edit_keys) edit_keys(&w);
  auto add = [&](const std::string& name, std::vector<int64_t> ne, GgmlType type) {
    if (skip && skip(name)) return;
    int64_t n = 1;
    for (int64_t e : ne) n *= e;
    std::vector<uint8_t> data(RowSizeBytes(type, ne[0]) * (n / ne[0]));
    EXPECT_TRUE(w.AddTensor(name, type, ne, data).ok()) << name;
  };
  add("token_embd.weight", {32, 8}, GgmlType::kF32);
  add("output_norm.weight", {32}, GgmlType::kF32);
  add("output.weight", {32, 8}, GgmlType::kF32);
  add("blk.0.attn_norm.weight", {32}, GgmlType::kF32);
  add("blk.0.attn_q.weight", {32, 32}, q_type);
  add("blk.0.attn_k.weight", {32, 16}, GgmlType::kF32);
  add("blk.0.attn_v.weight", {32, 16}, GgmlType::kF32);
  add("blk.0.attn_output.weight", {32, 32}, GgmlType::kF32);
  add("blk.0.ffn_norm.weight", {32}, GgmlType::kF32);
  add("blk.0.ffn_gate.weight", {32, 64}, GgmlType::kF32);
  add("blk.0.ffn_up.weight", {32, 64}, GgmlType::kF32);
  add("blk.0.ffn_down.weight", {64, 32}, GgmlType::kF32);
  Tiny t;
  t.bytes = std::move(w.WriteToMemory().value());
  t.file = std::move(GgufFile::Parse(t.bytes).value());
  return t;
}

TEST(ModelConfigTest, CraftedModelDefaultsAndVerification) {
  Tiny t = MakeTiny(nullptr);
  auto c = ModelConfig::FromGguf(*t.file);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->n_vocab, 8);  // from the tokens array
  EXPECT_EQ(c->n_embd_head, 8);
  EXPECT_EQ(c->n_rot, 8);
  EXPECT_EQ(c->n_embd_kv(), 16);
  EXPECT_TRUE(c->VerifyTensors(*t.file).ok()) << c->VerifyTensors(*t.file).ToString();

  Tiny tied = MakeTiny(nullptr, [](const std::string& n) { return n == "output.weight"; });
  auto ct = ModelConfig::FromGguf(*tied.file);
  ASSERT_TRUE(ct.ok());
  EXPECT_TRUE(ct->tied_output);
  EXPECT_TRUE(ct->VerifyTensors(*tied.file).ok());
}

TEST(ModelConfigTest, RefusesUnsupportedArchitectureByName) {
  Tiny t = MakeTiny([](GgufWriter* w) { w->SetString("general.architecture", "falcon"); });
  Status st = ModelConfig::FromGguf(*t.file).status();
  EXPECT_TRUE(st.IsNotSupported());
  EXPECT_EQ(st.message(), "architecture 'falcon' is not supported (supported: llama, qwen2)");
}

TEST(ModelConfigTest, RefusesBadKeysAndTensors) {
  Status missing = ModelConfig::FromGguf(*MakeTiny([](GgufWriter* w) {
                     w->SetString("llama.block_count", "one");
                   }).file).status();
  EXPECT_TRUE(missing.IsInvalidArgument()) << missing.ToString();

  Status heads = ModelConfig::FromGguf(*MakeTiny([](GgufWriter* w) {
                   w->SetU32("llama.attention.head_count_kv", 3);
                 }).file).status();
  EXPECT_TRUE(heads.IsInvalidArgument()) << heads.ToString();

  Status yarn = ModelConfig::FromGguf(*MakeTiny([](GgufWriter* w) {
                  w->SetString("llama.rope.scaling.type", "yarn");
                }).file).status();
  EXPECT_TRUE(yarn.IsNotSupported());
  EXPECT_NE(yarn.message().find("'yarn'"), std::string::npos);

  Status moe = ModelConfig::FromGguf(*MakeTiny([](GgufWriter* w) {
                 w->SetU32("llama.expert_count", 8);
               }).file).status();
  EXPECT_TRUE(moe.IsNotSupported()) << moe.ToString();

  Tiny no_ffn = MakeTiny(nullptr, [](const std::string& n) { return n == "blk.0.ffn_up.weight"; });
  Status st = ModelConfig::FromGguf(*no_ffn.file)->VerifyTensors(*no_ffn.file);
  EXPECT_EQ(st.message(), "the model lacks tensor 'blk.0.ffn_up.weight'");

  Tiny wrong_vocab = MakeTiny([](GgufWriter* w) { w->SetU32("llama.vocab_size", 9); });
  st = ModelConfig::FromGguf(*wrong_vocab.file)->VerifyTensors(*wrong_vocab.file);
  EXPECT_EQ(st.message(), "tensor 'token_embd.weight' has shape [32, 8], expected [32, 9]");

  Tiny q41 = MakeTiny(nullptr, nullptr, GgmlType::kQ4_1);
  st = ModelConfig::FromGguf(*q41.file)->VerifyTensors(*q41.file);
  EXPECT_TRUE(st.IsNotSupported());
  EXPECT_NE(st.message().find("'blk.0.attn_q.weight' has type Q4_1"), std::string::npos);
}

TEST(ModelConfigTest, RopeScalingKeys) {
  auto linear = ModelConfig::FromGguf(*MakeTiny([](GgufWriter* w) {
                  w->SetString("llama.rope.scaling.type", "linear");
                  w->SetF32("llama.rope.scaling.factor", 4.0f);
                  w->SetF32("llama.rope.freq_base", 500000.0f);
                }).file);
  ASSERT_TRUE(linear.ok()) << linear.status().ToString();
  EXPECT_EQ(linear->rope_scaling, RopeScalingType::kLinear);
  EXPECT_EQ(linear->rope_freq_scale(), 0.25f);
  EXPECT_EQ(linear->rope_freq_base, 500000.0f);

  auto l3 = ModelConfig::FromGguf(*MakeTiny([](GgufWriter* w) {
              w->SetString("llama.rope.scaling.type", "llama3");
              w->SetF32("llama.rope.scaling.factor", 32.0f);
              w->SetU32("llama.rope.scaling.original_context_length", 32);
              w->SetF32("llama.rope.freq_base", 100.0f);
            }).file);
  ASSERT_TRUE(l3.ok()) << l3.status().ToString();
  EXPECT_EQ(l3->rope_scaling, RopeScalingType::kLlama3);
  EXPECT_EQ(l3->rope_freq_scale(), 1.0f);
  ASSERT_EQ(l3->rope_freq_factors.size(), 4u);
  // Wavelengths 2*pi*100^(i/4): 6.3 (< 32/4: kept), 19.9 (between 8 and 32: interpolated,
  // 1 / ((1 - s) / 32 + s) with s = (32 / 19.9 - 1) / 3), 62.8 and 199 (> 32: slowed by 32).
  EXPECT_EQ(l3->rope_freq_factors[0], 1.0f);
  const double s = (32 / (2 * M_PI * std::sqrt(10.0)) - 1) / 3;
  EXPECT_NEAR(l3->rope_freq_factors[1], 1 / ((1 - s) / 32 + s), 1e-4);
  EXPECT_EQ(l3->rope_freq_factors[2], 32.0f);
  EXPECT_EQ(l3->rope_freq_factors[3], 32.0f);
}

TEST(ModelConfigTest, Llama3FactorsMatchTheConverterFormula) {
  // Llama 3.2 1B: head 64, base 500000, factor 32, low 1, high 4, original context 8192.
  std::vector<float> f = Llama3RopeFactors(64, 500000.0f, 32.0f, 1.0f, 4.0f, 8192);
  ASSERT_EQ(f.size(), 32u);
  EXPECT_EQ(f[0], 1.0f);
  EXPECT_EQ(f[31], 32.0f);
  for (size_t i = 1; i < f.size(); ++i) EXPECT_GE(f[i], f[i - 1]);
}

}  // namespace
}  // namespace dualblade
