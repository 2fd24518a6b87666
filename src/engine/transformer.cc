#include "engine/transformer.h"

#include <cmath>
#include <functional>

#include "common/check.h"
#include "compute/attention.h"
#include "compute/ops.h"

namespace dualblade::engine {
namespace {

void AddBias(float* rows, const float* bias, int64_t n_rows, int64_t width) {
  if (bias == nullptr) return;
  for (int64_t r = 0; r < n_rows; ++r) compute::AddInPlace(rows + r * width, bias, width);
}

}  // namespace

Status CheckKvGeometry(const ModelConfig& c, const KvGeometry& g) {
  if (g.n_layer != c.n_layer || g.n_head_kv != c.n_head_kv || g.head_dim != c.n_embd_head) {
    return Status::InvalidArgument("the KV cache geometry does not match the model");
  }
  return Status::OK();
}

Transformer::Transformer(const Model& model, KvCache* kv, compute::ThreadPool* pool,
                         compute::MatmulMode mode)
    : model_(model),
      c_(model.config()),
      kv_(kv),
      pool_(pool),
      matmul_(mode),
      rope_(model.rope()) {
  DB_CHECK(CheckKvGeometry(c_, kv_->geometry()).ok());
}

Status Transformer::Forward(std::span<const int32_t> tokens, float* logits) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n == 0) return Status::InvalidArgument("no tokens to run");
  const int64_t pos0 = n_past();
  if (pos0 + n > kv_->geometry().n_ctx) {
    return Status::NoSpace("the context holds " + std::to_string(kv_->geometry().n_ctx) +
                           " tokens; " + std::to_string(pos0 + n) + " are needed (raise -c)");
  }
  const ModelWeights& w = model_.weights();
  const int64_t n_embd = c_.n_embd;
  x_.resize(n * n_embd);
  xn_.resize(n * n_embd);
  q_.resize(n * c_.n_embd_q());
  k_.resize(n * c_.n_embd_kv());
  v_.resize(n * c_.n_embd_kv());
  attn_.resize(n * c_.n_embd_q());
  gate_.resize(n * c_.n_ff);
  up_.resize(n * c_.n_ff);
  out_.resize(n * std::max(n_embd, c_.n_embd_q()));

  for (int64_t t = 0; t < n; ++t) {
    const int32_t id = tokens[t];
    if (id < 0 || id >= c_.n_vocab) {
      return Status::InvalidArgument("token id " + std::to_string(id) +
                                     " is outside the vocabulary of " +
                                     std::to_string(c_.n_vocab));
    }
    compute::DequantizeRow(w.token_embd.type, w.token_embd.data + id * w.token_embd.row_bytes,
                           x_.data() + t * n_embd, n_embd);
  }

  for (int64_t il = 0; il < c_.n_layer; ++il) {
    const LayerWeights& l = w.layers[il];
    for (int64_t t = 0; t < n; ++t) {
      compute::RmsNorm(x_.data() + t * n_embd, l.attn_norm, n_embd, c_.rms_eps,
                       xn_.data() + t * n_embd);
    }
    matmul_.Run(l.wq, xn_.data(), n, q_.data(), pool_);
    matmul_.Run(l.wk, xn_.data(), n, k_.data(), pool_);
    matmul_.Run(l.wv, xn_.data(), n, v_.data(), pool_);
    AddBias(q_.data(), l.bq, n, c_.n_embd_q());
    AddBias(k_.data(), l.bk, n, c_.n_embd_kv());
    AddBias(v_.data(), l.bv, n, c_.n_embd_kv());
    for (int64_t t = 0; t < n; ++t) {
      rope_.Apply(q_.data() + t * c_.n_embd_q(), static_cast<int>(c_.n_head),
                  static_cast<int>(c_.n_embd_head), pos0 + t);
      rope_.Apply(k_.data() + t * c_.n_embd_kv(), static_cast<int>(c_.n_head_kv),
                  static_cast<int>(c_.n_embd_head), pos0 + t);
    }
    DB_RETURN_IF_ERROR(Attention(static_cast<int>(il), n, pos0));

    // Only the last token's hidden state feeds the logits: the last layer finishes it alone
    // (llama.cpp does the same with its output ids), the other rows being independent.
    int64_t rows = n;
    float* x = x_.data();
    const float* attn = attn_.data();
    if (il == c_.n_layer - 1 && n > 1) {
      rows = 1;
      x += (n - 1) * n_embd;
      attn += (n - 1) * c_.n_embd_q();
    }
    matmul_.Run(l.wo, attn, rows, out_.data(), pool_);
    compute::AddInPlace(x, out_.data(), rows * n_embd);
    for (int64_t t = 0; t < rows; ++t) {
      compute::RmsNorm(x + t * n_embd, l.ffn_norm, n_embd, c_.rms_eps, xn_.data() + t * n_embd);
    }
    matmul_.Run(l.w_gate, xn_.data(), rows, gate_.data(), pool_);
    matmul_.Run(l.w_up, xn_.data(), rows, up_.data(), pool_);
    compute::SwiGlu(gate_.data(), up_.data(), rows * c_.n_ff, gate_.data());
    matmul_.Run(l.w_down, gate_.data(), rows, out_.data(), pool_);
    compute::AddInPlace(x, out_.data(), rows * n_embd);
  }

  if (logits != nullptr) {
    const float* last = x_.data() + (n - 1) * n_embd;
    compute::RmsNorm(last, w.output_norm, n_embd, c_.rms_eps, xn_.data());
    matmul_.Run(w.output, xn_.data(), 1, logits, pool_);
  }
  return Status::OK();
}

Status Transformer::Attention(int layer, int64_t n_tokens, int64_t pos0) {
  const KvGeometry& g = kv_->geometry();
  const int64_t n_kv = c_.n_embd_kv() * n_tokens;
  if (g.type == compute::KvElemType::kF16) {
    k16_.resize(n_kv);
    v16_.resize(n_kv);
    compute::Fp32ToFp16Row(k_.data(), k16_.data(), n_kv);
    compute::Fp32ToFp16Row(v_.data(), v16_.data(), n_kv);
    DB_RETURN_IF_ERROR(kv_->Append(layer, k16_.data(), v16_.data(), static_cast<int>(n_tokens)));
  } else {
    DB_RETURN_IF_ERROR(kv_->Append(layer, k_.data(), v_.data(), static_cast<int>(n_tokens)));
  }
  const int64_t n_ctx = pos0 + n_tokens;
  const int64_t n_chunks = (n_ctx + g.chunk_tokens - 1) / g.chunk_tokens;
  compute::AttentionShape shape;
  shape.n_head = static_cast<int>(c_.n_head);
  shape.n_head_kv = static_cast<int>(c_.n_head_kv);
  shape.head_dim = static_cast<int>(c_.n_embd_head);
  shape.scale = 1.0f / std::sqrt(static_cast<float>(c_.n_embd_head));
  shape.causal = true;
  attention_.Reset(shape, q_.data(), static_cast<int>(n_tokens), pos0, static_cast<int>(n_chunks),
                   pool_);
  auto on_chunk = [&](int64_t chunk, int64_t token_begin, int n, const void* k, const void* v) {
    attention_.Add(static_cast<int>(chunk), token_begin, n, g.type, k, v);
  };
  // std::ref: the callback wraps a reference, so no std::function allocation per layer and token.
  DB_RETURN_IF_ERROR(kv_->ReadChunks(layer, 0, n_ctx, std::ref(on_chunk)));
  attention_.Finish(attn_.data());
  return Status::OK();
}

}  // namespace dualblade::engine
