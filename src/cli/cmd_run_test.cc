// End to end: mkmodel writes a random model, run generates from it greedily and reproducibly,
// and --stats-json carries the fields DESIGN.md promises.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "testing/test_env.h"

namespace dualblade {
namespace {

using testing::DualbladeBinary;
using testing::RunCommand;

// The ggml type number of every tensor in a GGUF file, read straight from the bytes (header,
// metadata skipped value by value, then the tensor descriptions) so that the check does not
// depend on the reader under test.
std::map<std::string, uint32_t> GgufTensorTypes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  const std::vector<char> b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t pos = 0;
  auto take = [&](size_t n) {
    if (pos + n > b.size()) throw std::runtime_error("truncated GGUF");
    const char* p = b.data() + pos;
    pos += n;
    return p;
  };
  auto u32 = [&] { uint32_t v; std::memcpy(&v, take(4), 4); return v; };
  auto u64 = [&] { uint64_t v; std::memcpy(&v, take(8), 8); return v; };
  auto str = [&] { const uint64_t n = u64(); return std::string(take(n), n); };
  // gguf_type numbers: 0..7 and 10..12 are scalars of these sizes, 8 string, 9 array.
  auto scalar_bytes = [](uint32_t t) -> size_t {
    static const size_t kBytes[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return kBytes[t];
  };
  auto skip_value = [&](uint32_t type) {
    if (type == 8) { str(); return; }
    if (type != 9) { take(scalar_bytes(type)); return; }
    const uint32_t elem = u32();
    const uint64_t n = u64();
    for (uint64_t i = 0; i < n; ++i) {
      if (elem == 8) str(); else take(scalar_bytes(elem));
    }
  };
  EXPECT_EQ(std::string(take(4), 4), "GGUF");
  u32();  // version
  const uint64_t n_tensors = u64(), n_kv = u64();
  for (uint64_t i = 0; i < n_kv; ++i) {
    str();
    skip_value(u32());
  }
  std::map<std::string, uint32_t> types;
  for (uint64_t i = 0; i < n_tensors; ++i) {
    std::string name = str();
    const uint32_t n_dims = u32();
    for (uint32_t d = 0; d < n_dims; ++d) u64();
    types[name] = u32();
    u64();  // offset
  }
  return types;
}

TEST(RunCommandTest, MkmodelThenGreedyRunIsDeterministicWithStats) {
  testing::TempDir dir;
  const std::string model = dir.File("tiny.gguf");
  std::string out;
  ASSERT_EQ(0, RunCommand(DualbladeBinary() + " mkmodel --out " + model +
                              " --preset tiny --type q8_0 --seed 3", &out)) << out;
  // In a fresh directory there is no default store, so the default policy keeps KV in memory.
  const std::string run = "cd " + dir.path() + " && " + DualbladeBinary() + " run -m " + model +
                          " -p 'Hello world' -n 12 --temp 0 -t 2 --chunk-tokens 4 --no-echo";
  std::string a, b;
  // Timing lines go to stderr and differ between runs: keep only stdout.
  ASSERT_EQ(0, RunCommand("{ " + run + " --stats-json " + dir.File("s.json") + " 2>/dev/null; }",
                          &a)) << a;
  ASSERT_EQ(0, RunCommand("{ " + run + " 2>/dev/null; }", &b)) << b;
  EXPECT_GT(a.size(), 1u);
  EXPECT_EQ(a, b);
  std::ifstream in(dir.File("s.json"));
  const nlohmann::json j = nlohmann::json::parse(in);
  EXPECT_EQ(j.at("policy"), "memory");
  EXPECT_EQ(j.at("generated_ids").size(), 12u);
  EXPECT_EQ(j.at("prompt_ids").at(0), 1);  // BOS
  EXPECT_EQ(j.at("prompt_tokens"), j.at("prompt_ids").size());
  for (const char* key : {"model", "reused_tokens", "ttft_ms", "prefill_ms", "decode_ms_per_token",
                          "tokens_per_s", "kv_read_bytes", "kv_write_bytes",
                          "pagecache_hit_ratio"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_GT(j.at("kv_read_bytes").at("memory").get<uint64_t>(), 0u);
  EXPECT_EQ(j.at("kv_read_bytes").at("direct"), 0);
}

// The default policy is dual on the default store (dualblade-data/kv.store under the working
// directory); without that store a run still works, with the KV in memory and a note saying so,
// unless --kv-policy asked for a store explicitly.
TEST(RunCommandTest, DefaultPolicyUsesTheDefaultStoreOrSaysItKeepsKvInMemory) {
  testing::TempDir dir;
  const std::string model = dir.File("tiny.gguf");
  std::string out;
  ASSERT_EQ(0, RunCommand(DualbladeBinary() + " mkmodel --out " + model + " --preset tiny", &out))
      << out;
  const std::string run = "cd " + dir.path() + " && " + DualbladeBinary() + " run -m " + model +
                          " -p 'The KV cache' -n 6 --temp 0 -t 2 --chunk-tokens 4 --no-echo";
  ASSERT_EQ(0, RunCommand(run + " --stats-json m.json", &out)) << out;
  EXPECT_NE(out.find("note: no KV store at dualblade-data/kv.store"), std::string::npos) << out;
  nlohmann::json j = nlohmann::json::parse(std::ifstream(dir.File("m.json")));
  EXPECT_EQ(j.at("policy"), "memory");
  const auto want_ids = j.at("generated_ids");

  out.clear();
  EXPECT_EQ(1, RunCommand(run + " --kv-policy dual", &out));
  EXPECT_NE(out.find("no KV store at dualblade-data/kv.store"), std::string::npos) << out;

  ASSERT_EQ(0, RunCommand("mkdir -p " + dir.File("dualblade-data") + " && " + DualbladeBinary() +
                              " format " + dir.File("dualblade-data/kv.store") + " --size 64M",
                          &out))
      << out;
  out.clear();
  ASSERT_EQ(0, RunCommand(run + " --stats-json d.json", &out)) << out;
  EXPECT_EQ(out.find("note: no KV store"), std::string::npos) << out;
  j = nlohmann::json::parse(std::ifstream(dir.File("d.json")));
  EXPECT_EQ(j.at("policy"), "dual");
  EXPECT_EQ(j.at("generated_ids"), want_ids);
  EXPECT_GT(j.at("kv_write_bytes").at("page").get<uint64_t>() +
                j.at("kv_write_bytes").at("direct").get<uint64_t>(),
            0u);
}

TEST(RunCommandTest, EveryKvPolicyGivesTheSameTokens) {
  testing::TempDir dir;
  const std::string model = dir.File("tiny.gguf");
  const std::string store = dir.File("kv.store");
  ASSERT_EQ(0, RunCommand(DualbladeBinary() + " mkmodel --out " + model + " --preset tiny"));
  std::string out;
  ASSERT_EQ(0, RunCommand(DualbladeBinary() + " format " + store + " --size 64M", &out)) << out;
  const std::string run = DualbladeBinary() + " run -m " + model +
                          " -p 'The KV cache' -n 10 --temp 0 -t 2 --chunk-tokens 4 --no-echo" +
                          " --kv-store " + store + " --kv-type f16 --kv-policy ";
  std::string want;
  ASSERT_EQ(0, RunCommand("{ " + run + "memory 2>/dev/null; }", &want)) << want;
  for (const char* policy : {"pagecache", "direct", "dual"}) {
    std::string got;
    ASSERT_EQ(0, RunCommand("{ " + run + policy + " 2>/dev/null; }", &got)) << policy << got;
    EXPECT_EQ(got, want) << policy;
  }
  EXPECT_EQ(1, RunCommand(DualbladeBinary() + " run -m " + model + " -p hi --kv-policy direct" +
                              " --kv-store " + dir.File("absent.store"),
                          &out));
  EXPECT_EQ(1, RunCommand(DualbladeBinary() + " run -m " + model + " -p hi --kv-policy fast",
                          &out));
  EXPECT_NE(out.find("--kv-policy must be"), std::string::npos) << out;
  EXPECT_NE(0, RunCommand(DualbladeBinary() + " run -m " + dir.File("missing.gguf") + " -p hi",
                          &out));
}

TEST(RunCommandTest, Q4KMModelHasLlamaQuantizeMixtureAndGeneratesDeterministically) {
  testing::TempDir dir;
  const std::string model = dir.File("q4km.gguf");
  std::string out;
  // 8 layers: llama.cpp's use_more_bits picks layers 0 (first eighth), 3 and 6 (every third from
  // the first eighth on) and 7 (last eighth).
  ASSERT_EQ(0, RunCommand(DualbladeBinary() + " mkmodel --out " + model +
                              " --layers 8 --dim 256 --heads 4 --kv-heads 2 --ff 512 --vocab 512" +
                              " --type q4_k_m --seed 5", &out)) << out;
  EXPECT_NE(out.find("Q4_K_M"), std::string::npos) << out;
  const std::map<std::string, uint32_t> types = GgufTensorTypes(model);
  constexpr uint32_t kF32 = 0, kQ4_K = 12, kQ6_K = 14;
  EXPECT_EQ(types.at("token_embd.weight"), kQ4_K);
  EXPECT_EQ(types.at("output.weight"), kQ6_K);
  EXPECT_EQ(types.at("output_norm.weight"), kF32);
  for (int i = 0; i < 8; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    const uint32_t more = (i == 0 || i == 3 || i == 6 || i == 7) ? kQ6_K : kQ4_K;
    EXPECT_EQ(types.at(p + "attn_v.weight"), more) << p;
    EXPECT_EQ(types.at(p + "ffn_down.weight"), more) << p;
    for (const char* t : {"attn_q", "attn_k", "attn_output", "ffn_gate", "ffn_up"}) {
      EXPECT_EQ(types.at(p + t + ".weight"), kQ4_K) << p << t;
    }
    EXPECT_EQ(types.at(p + "attn_norm.weight"), kF32) << p;
  }
  const std::string run = DualbladeBinary() + " run -m " + model +
                          " -p 'Hello world' -n 8 --temp 0 -t 2 --chunk-tokens 4 --no-echo";
  std::string a, b;
  ASSERT_EQ(0, RunCommand("{ " + run + " 2>/dev/null; }", &a)) << a;
  ASSERT_EQ(0, RunCommand("{ " + run + " 2>/dev/null; }", &b)) << b;
  EXPECT_GT(a.size(), 1u);
  EXPECT_EQ(a, b);
}

TEST(RunCommandTest, MkmodelRefusesShapesThatDoNotFit) {
  testing::TempDir dir;
  std::string out;
  EXPECT_NE(0, RunCommand(DualbladeBinary() + " mkmodel --out " + dir.File("x.gguf") +
                              " --layers 1 --dim 48 --heads 4 --ff 64 --vocab 300 --type q8_0 2>&1",
                          &out));
  EXPECT_NE(out.find("multiples of 32"), std::string::npos) << out;
  EXPECT_NE(0, RunCommand(DualbladeBinary() + " mkmodel --out " + dir.File("y.gguf") +
                              " --preset tiny --type q4_k_m 2>&1",
                          &out));
  EXPECT_NE(out.find("multiples of 256 for type q4_k_m"), std::string::npos) << out;
}

}  // namespace
}  // namespace dualblade

namespace dualblade {
namespace {

using testing::DualbladeBinary;
using testing::RunCommand;

nlohmann::json ReadJsonFile(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

// A kv-heavy-like model, small enough for a test: 12 layers of 4 KV heads of 128 (24 KiB of f16
// KV per token, run's default type) around 23 MiB of Q8_0 weights, and a prompt of about 640
// tokens (15 MiB of KV).
struct KvHeavyRun {
  testing::TempDir dir;
  std::string model = dir.File("kvh.gguf");
  std::string store = dir.File("kv.store");
  std::string prompt = dir.File("prompt.txt");

  void SetUp() {
    std::string out;
    ASSERT_EQ(0, RunCommand(DualbladeBinary() + " mkmodel --out " + model +
                                " --layers 12 --dim 512 --heads 4 --kv-heads 4 --ff 512" +
                                " --vocab 512 --type q8_0 --seed 4", &out)) << out;
    ASSERT_EQ(0, RunCommand(DualbladeBinary() + " format " + store + " --size 256M", &out)) << out;
    std::ofstream p(prompt);
    for (int i = 0; i < 40; ++i) p << "the quick brown fox ";
  }
  // Runs with the given flags; returns the exit code, *json the stats, *err stderr.
  int Run(const std::string& flags, nlohmann::json* json, std::string* err) {
    const std::string stats = dir.File("stats.json");
    std::remove(stats.c_str());
    const int rc = RunCommand("{ " + DualbladeBinary() + " run -m " + model + " -f " + prompt +
                                  " -n 8 --temp 0 -t 2 --chunk-tokens 64 --no-echo --kv-store " +
                                  store + " --stats-json " + stats + " " + flags +
                                  " 2>&1 >/dev/null; }",
                              err);
    if (rc == 0 && json != nullptr) *json = ReadJsonFile(stats);
    return rc;
  }
};

TEST(RunCommandTest, MemBudgetBelowTheKvSplitsItBetweenPageAndDirect) {
  KvHeavyRun r;
  r.SetUp();
  if (::testing::Test::HasFatalFailure()) return;
  nlohmann::json memory, roomy, split;
  std::string err;
  ASSERT_EQ(0, r.Run("--kv-policy memory", &memory, &err)) << err;
  // 12 layers, K and V, 512 elements per row, f16 (run's default --kv-type).
  const uint64_t kv_bytes = 12ull * 2 * 512 * 2 * memory.at("n_ctx").get<uint64_t>();
  // What the run pins besides the KV differs between machines (BLAS buffers, thread stacks) and
  // with the budget (the cache sizes its buffers from it): find a budget whose PAGE headroom is
  // about half the KV by measuring, starting from one that holds everything.
  uint64_t budget = 320ull << 20;
  ASSERT_EQ(0, r.Run("--kv-policy dual --mem-budget " + std::to_string(budget), &roomy, &err))
      << err;
  EXPECT_EQ(roomy.at("kv_read_bytes").at("direct"), 0);
  EXPECT_EQ(roomy.at("generated_ids"), memory.at("generated_ids"));
  uint64_t headroom = roomy.at("kv_placement").at("page_budget_bytes").get<uint64_t>();
  ASSERT_GT(headroom, kv_bytes) << "320 MiB should hold the whole KV here: " << err;
  for (int attempt = 0; attempt < 4; ++attempt) {
    budget = budget + kv_bytes / 2 - std::min<uint64_t>(headroom, budget - (1ull << 20));
    ASSERT_EQ(0, r.Run("--kv-policy dual --mem-budget " + std::to_string(budget), &split, &err))
        << err;
    headroom = split.at("kv_placement").at("page_budget_bytes").get<uint64_t>();
    if (headroom > kv_bytes / 4 && headroom < kv_bytes * 3 / 4) break;
  }
  EXPECT_EQ(split.at("generated_ids"), memory.at("generated_ids"));
  EXPECT_GT(split.at("kv_read_bytes").at("page").get<uint64_t>(), 0u) << split.dump();
  EXPECT_GT(split.at("kv_read_bytes").at("direct").get<uint64_t>(), 0u) << split.dump();
  EXPECT_LT(split.at("kv_placement").at("page_budget_bytes").get<uint64_t>(), kv_bytes);
  // The prefetch fields (added, never renamed).
  EXPECT_TRUE(split.contains("stall_ms"));
  EXPECT_GE(split.at("prefetch_depth").get<uint32_t>(), 1u);
  EXPECT_GT(split.at("prefetch").at("used").get<uint64_t>(), 0u);
  // A fixed depth, and none: the same ids again.
  nlohmann::json fixed;
  for (const char* depth : {"0", "2"}) {
    ASSERT_EQ(0, r.Run("--kv-policy direct --prefetch-depth " + std::string(depth), &fixed, &err))
        << err;
    EXPECT_EQ(fixed.at("generated_ids"), memory.at("generated_ids")) << depth;
    EXPECT_EQ(fixed.at("prefetch_depth"), std::stoi(depth));
  }
}

TEST(RunCommandTest, BadMemBudgetsAreOneSentence) {
  KvHeavyRun r;
  r.SetUp();
  if (::testing::Test::HasFatalFailure()) return;
  struct Case {
    const char* flags;
    const char* says;
  };
  for (const Case& c : {Case{"--mem-budget 0", "--mem-budget must be positive"},
                        Case{"--mem-budget abc", "'abc' is not a size"},
                        Case{"--mem-budget 24M", "cannot hold the"},
                        Case{"--prefetch-depth soon", "--prefetch-depth must be auto"}}) {
    std::string err;
    EXPECT_EQ(1, r.Run(std::string("--kv-policy dual ") + c.flags, nullptr, &err)) << c.flags;
    EXPECT_NE(err.find(c.says), std::string::npos) << c.flags << ": " << err;
    // One line, one sentence.
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  }
}

}  // namespace
}  // namespace dualblade
