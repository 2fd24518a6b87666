// Prefill and decode cost of the transformer in CPU time, for comparisons on a shared, busy
// machine where wall-clock tokens/s (bench/run_tokens_per_s.sh) moves with the load: with one
// thread, process CPU time counts only the cycles the forward pass itself ran. Prompt tokens
// are a fixed pseudo-random sequence; decode feeds fixed tokens too (no sampling), so a run is
// the same work every time. KV policy memory.
//
//   build-*/src/compute/forward_cpu_bench MODEL.gguf [PROMPT_TOKENS=512] [DECODE_TOKENS=64]
//       [THREADS=1] [f32|f16 KV=f32]
#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include "engine/kv_cache.h"
#include "engine/model.h"
#include "engine/transformer.h"

namespace {

double Seconds(clockid_t clock) {
  timespec ts;
  clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace dualblade;
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL.gguf [PROMPT_TOKENS] [DECODE_TOKENS] [THREADS] [f32|f16]\n",
                 argv[0]);
    return 2;
  }
  const int n_prompt = argc > 2 ? std::atoi(argv[2]) : 512;
  const int n_decode = argc > 3 ? std::atoi(argv[3]) : 64;
  const int threads = argc > 4 ? std::atoi(argv[4]) : 1;
  const bool f16 = argc > 5 && std::strcmp(argv[5], "f16") == 0;
  if (n_prompt < 1 || n_decode < 0 || threads < 1) {
    std::fprintf(stderr, "prompt tokens and threads must be positive, decode tokens not negative\n");
    return 2;
  }
  auto model = engine::Model::Open(argv[1]);
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", model.status().ToString().c_str());
    return 1;
  }
  const ModelConfig& c = (*model)->config();
  engine::KvGeometry g;
  g.n_layer = static_cast<int>(c.n_layer);
  g.n_head_kv = static_cast<int>(c.n_head_kv);
  g.head_dim = static_cast<int>(c.n_embd_head);
  g.n_ctx = n_prompt + n_decode;
  g.type = f16 ? compute::KvElemType::kF16 : compute::KvElemType::kF32;
  auto kv = engine::NewMemoryKvCache(g);
  compute::ThreadPool pool(threads);
  engine::Transformer transformer(**model, kv.get(), threads > 1 ? &pool : nullptr);

  std::vector<int32_t> prompt(n_prompt);
  for (int i = 0; i < n_prompt; ++i) prompt[i] = static_cast<int32_t>(3 + (i * 7919) % (c.n_vocab - 3));
  std::vector<float> logits(static_cast<size_t>(c.n_vocab));
  const double cpu0 = Seconds(CLOCK_PROCESS_CPUTIME_ID), wall0 = Seconds(CLOCK_MONOTONIC);
  Status s = transformer.Forward(prompt, logits.data());
  const double cpu1 = Seconds(CLOCK_PROCESS_CPUTIME_ID), wall1 = Seconds(CLOCK_MONOTONIC);
  int32_t token = 5;
  for (int i = 0; s.ok() && i < n_decode; ++i) {
    s = transformer.Forward(std::span<const int32_t>(&token, 1), logits.data());
    token = static_cast<int32_t>(3 + (token * 31 + i) % (c.n_vocab - 3));
  }
  const double cpu2 = Seconds(CLOCK_PROCESS_CPUTIME_ID), wall2 = Seconds(CLOCK_MONOTONIC);
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  std::printf("prefill %d tokens: %.0f tokens per CPU-second (%.1f ms CPU, %.1f ms wall)\n",
              n_prompt, n_prompt / (cpu1 - cpu0), (cpu1 - cpu0) * 1e3, (wall1 - wall0) * 1e3);
  if (n_decode > 0) {
    std::printf("decode %d tokens: %.0f tokens per CPU-second (%.3f ms CPU, %.3f ms wall per token)\n",
                n_decode, n_decode / (cpu2 - cpu1), (cpu2 - cpu1) * 1e3 / n_decode,
                (wall2 - wall1) * 1e3 / n_decode);
  }
  return 0;
}
