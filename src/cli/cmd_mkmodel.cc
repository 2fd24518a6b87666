// dualblade mkmodel: writes a random-weight `llama` model (a preset's shapes or explicit ones) in
// a chosen storage type, for tests and benchmarks. llama.cpp loads the result too.
#include <cstdio>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "common/units.h"
#include "engine/random_model.h"
#include "model/ggml_types.h"

namespace dualblade::cli {
namespace {

struct MkmodelArgs {
  std::string out;
  std::string preset;
  int64_t layers = 0, dim = 0, heads = 0, kv_heads = 0, ff = 0, vocab = 0;
  std::string type = "f32";
  uint64_t seed = 1;
};

Status Mkmodel(const MkmodelArgs& a) {
  engine::RandomModelSpec spec;
  if (!a.preset.empty()) {
    DB_ASSIGN_OR_RETURN(spec, engine::RandomModelPreset(a.preset));
  } else if (a.layers == 0 || a.dim == 0 || a.heads == 0 || a.ff == 0 || a.vocab == 0) {
    return Status::InvalidArgument(
        "give --preset NAME, or all of --layers, --dim, --heads, --ff and --vocab");
  } else {
    spec.name = "dualblade-custom";
  }
  // Explicit dimensions override the preset's.
  if (a.layers > 0) spec.n_layer = a.layers;
  if (a.dim > 0) spec.n_embd = a.dim;
  if (a.heads > 0) spec.n_head = a.heads;
  spec.n_head_kv = a.kv_heads > 0 ? a.kv_heads : (a.preset.empty() ? spec.n_head : spec.n_head_kv);
  if (a.ff > 0) spec.n_ff = a.ff;
  if (a.vocab > 0) spec.n_vocab = a.vocab;
  if (a.type == "q4_k_m" || a.type == "Q4_K_M") {
    spec.q4_k_m = true;
    spec.type = GgmlType::kQ4_K;
  } else {
    auto type = GgmlTypeFromName(a.type);
    if (!type.ok()) return Status::InvalidArgument("unknown --type '" + a.type + "'");
    spec.type = *type;
  }
  spec.seed = a.seed;
  DB_RETURN_IF_ERROR(engine::WriteRandomModel(spec, a.out));
  std::printf("%s: llama, %lld layers, dim %lld, %lld heads (%lld KV), ff %lld, vocab %lld, %s\n",
              a.out.c_str(), static_cast<long long>(spec.n_layer),
              static_cast<long long>(spec.n_embd), static_cast<long long>(spec.n_head),
              static_cast<long long>(spec.n_head_kv), static_cast<long long>(spec.n_ff),
              static_cast<long long>(spec.n_vocab),
              spec.q4_k_m ? "Q4_K_M" : GgmlTypeName(spec.type).c_str());
  return Status::OK();
}

}  // namespace

void AddMkmodelCommand(CLI::App& app, int* exit_code) {
  auto a = std::make_shared<MkmodelArgs>();
  CLI::App* cmd = app.add_subcommand(
      "mkmodel", "Write a random-weight llama model (GGUF, loadable by llama.cpp) for tests and "
                 "benchmarks.");
  cmd->add_option("--out", a->out, "Output file (.gguf)")->required();
  cmd->add_option("--preset", a->preset, "tiny, kv-heavy or llama-3.2-1b");
  cmd->add_option("--layers", a->layers, "Transformer blocks");
  cmd->add_option("--dim", a->dim, "Embedding width");
  cmd->add_option("--heads", a->heads, "Attention heads");
  cmd->add_option("--kv-heads", a->kv_heads, "KV heads (default: heads, or the preset's)");
  cmd->add_option("--ff", a->ff, "Feed-forward width");
  cmd->add_option("--vocab", a->vocab, "Vocabulary size (at least 259)");
  cmd->add_option("--type", a->type,
                  "f32, f16, bf16, q8_0, q4_0 or q4_k_m (llama.cpp's Q4_K/Q6_K mixture)")
      ->capture_default_str();
  cmd->add_option("--seed", a->seed, "Weight seed")->capture_default_str();
  cmd->callback([a, exit_code] { *exit_code = ReportError("mkmodel", Mkmodel(*a)); });
}

}  // namespace dualblade::cli
