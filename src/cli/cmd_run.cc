// dualblade run: generate text with a GGUF model, streaming tokens as they are chosen, then report
// prompt and generation speed and the KV traffic per path (--stats-json for tools).
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "common/units.h"
#include "compute/thread_pool.h"
#include "engine/kv_cache.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "engine/session.h"
#include "engine/store_kv_cache.h"
#include "model/tokenizer.h"
#include "model/vocab.h"

namespace dualblade::cli {
namespace {

struct RunArgs {
  std::string model;
  std::string prompt;
  std::string prompt_file;
  int n_predict = 64;
  int64_t n_ctx = 0;
  int n_threads = 0;
  uint64_t seed = 0;
  float temperature = 0.8f;
  int top_k = 40;
  float top_p = 0.95f;
  std::string kv_store;
  std::string mem_budget;
  std::string kv_policy = "dual";
  bool kv_policy_given = false;  // --kv-policy on the command line
  std::string prefetch_depth = "auto";
  std::string kv_type = "f16";  // as llama.cpp: half the KV bytes to store and read
  int chunk_tokens = 256;
  std::string matmul = "auto";
  std::string stats_json;
  bool no_echo = false;
};

Result<std::string> ReadPrompt(const RunArgs& a) {
  if (!a.prompt.empty() && !a.prompt_file.empty()) {
    return Status::InvalidArgument("give the prompt with -p or -f, not both");
  }
  if (a.prompt_file.empty()) return a.prompt;
  std::ifstream in(a.prompt_file, std::ios::binary);
  if (!in) return Status::NotFound("cannot read the prompt file " + a.prompt_file);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// "auto" (the adaptive controller) or a number of layers read ahead.
Result<int> ParsePrefetchDepth(const std::string& s) {
  if (s == "auto") return engine::StoreKvCacheOptions::kAutoPrefetch;
  int depth = 0;
  size_t used = 0;
  try {
    depth = std::stoi(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != s.size() || depth < 0 || depth > 64) {
    return Status::InvalidArgument("--prefetch-depth must be auto or a number of layers from 0 "
                                   "to 64, not '" + s + "'");
  }
  return depth;
}

Result<compute::MatmulMode> ParseMatmul(const std::string& s) {
  if (s == "auto") return compute::MatmulMode::kAuto;
  if (s == "quantized") return compute::MatmulMode::kQuantizedActivations;
  if (s == "f32") return compute::MatmulMode::kF32;
  return Status::InvalidArgument("--matmul must be auto, quantized or f32, not '" + s + "'");
}

// Where `run` looks for a store when --kv-store is not given (create it with `dualblade format`).
constexpr const char* kDefaultStore = "dualblade-data/kv.store";

// The KV cache for --kv-policy: RAM for `memory`, a sequence in the KV store for the others.
// RESERVES: what the run keeps in memory besides the KV cache, for the dual policy's headroom.
Result<std::unique_ptr<engine::KvCache>> MakeKvCache(
    const RunArgs& a, const engine::KvGeometry& g, const std::string& model_identity,
    const std::vector<engine::MemoryReservation>& reserves) {
  uint64_t budget_bytes = 0;
  if (!a.mem_budget.empty()) {
    Result<uint64_t> parsed = ParseSize(a.mem_budget);
    if (!parsed.ok()) return Status::InvalidArgument("--mem-budget " + parsed.status().message());
    budget_bytes = *parsed;
    if (budget_bytes == 0) return Status::InvalidArgument("--mem-budget must be positive");
  }
  DB_ASSIGN_OR_RETURN(const int prefetch_depth, ParsePrefetchDepth(a.prefetch_depth));
  if (a.kv_policy == "memory") return engine::NewMemoryKvCache(g);
  if (a.kv_policy == "dual" || a.kv_policy == "pagecache" || a.kv_policy == "direct") {
    const std::string store = a.kv_store.empty() ? kDefaultStore : a.kv_store;
    if (a.kv_store.empty() && access(store.c_str(), F_OK) != 0) {
      if (a.kv_policy_given) {
        return Status::NotFound("no KV store at " + store + ": create one with 'dualblade format " +
                                store + " --size 4G' or pass --kv-store");
      }
      // The default policy without any store: a first run should work, not demand a format
      // step, so keep the KV in RAM and say how to offload it.
      std::fprintf(stderr,
                   "note: no KV store at %s, so the KV cache stays in memory; create one with "
                   "'dualblade format %s --size 4G' (or pass --kv-store) to offload it\n",
                   store.c_str(), store.c_str());
      return engine::NewMemoryKvCache(g);
    }
    engine::StoreKvCacheOptions opts;
    opts.policy = a.kv_policy;
    opts.model_identity = model_identity;
    opts.mem_budget_bytes = budget_bytes;
    opts.reserves = reserves;
    opts.prefetch_depth = prefetch_depth;
    DB_ASSIGN_OR_RETURN(auto cache, engine::StoreKvCache::Open(store, g, opts));
    return std::unique_ptr<engine::KvCache>(std::move(cache));
  }
  return Status::InvalidArgument("--kv-policy must be dual, pagecache, direct or memory, not '" +
                                 a.kv_policy + "'");
}

Status Run(const RunArgs& a) {
  DB_ASSIGN_OR_RETURN(std::string text, ReadPrompt(a));
  DB_ASSIGN_OR_RETURN(compute::MatmulMode mode, ParseMatmul(a.matmul));
  if (a.kv_type != "f32" && a.kv_type != "f16") {
    return Status::InvalidArgument("--kv-type must be f32 or f16, not '" + a.kv_type + "'");
  }
  if (a.n_predict < 0) return Status::InvalidArgument("-n must not be negative");
  if (a.chunk_tokens <= 0) return Status::InvalidArgument("--chunk-tokens must be positive");
  DB_ASSIGN_OR_RETURN(auto model, engine::Model::Open(a.model));
  const engine::ModelConfig& c = model->config();
  DB_ASSIGN_OR_RETURN(Vocab vocab, LoadVocab(model->gguf()));
  DB_ASSIGN_OR_RETURN(auto tokenizer, Tokenizer::Create(vocab));
  std::vector<int32_t> prompt = tokenizer->Tokenize(text, /*add_special=*/true);
  if (prompt.empty()) {
    return Status::InvalidArgument("the prompt is empty and the model adds no BOS token");
  }
  int64_t n_ctx = a.n_ctx;
  if (n_ctx <= 0) n_ctx = static_cast<int64_t>(prompt.size()) + a.n_predict;
  if (static_cast<int64_t>(prompt.size()) > n_ctx) {
    return Status::InvalidArgument("the prompt has " + std::to_string(prompt.size()) +
                                   " tokens, more than the context of " + std::to_string(n_ctx) +
                                   " (-c)");
  }
  engine::KvGeometry g;
  g.n_layer = static_cast<int>(c.n_layer);
  g.n_head_kv = static_cast<int>(c.n_head_kv);
  g.head_dim = static_cast<int>(c.n_embd_head);
  g.chunk_tokens = a.chunk_tokens;
  g.type = a.kv_type == "f16" ? compute::KvElemType::kF16 : compute::KvElemType::kF32;
  g.n_ctx = n_ctx;
  // The weights are the GGUF mmapped: page cache that must stay. Activations are the
  // transformer's per-micro-batch buffers (see Transformer::Forward) and the logits.
  std::vector<engine::MemoryReservation> reserves;
  struct stat model_stat {};
  if (::stat(a.model.c_str(), &model_stat) == 0) {
    reserves.push_back({"weights", static_cast<uint64_t>(model_stat.st_size),
                        ReserveKind::kFileBacked});
  }
  const auto ubatch = static_cast<uint64_t>(
      std::min<int64_t>(engine::SessionOptions{}.n_ubatch, static_cast<int64_t>(prompt.size())));
  const uint64_t act_floats =
      ubatch * (3 * uint64_t(c.n_embd) + 2 * uint64_t(c.n_embd_q()) +
                2 * uint64_t(c.n_embd_kv()) + 2 * uint64_t(c.n_ff)) +
      uint64_t(c.n_vocab) + uint64_t(n_ctx) * uint64_t(c.n_head);
  reserves.push_back({"activations", act_floats * sizeof(float), ReserveKind::kAnon});
  DB_ASSIGN_OR_RETURN(auto kv, MakeKvCache(a, g, model->display_name(), reserves));

  const int n_threads =
      a.n_threads > 0 ? a.n_threads
                      : static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 8u));
  compute::ThreadPool pool(n_threads);
  engine::SessionOptions options;
  options.mode = mode;
  engine::Session session(*model, std::move(kv), &pool, options);
  engine::SamplerConfig sc;
  sc.temperature = a.temperature;
  sc.top_k = a.top_k;
  sc.top_p = a.top_p;
  sc.seed = a.seed;
  engine::Sampler sampler(sc);

  if (!a.no_echo) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
  }
  const int64_t n_prompt = static_cast<int64_t>(prompt.size());
  const bool show_progress = n_prompt > options.n_ubatch;
  auto progress = [&](int64_t done, int64_t total) {
    if (!show_progress) return;
    std::fprintf(stderr, "\rprefill: %lld/%lld tokens", static_cast<long long>(done),
                 static_cast<long long>(total));
    if (done == total) std::fprintf(stderr, "\n");
  };
  auto is_end = [&](int32_t id) { return tokenizer->IsEog(id); };
  auto on_token = [&](int32_t id) {
    if (tokenizer->IsEog(id)) return;
    const std::string& piece = tokenizer->TokenToPiece(id, /*special=*/false);
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
  };
  Status st = session.Generate(prompt, a.n_predict, &sampler, is_end, on_token, progress);
  std::printf("\n");
  std::fflush(stdout);  // the summary goes to stderr; keep it after the generated text
  DB_RETURN_IF_ERROR(st);

