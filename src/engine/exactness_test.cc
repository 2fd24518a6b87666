// Exactness against llama.cpp: every golden run in ../shared/models/golden (schema in that
// folder's README) is replayed with teacher forcing (the reference's greedy ids are fed back), and
// at every step our logits are compared with llama.cpp's.
//
// Tolerances (max abs over the logits):
//   - F32 weights, F32 KV: 1e-3 against the main result (the README's F32 figure).
//   - Quantized/16-bit weights computed in F32 (MatmulMode::kF32, weights dequantized): 1e-3
//     against the `f32_compute` section, which llama.cpp produced from the same dequantized
//     weights.
//   - F16 KV cache on the F32 models: 0.05 (README note 3).
//   - Quantized weights with llama.cpp's arithmetic (MatmulMode::kQuantizedActivations:
//     activations rounded to Q8_0 before every Q8_0/Q4_0 product) against the main result:
//     0.2 when every matrix is F32, Q8_0 or Q4_0. Runs whose rounding matches throughout agree
//     to 2e-6 (the 8-token runs); a last-bit difference upstream (float summation order) can flip
//     one activation's Q8_0 rounding, which moves logits by up to ~0.13 on these models (measured
//     0.131 and 0.106 on the 200-token runs with the AVX2 kernels, 0.037 and 0.106 with scalar). Files with F16/BF16 or K-quant
//     matrices are checked through f32_compute only: that llama.cpp build accumulated F16 dots in
//     F16 (AVX512-FP16), and Q8_K rounding flips move their logits by up to 0.18.
// Greedy ids must equal the reference's at every step whose reference top-2 gap is at least
// 2x the tolerance (README note 5); below that either token is a correct answer.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "compute/thread_pool.h"
#include "engine/kv_cache.h"
#include "engine/model.h"
#include "engine/transformer.h"
#include "model/tokenizer.h"
#include "model/vocab.h"
#include "testing/test_env.h"

namespace dualblade::engine {
namespace {

namespace fs = std::filesystem;
using compute::KvElemType;
using compute::MatmulMode;
using nlohmann::json;

std::string ModelsDir() { return testing::SourceDir() + "/../shared/models"; }

json ReadJson(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

struct Comparison {
  double max_logit_diff = 0;  // over last_logits and every step's top5
  int greedy_checked = 0;     // steps whose id had to match
};

// Replays one reference (the main result or its f32_compute section) and checks it.
Comparison Replay(const Model& model, const std::vector<int32_t>& input_ids, const json& ref,
                  MatmulMode mode, KvElemType kv_type, double tol, const std::string& what) {
  Comparison cmp;
  compute::ThreadPool pool(2);
  KvGeometry g;
  g.n_layer = static_cast<int>(model.config().n_layer);
  g.n_head_kv = static_cast<int>(model.config().n_head_kv);
  g.head_dim = static_cast<int>(model.config().n_embd_head);
  g.chunk_tokens = 16;  // small, so that attention merges many chunks
  g.type = kv_type;
  g.n_ctx = static_cast<int64_t>(input_ids.size()) + 64;
  auto kv = NewMemoryKvCache(g);
  Transformer tf(model, kv.get(), &pool, mode);
  const int64_t n_vocab = model.config().n_vocab;
  std::vector<float> logits(n_vocab);
  Status st = tf.Forward(input_ids, logits.data());
  EXPECT_TRUE(st.ok()) << what << ": " << st.ToString();
  if (!st.ok()) return cmp;
  const auto& last = ref.at("last_logits");
  EXPECT_EQ(static_cast<int64_t>(last.size()), n_vocab);
  for (int64_t i = 0; i < n_vocab; ++i) {
    const double want = static_cast<float>(last[i].get<double>());
    cmp.max_logit_diff = std::max(cmp.max_logit_diff, std::fabs(logits[i] - want));
  }
  EXPECT_LE(cmp.max_logit_diff, tol) << what << ": last_logits";
  const double gap_threshold = 2 * tol;
  const auto& steps = ref.at("greedy");
  for (size_t s = 0; s < steps.size(); ++s) {
    const json& step = steps[s];
    const int32_t ref_id = step.at("id").get<int32_t>();
    int32_t best = 0;  // argmax, ties to the lower id
    for (int64_t i = 1; i < n_vocab; ++i) {
      if (logits[i] > logits[best]) best = static_cast<int32_t>(i);
    }
    for (const auto& pair : step.at("top5")) {
      const int32_t id = pair[0].get<int32_t>();
      const double want = static_cast<float>(pair[1].get<double>());
      const double diff = std::fabs(logits[id] - want);
      cmp.max_logit_diff = std::max(cmp.max_logit_diff, diff);
      EXPECT_LE(diff, tol) << what << ": step " << s << " logit of id " << id;
    }
    if (step.at("top2_gap").get<double>() >= gap_threshold) {
      EXPECT_EQ(best, ref_id) << what << ": greedy step " << s;
      ++cmp.greedy_checked;
    }
    if (s + 1 == steps.size()) break;  // the last step's id is not fed
    const int32_t next[1] = {ref_id};
    st = tf.Forward(next, logits.data());
    EXPECT_TRUE(st.ok()) << what << ": " << st.ToString();
    if (!st.ok()) break;
  }
  return cmp;
}

// True when every matrix is F32, Q8_0 or Q4_0: llama.cpp's CPU arithmetic for those is reproduced
// exactly (up to float summation order).
bool OnlyQ8PartnerWeights(const Model& model) {
  auto ok = [](const compute::WeightMatrix& w) {
    return w.type == GgmlType::kF32 || w.type == GgmlType::kQ8_0 || w.type == GgmlType::kQ4_0;
  };
  const ModelWeights& w = model.weights();
  if (!ok(w.token_embd) || !ok(w.output)) return false;
  for (const LayerWeights& l : w.layers) {
    for (const auto* m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) {
      if (!ok(*m)) return false;
    }
  }
  return true;
}

class GoldenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(ModelsDir() + "/golden/index.json")) {
      GTEST_SKIP() << "reference models absent: " << ModelsDir() << " does not exist";
    }
  }

