#include "engine/transformer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "engine/random_model.h"
#include "engine/store_kv_cache.h"
#include "store/store.h"
#include "model/tokenizer.h"
#include "model/vocab.h"
#include "testing/test_env.h"

namespace dualblade::engine {
namespace {

// A KvCache that stores like the memory policy but delivers each read's chunks in a shuffled
// order, as a store whose reads complete out of order would.
class ShuffledKvCache final : public KvCache {
 public:
  ShuffledKvCache(const KvGeometry& g, uint32_t seed) : inner_(NewMemoryKvCache(g)), rng_(seed) {}
  const KvGeometry& geometry() const override { return inner_->geometry(); }
  std::string policy_name() const override { return "shuffled"; }
  int64_t n_tokens(int layer) const override { return inner_->n_tokens(layer); }
  Status Append(int layer, const void* k, const void* v, int n) override {
    return inner_->Append(layer, k, v, n);
  }
  Status ReadChunks(int layer, int64_t begin, int64_t end, const ChunkFn& fn) override {
    struct Piece {
      int64_t chunk, begin;
      int n;
      std::vector<uint8_t> k, v;
    };
    std::vector<Piece> pieces;
    const size_t row = geometry().row_bytes();
    DB_RETURN_IF_ERROR(inner_->ReadChunks(
        layer, begin, end, [&](int64_t c, int64_t b, int n, const void* k, const void* v) {
          Piece p{c, b, n, {}, {}};
          p.k.assign(static_cast<const uint8_t*>(k), static_cast<const uint8_t*>(k) + n * row);
          p.v.assign(static_cast<const uint8_t*>(v), static_cast<const uint8_t*>(v) + n * row);
          pieces.push_back(std::move(p));
        }));
    std::shuffle(pieces.begin(), pieces.end(), rng_);
    for (const Piece& p : pieces) fn(p.chunk, p.begin, p.n, p.k.data(), p.v.data());
    return Status::OK();
  }
  KvStats stats() const override { return inner_->stats(); }

 private:
  std::unique_ptr<KvCache> inner_;
  std::mt19937 rng_;
};

KvGeometry GeometryFor(const Model& m, int chunk_tokens, compute::KvElemType type) {
  KvGeometry g;
  g.n_layer = static_cast<int>(m.config().n_layer);
  g.n_head_kv = static_cast<int>(m.config().n_head_kv);
  g.head_dim = static_cast<int>(m.config().n_embd_head);
  g.chunk_tokens = chunk_tokens;
  g.type = type;
  g.n_ctx = 256;
  return g;
}

// Prefill 40 tokens, decode 10; returns every step's logits, concatenated.
std::vector<float> RunSequence(const Model& m, KvCache* kv, compute::ThreadPool* pool) {
  Transformer tf(m, kv, pool);
  std::vector<int32_t> prompt(40);
  for (int i = 0; i < 40; ++i) prompt[i] = (i * 37 + 5) % static_cast<int>(m.config().n_vocab);
  std::vector<float> all, logits(m.config().n_vocab);
  EXPECT_TRUE(tf.Forward(prompt, logits.data()).ok());
  all.insert(all.end(), logits.begin(), logits.end());
  for (int s = 0; s < 10; ++s) {
    const int32_t next[1] = {static_cast<int32_t>((s * 11 + 3) % m.config().n_vocab)};
    EXPECT_TRUE(tf.Forward(next, logits.data()).ok());
    all.insert(all.end(), logits.begin(), logits.end());
  }
  return all;
}

class TransformerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RandomModelSpec spec;  // tiny, Q8_0 matrices
    spec.type = GgmlType::kQ8_0;
    spec.seed = 9;
    ASSERT_TRUE(WriteRandomModel(spec, dir_.File("m.gguf")).ok());
    auto m = Model::Open(dir_.File("m.gguf"));
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    model_ = std::move(m).value();
  }
  testing::TempDir dir_;
  std::unique_ptr<Model> model_;
};

TEST_F(TransformerTest, LogitsAreBitIdenticalWhateverTheChunkArrivalOrder) {
  compute::ThreadPool pool(2);
  for (auto type : {compute::KvElemType::kF32, compute::KvElemType::kF16}) {
    auto memory = NewMemoryKvCache(GeometryFor(*model_, 8, type));
    const auto want = RunSequence(*model_, memory.get(), &pool);
    for (uint32_t seed : {1u, 2u, 3u}) {
      ShuffledKvCache shuffled(GeometryFor(*model_, 8, type), seed);
      const auto got = RunSequence(*model_, &shuffled, seed % 2 ? &pool : nullptr);
      ASSERT_EQ(got.size(), want.size());
      ASSERT_EQ(0, std::memcmp(got.data(), want.data(), want.size() * sizeof(float)))
          << "seed " << seed;
    }
  }
}

