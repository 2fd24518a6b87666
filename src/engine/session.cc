#include "engine/session.h"

#include <algorithm>

#include "common/clock.h"

namespace dualblade::engine {

Session::Session(const Model& model, std::unique_ptr<KvCache> kv, compute::ThreadPool* pool,
                 const SessionOptions& options)
    : model_(model),
      kv_(std::move(kv)),
      options_(options),
      transformer_(model, kv_.get(), pool, options.mode),
      logits_(static_cast<size_t>(model.config().n_vocab)) {}

Status Session::Prefill(std::span<const int32_t> prompt, const ProgressFn& progress) {
  if (prompt.empty()) return Status::InvalidArgument("the prompt has no tokens");
  Stopwatch sw;
  const double stall0 = kv_->stats().stall_ms;
  const int64_t n = static_cast<int64_t>(prompt.size());
  const int64_t ubatch = std::max(1, options_.n_ubatch);
  for (int64_t done = 0; done < n;) {
    const int64_t len = std::min(ubatch, n - done);
    const bool last = done + len == n;
    DB_RETURN_IF_ERROR(transformer_.Forward(prompt.subspan(done, len),
                                            last ? logits_.data() : nullptr));
    done += len;
    if (progress) progress(done, n);
  }
  stats_.prompt_tokens += n;
  stats_.prefill_ms += sw.ElapsedMillis();
  stats_.prefill_stall_ms += kv_->stats().stall_ms - stall0;
  return Status::OK();
}

Status Session::Decode(int32_t token) {
  Stopwatch sw;
  const double stall0 = kv_->stats().stall_ms;
  const int32_t one[1] = {token};
  DB_RETURN_IF_ERROR(transformer_.Forward(one, logits_.data()));
  stats_.decoded_tokens += 1;
  stats_.decode_ms += sw.ElapsedMillis();
  stats_.decode_stall_ms += kv_->stats().stall_ms - stall0;
  return Status::OK();
}

Status Session::Generate(std::span<const int32_t> prompt, int n_predict, Sampler* sampler,
                         const EndFn& is_end, const TokenFn& on_token,
                         const ProgressFn& progress) {
  Stopwatch total;
  DB_RETURN_IF_ERROR(Prefill(prompt, progress));
  const int64_t n_ctx = kv_->geometry().n_ctx;
  for (int i = 0; i < n_predict; ++i) {
    const int32_t id = sampler->Sample(logits_.data(), model_.config().n_vocab);
    if (i == 0) stats_.ttft_ms = total.ElapsedMillis();
    generated_.push_back(id);
    if (on_token) on_token(id);
    if ((is_end && is_end(id)) || i + 1 == n_predict || n_past() >= n_ctx) break;
    DB_RETURN_IF_ERROR(Decode(id));
  }
  return Status::OK();
}

}  // namespace dualblade::engine
