// End to end: mkmodel writes a random model, run generates from it greedily and reproducibly,
// and --stats-json carries the fields DESIGN.md promises.
#include <cstdint>
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
  const std::string run = DualbladeBinary() + " run -m " + model +
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
