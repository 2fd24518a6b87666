// `dualblade run --kv-policy dual` inside a real memory cgroup whose limit is below the model's
// weights plus its KV cache: the run must finish without an OOM kill (the memory policy could
// not: its KV alone is anonymous memory near the limit) and generate the memory policy's ids.
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "bench/cgroup_runner.h"
#include "common/units.h"
#include "testing/test_env.h"

namespace dualblade {
namespace {

using testing::DualbladeBinary;
using testing::RunCommand;

TEST(RunCgroupTest, DualCompletesUnderALimitBelowWeightsPlusKv) {
  if (auto why = CgroupRunnerUnavailableReason())
    GTEST_SKIP() << "cannot create memory cgroups here (needs root or a delegated cgroup): " << *why;
  testing::TempDir dir;
  const std::string model = dir.File("kvh.gguf");
  const std::string store = dir.File("kv.store");
  const std::string prompt = dir.File("prompt.txt");
  std::string out;
  // 12 layers of 4 KV heads of 128: 48 KiB of f32 KV per token; 23 MiB of Q8_0 weights.
  ASSERT_EQ(0, RunCommand(DualbladeBinary() + " mkmodel --out " + model +
                              " --layers 12 --dim 512 --heads 4 --kv-heads 4 --ff 512" +
                              " --vocab 512 --type q8_0 --seed 4", &out)) << out;
  ASSERT_EQ(0, RunCommand(DualbladeBinary() + " format " + store + " --size 256M", &out)) << out;
  {
    std::ofstream p(prompt);
    for (int i = 0; i < 120; ++i) p << "the quick brown fox ";  // about 1,900 tokens: 90 MiB of KV
  }
  const std::string common = " -f " + prompt + " -n 6 --temp 0 -t 2 --chunk-tokens 64 --kv-type f32 --no-echo";
  ASSERT_EQ(0, RunCommand(DualbladeBinary() + " run -m " + model + common +
                              " --kv-policy memory --stats-json " + dir.File("memory.json") +
                              " 2>&1", &out)) << out;
  nlohmann::json memory;
  {
    std::ifstream in(dir.File("memory.json"));
    memory = nlohmann::json::parse(in);
  }
  const uint64_t kv_bytes = 12ull * 2 * 512 * 4 * memory.at("n_ctx").get<uint64_t>();
  const uint64_t weights_bytes = 23 * kMiB;
  // Below weights + KV by more than an eighth of the KV; the rest of the process (BLAS buffers,
  // activations, staging) takes about 66 MiB here.
  const uint64_t limit = 100 * kMiB;
  ASSERT_LT(limit + kv_bytes / 8, weights_bytes + kv_bytes);

  CgroupRunOptions o;
  o.memory_limit_bytes = limit;
  o.drop_cache_paths = {store, model};
  o.timeout_ms = 5 * 60 * 1000;
  std::vector<std::string> argv = {DualbladeBinary(), "run", "-m", model, "-f", prompt,
                                   "-n", "6", "--temp", "0", "-t", "2", "--chunk-tokens", "64",
                                   "--kv-type", "f32", "--no-echo", "--kv-policy", "dual", "--kv-store", store,
                                   "--stats-json", dir.File("dual.json")};
  Result<CgroupRunResult> r = RunCommandInMemoryCgroup(o, argv);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::printf("%s\n", r->ToString().c_str());
  ASSERT_FALSE(r->oom_killed) << r->ToString();
  ASSERT_TRUE(r->exited && r->exit_code == 0) << r->ToString();
  EXPECT_LE(r->peak_bytes, limit);
  std::ifstream in(dir.File("dual.json"));
  const nlohmann::json dual = nlohmann::json::parse(in);
  EXPECT_EQ(dual.at("generated_ids"), memory.at("generated_ids"));
  // The KV did not fit: most of it was read DIRECT.
  EXPECT_GT(dual.at("kv_read_bytes").at("direct").get<uint64_t>(), 0u);
  std::printf("dual under %s: %s\n", FormatBytes(limit).c_str(),
              dual.at("kv_read_bytes").dump().c_str());
}

}  // namespace
}  // namespace dualblade