  const engine::SessionStats& s = session.stats();
  const engine::KvStats kvs = session.kv().stats();
  const double prompt_tps = s.prefill_ms > 0 ? s.prompt_tokens / (s.prefill_ms / 1e3) : 0;
  const double decode_ms_per_token = s.decoded_tokens > 0 ? s.decode_ms / s.decoded_tokens : 0;
  const double gen_tps = decode_ms_per_token > 0 ? 1e3 / decode_ms_per_token : 0;
  const double hit_ratio =
      kvs.read_bytes_page > 0 ? double(kvs.pagecache_hit_bytes) / double(kvs.read_bytes_page) : 0;
  std::fprintf(stderr,
               "prompt: %lld tokens in %.1f ms (%.1f tokens/s); generation: %lld tokens in "
               "%.1f ms (%.1f tokens/s); %d threads\n",
               static_cast<long long>(s.prompt_tokens), s.prefill_ms, prompt_tps,
               static_cast<long long>(s.decoded_tokens), s.decode_ms, gen_tps, n_threads);
  std::fprintf(stderr,
               "KV (%s policy): read %s from memory, %s page cache, %s direct; page-cache hit "
               "ratio %.2f\n",
               session.kv().policy_name().c_str(), FormatBytes(kvs.read_bytes_memory).c_str(),
               FormatBytes(kvs.read_bytes_page).c_str(), FormatBytes(kvs.read_bytes_direct).c_str(),
               hit_ratio);
  if (session.kv().policy_name() != "memory") {
    std::fprintf(stderr, "KV reads: prefetch depth %u%s, %llu layer reads prefetched, %llu "
                 "discarded; stalled on reads %.1f ms in prefill, %.2f ms per decoded token\n",
                 kvs.prefetch_depth, a.prefetch_depth == "auto" ? " (auto)" : "",
                 static_cast<unsigned long long>(kvs.prefetch_used),
                 static_cast<unsigned long long>(kvs.prefetch_discarded), s.prefill_stall_ms,
                 s.decoded_tokens > 0 ? s.decode_stall_ms / double(s.decoded_tokens) : 0.0);
  }
  const auto* store_kv = dynamic_cast<const engine::StoreKvCache*>(&session.kv());
  const DualPlacement* placement = store_kv != nullptr ? store_kv->placement() : nullptr;
  nlohmann::json placement_json = nullptr;
  // The adaptive depth's last decision and the per-layer times it was made from.
  nlohmann::json controller_json = nullptr;
  if (store_kv != nullptr && store_kv->controller() != nullptr) {
    const ControllerDecision& d = store_kv->controller()->last_decision();
    controller_json = {{"decisions", store_kv->controller()->decisions()},
                       {"wanted_depth", d.wanted_depth},
                       {"memory_cap_depth", d.memory_cap_depth},
                       {"io_us_per_layer", d.io_us_ewma},
                       {"compute_us_per_layer", d.compute_us_ewma},
                       {"stall_us_per_layer", d.stall_us_ewma}};
  }
  if (placement != nullptr) {
    const PlacementPlan& plan = store_kv->last_plan();
    std::fprintf(stderr,
                 "KV placement: %llu chunks PAGE, %llu DIRECT; PAGE budget %s; %llu transitions "
                 "over %llu plans\n",
                 static_cast<unsigned long long>(placement->page_chunks()),
                 static_cast<unsigned long long>(placement->direct_chunks()),
                 FormatBytes(plan.page_budget_bytes).c_str(),
                 static_cast<unsigned long long>(placement->transitions()),
                 static_cast<unsigned long long>(store_kv->replans()));
    placement_json = {{"page_chunks", placement->page_chunks()},
                      {"direct_chunks", placement->direct_chunks()},
                      {"page_budget_bytes", plan.page_budget_bytes},
                      {"page_bytes", plan.page_bytes},
                      {"transitions", placement->transitions()},
                      {"replans", store_kv->replans()}};
  }

