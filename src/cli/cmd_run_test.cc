// End to end: mkmodel writes a random model, run generates from it greedily and reproducibly,
// and --stats-json carries the fields DESIGN.md promises.
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "testing/test_env.h"

namespace dualblade {
namespace {

using testing::DualbladeBinary;
using testing::RunCommand;

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

TEST(RunCommandTest, MkmodelRefusesShapesThatDoNotFit) {
  testing::TempDir dir;
  std::string out;
  EXPECT_NE(0, RunCommand(DualbladeBinary() + " mkmodel --out " + dir.File("x.gguf") +
                              " --layers 1 --dim 48 --heads 4 --ff 64 --vocab 300 --type q8_0 2>&1",
                          &out));
  EXPECT_NE(out.find("multiples of 32"), std::string::npos) << out;
}

}  // namespace
}  // namespace dualblade