TEST_F(TransformerTest, PrefillEqualsTokenByTokenDecode) {
  // Batched prefill (GEMM + causal masking) and one-token steps compute the same function.
  compute::ThreadPool pool(2);
  auto a = NewMemoryKvCache(GeometryFor(*model_, 16, compute::KvElemType::kF32));
  auto b = NewMemoryKvCache(GeometryFor(*model_, 16, compute::KvElemType::kF32));
  Transformer batched(*model_, a.get(), &pool, compute::MatmulMode::kF32);
  Transformer stepped(*model_, b.get(), &pool, compute::MatmulMode::kF32);
  std::vector<int32_t> prompt(37);
  for (int i = 0; i < 37; ++i) prompt[i] = (i * 13 + 1) % 512;
  std::vector<float> la(512), lb(512);
  ASSERT_TRUE(batched.Forward(prompt, la.data()).ok());
  for (int32_t id : prompt) ASSERT_TRUE(stepped.Forward(std::span(&id, 1), lb.data()).ok());
  for (int i = 0; i < 512; ++i) EXPECT_NEAR(la[i], lb[i], 1e-4) << i;
}

TEST_F(TransformerTest, RejectsOutOfVocabularyTokensAndFullContext) {
  auto kv = NewMemoryKvCache(GeometryFor(*model_, 16, compute::KvElemType::kF32));
  Transformer tf(*model_, kv.get(), nullptr);
  const int32_t bad[1] = {512};
  EXPECT_TRUE(tf.Forward(bad, nullptr).IsInvalidArgument());
  std::vector<int32_t> many(257, 3);
  EXPECT_TRUE(tf.Forward(many, nullptr).IsNoSpace());
}

TEST_F(TransformerTest, RandomModelVocabularyTokenizesAnyText) {
  auto vocab = LoadVocab(model_->gguf());
  ASSERT_TRUE(vocab.ok()) << vocab.status().ToString();
  auto tok = Tokenizer::Create(*vocab);
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  const std::string text = "Hello world, \xC3\xA9t\xC3\xA9 \xE2\x9C\x93 ok";
  const auto ids = (*tok)->Tokenize(text, true);
  ASSERT_GT(ids.size(), 1u);
  EXPECT_EQ(ids[0], 1);
  EXPECT_EQ((*tok)->Detokenize(std::span(ids).subspan(1)), text);
}

}  // namespace
}  // namespace dualblade::engine

namespace dualblade::engine {
namespace {

TEST(RandomModelTest, Llama3ShapedModelWithTiedOutputRuns) {
  // The llama-3.2-1b preset's features at a small size: tied output, Llama-3 RoPE factors, GQA.
  auto spec = RandomModelPreset("llama-3.2-1b");
  ASSERT_TRUE(spec.ok());
  spec->n_layer = 2;
  spec->n_embd = 128;
  spec->n_head = 4;
  spec->n_head_kv = 1;
  spec->n_ff = 256;
  spec->n_vocab = 600;
  spec->type = GgmlType::kQ4_0;
  testing::TempDir dir;
  ASSERT_TRUE(WriteRandomModel(*spec, dir.File("l3.gguf")).ok());
  auto m = Model::Open(dir.File("l3.gguf"));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_TRUE((*m)->config().tied_output);
  EXPECT_EQ((*m)->rope().freq_factors.size(), 16u);
  EXPECT_EQ((*m)->rope().freq_base, 500000.0f);
  KvGeometry g = GeometryFor(**m, 32, compute::KvElemType::kF16);
  auto kv = NewMemoryKvCache(g);
  Transformer tf(**m, kv.get(), nullptr);
  std::vector<int32_t> prompt = {1, 70, 300, 599};
  std::vector<float> logits(600);
  ASSERT_TRUE(tf.Forward(prompt, logits.data()).ok());
  for (float x : logits) ASSERT_TRUE(std::isfinite(x));
  EXPECT_EQ(kv->n_tokens(1), 4);
}

TEST(RandomModelTest, UnknownPresetAndBadShapesAreRefused) {
  EXPECT_TRUE(RandomModelPreset("gpt-5").status().IsNotFound());
  RandomModelSpec s;
  s.n_head_kv = 3;
  EXPECT_TRUE(ValidateRandomModelSpec(s).IsInvalidArgument());
  s = RandomModelSpec{};
  s.type = GgmlType::kQ6_K;
  EXPECT_TRUE(ValidateRandomModelSpec(s).IsNotSupported());
}

}  // namespace
}  // namespace dualblade::engine

namespace dualblade::engine {
namespace {

TEST_F(TransformerTest, StoreBackedPoliciesGiveBitIdenticalLogits) {
  // Same rows, same chunk-order merge: every KV policy must yield the same bits as RAM.
  const std::string path = dir_.File("kv.store");
  ASSERT_TRUE(store::Store::Format(path, {.size_bytes = 64 * 1024 * 1024}).ok());
  compute::ThreadPool pool(2);
  const KvGeometry g = GeometryFor(*model_, 8, compute::KvElemType::kF16);
  auto memory = NewMemoryKvCache(g);
  const auto want = RunSequence(*model_, memory.get(), &pool);
  for (const char* policy : {"pagecache", "direct", "dual"}) {
    StoreKvCacheOptions opts;
    opts.policy = policy;
    opts.model_identity = "transformer_test";
    auto kv = StoreKvCache::Open(path, g, opts);
    ASSERT_TRUE(kv.ok()) << policy << ": " << kv.status().ToString();
    const auto got = RunSequence(*model_, kv->get(), &pool);
    ASSERT_EQ(got.size(), want.size());
    EXPECT_EQ(0, std::memcmp(got.data(), want.data(), want.size() * sizeof(float))) << policy;
  }
}

}  // namespace
}  // namespace dualblade::engine