  if (!a.stats_json.empty()) {
    nlohmann::json j = {
        {"model", model->display_name()},
        {"policy", session.kv().policy_name()},
        {"prompt_ids", prompt},
        {"generated_ids", session.generated()},
        {"generated_text", tokenizer->Detokenize(session.generated())},
        {"prompt_tokens", s.prompt_tokens},
        {"reused_tokens", 0},
        {"ttft_ms", s.ttft_ms},
        {"prefill_ms", s.prefill_ms},
        {"prompt_tokens_per_s", prompt_tps},
        {"decode_ms_per_token", decode_ms_per_token},
        {"tokens_per_s", gen_tps},
        {"n_threads", n_threads},
        {"n_ctx", n_ctx},
        {"kv_read_bytes",
         {{"page", kvs.read_bytes_page},
          {"direct", kvs.read_bytes_direct},
          {"memory", kvs.read_bytes_memory}}},
        {"kv_write_bytes", {{"page", kvs.write_bytes_page}, {"direct", kvs.write_bytes_direct}}},
        {"pagecache_hit_ratio", hit_ratio},
        {"stall_ms", kvs.stall_ms},
        {"prefill_stall_ms", s.prefill_stall_ms},
        {"decode_stall_ms_per_token",
         s.decoded_tokens > 0 ? s.decode_stall_ms / double(s.decoded_tokens) : 0.0},
        {"prefetch_depth", kvs.prefetch_depth},
        {"prefetch", {{"mode", a.kv_policy == "memory" ? "none" : a.prefetch_depth},
                      {"used", kvs.prefetch_used},
                      {"discarded", kvs.prefetch_discarded},
                      {"controller", controller_json}}},
        {"kv_placement", placement_json}};
    const std::string tmp = a.stats_json + ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      // Generated bytes need not be valid UTF-8 (byte tokens): replace what JSON cannot hold.
      out << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
      if (!out) return Status::IOError("cannot write " + tmp);
    }
    if (std::rename(tmp.c_str(), a.stats_json.c_str()) != 0) {
      return ErrnoStatus("rename " + tmp + " to " + a.stats_json, errno);
    }
  }
  return Status::OK();
}

}  // namespace