  const Model* LoadModel(const std::string& file) {
    auto it = models_.find(file);
    if (it != models_.end()) return it->second.get();
    auto m = Model::Open(ModelsDir() + "/" + file);
    if (!m.ok() && m.status().IsNotSupported()) {
      std::printf("%-45s skipped: %s\n", file.c_str(), m.status().message().c_str());
      return nullptr;
    }
    if (!m.ok()) {
      ADD_FAILURE() << file << ": " << m.status().ToString();
      return nullptr;
    }
    return (models_[file] = std::move(m).value()).get();
  }

  std::map<std::string, std::unique_ptr<Model>> models_;
};

TEST_F(GoldenTest, EveryRunMatchesLlamaCpp) {
  const json index = ReadJson(ModelsDir() + "/golden/index.json");
  int replayed = 0;
  for (const json& row : index.at("runs")) {
    const std::string file = row.at("file").get<std::string>();
    const json run = ReadJson(ModelsDir() + "/golden/" + file);
    const Model* model = LoadModel(run.at("model_file").get<std::string>());
    if (model == nullptr) {
      ++replayed;
      continue;
    }
    const auto input_ids = run.at("input_ids").get<std::vector<int32_t>>();
    if (run.at("input_kind") == "text") {
      // Text prompts go through our tokenizer: it must give llama.cpp's ids.
      auto vocab = LoadVocab(model->gguf());
      ASSERT_TRUE(vocab.ok()) << vocab.status().ToString();
      auto tokenizer = Tokenizer::Create(*vocab);
      ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().ToString();
      const auto ids = (*tokenizer)->Tokenize(run.at("prompt").get<std::string>(), true);
      EXPECT_EQ(ids, input_ids) << file << ": tokenization differs from llama.cpp's";
    }
    if (run.at("f32_compute").is_null()) {
      auto cmp = Replay(*model, input_ids, run, MatmulMode::kAuto, KvElemType::kF32, 1e-3, file);
      std::printf("%-45s F32            max|diff| %.2e  greedy steps checked %d\n", file.c_str(),
                  cmp.max_logit_diff, cmp.greedy_checked);
      auto cmp16 = Replay(*model, input_ids, run, MatmulMode::kAuto, KvElemType::kF16, 0.05,
                          file + " (f16 KV)");
      std::printf("%-45s F32, F16 KV    max|diff| %.2e  greedy steps checked %d\n", file.c_str(),
                  cmp16.max_logit_diff, cmp16.greedy_checked);
    } else {
      auto cmp = Replay(*model, input_ids, run.at("f32_compute"), MatmulMode::kF32,
                        KvElemType::kF32, 1e-3, file + " (f32_compute)");
      std::printf("%-45s f32_compute    max|diff| %.2e  greedy steps checked %d\n", file.c_str(),
                  cmp.max_logit_diff, cmp.greedy_checked);
      // llama.cpp's own arithmetic only where it is reproducible (see the tolerances above).
      if (OnlyQ8PartnerWeights(*model)) {
        auto cmpq = Replay(*model, input_ids, run, MatmulMode::kQuantizedActivations,
                           KvElemType::kF32, 0.2, file + " (llama.cpp arithmetic)");
        std::printf("%-45s quantized act. max|diff| %.2e  greedy steps checked %d\n",
                    file.c_str(), cmpq.max_logit_diff, cmpq.greedy_checked);
      }
    }
    ++replayed;
  }
  EXPECT_EQ(replayed, static_cast<int>(index.at("runs").size()));
}

}  // namespace
}  // namespace dualblade::engine