void AddRunCommand(CLI::App& app, int* exit_code) {
  auto a = std::make_shared<RunArgs>();
  CLI::App* cmd = app.add_subcommand(
      "run", "Generate text with a GGUF model (llama, qwen2), streaming tokens as they come.");
  cmd->add_option("-m,--model", a->model, "Model file (GGUF)")->required();
  cmd->add_option("-p,--prompt", a->prompt, "Prompt text");
  cmd->add_option("-f,--file", a->prompt_file, "Read the prompt from this file");
  cmd->add_option("-n,--n-predict", a->n_predict, "Tokens to generate")->capture_default_str();
  cmd->add_option("-c,--ctx-size", a->n_ctx, "Context size in tokens (default: prompt + -n)");
  cmd->add_option("-t,--threads", a->n_threads, "Threads (default: CPUs, at most 8)");
  cmd->add_option("--seed", a->seed, "Sampling seed")->capture_default_str();
  cmd->add_option("--temp", a->temperature, "Temperature; 0 = greedy")->capture_default_str();
  cmd->add_option("--top-k", a->top_k, "Top-k cut; 0 = off")->capture_default_str();
  cmd->add_option("--top-p", a->top_p, "Top-p (nucleus) cut; 1 = off")->capture_default_str();
  cmd->add_option("--kv-store", a->kv_store, "KV store (raw block device or store file)");
  cmd->add_option("--mem-budget", a->mem_budget, "Memory budget (K, M, G suffixes)");
  cmd->add_option("--kv-policy", a->kv_policy,
                  "dual, pagecache, direct or memory (dual keeps the KV in RAM when no store "
                  "exists and neither --kv-store nor --kv-policy is given)")
      ->capture_default_str();
  cmd->add_option("--prefetch-depth", a->prefetch_depth,
                  "Layers whose KV reads run ahead of the layer computing: auto or a number")
      ->capture_default_str();
  cmd->add_option("--kv-type", a->kv_type, "KV element type: f32 or f16")->capture_default_str();
  cmd->add_option("--chunk-tokens", a->chunk_tokens, "Tokens per KV chunk")->capture_default_str();
  cmd->add_option("--matmul", a->matmul,
                  "auto (BLAS prefill, quantized decode), quantized (llama.cpp's CPU arithmetic) "
                  "or f32 (dequantized weights)")
      ->capture_default_str();
  cmd->add_option("--stats-json", a->stats_json, "Write run statistics to this JSON file");
  cmd->add_flag("--no-echo", a->no_echo, "Do not print the prompt before the generated text");
  cmd->callback([a, cmd, exit_code] {
    a->kv_policy_given = cmd->count("--kv-policy") > 0;
    *exit_code = ReportError("run", Run(*a));
  });
}

}  // namespace dualblade::cli
