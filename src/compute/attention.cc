#include "compute/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "common/check.h"
#include "compute/ops.h"

namespace dualblade::compute {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Number of keys of a chunk starting at token_begin that query position q_pos may see.
inline int VisibleTokens(bool causal, int64_t q_pos, int64_t token_begin, int n_tokens) {
  if (!causal) return n_tokens;
  const int64_t visible = q_pos + 1 - token_begin;
  if (visible <= 0) return 0;
  return visible < n_tokens ? static_cast<int>(visible) : n_tokens;
}

}  // namespace

ChunkedAttention::ChunkedAttention(const AttentionShape& shape, const float* q, int n_q,
                                   int64_t q_pos0, int n_chunks, ThreadPool* pool) {
  Reset(shape, q, n_q, q_pos0, n_chunks, pool);
}

void ChunkedAttention::Reset(const AttentionShape& shape, const float* q, int n_q, int64_t q_pos0,
                             int n_chunks, ThreadPool* pool) {
  shape_ = shape;
  q_ = q;
  n_q_ = n_q;
  q_pos0_ = q_pos0;
  n_chunks_ = n_chunks;
  pool_ = pool;
  stride_ = 2 + shape.head_dim;
  kernel_ = GetHeadPartial();
  DB_CHECK(shape_.n_head > 0 && shape_.n_head_kv > 0 && shape_.n_head % shape_.n_head_kv == 0);
  DB_CHECK(shape_.head_dim > 0 && n_q_ > 0 && n_chunks_ >= 0);
  acc_.assign(static_cast<size_t>(n_q_) * shape_.n_head * stride_, 0.0f);
  for (size_t i = 0; i < acc_.size(); i += stride_) acc_[i] = kNegInf;
  next_chunk_ = 0;
  early_.clear();
}

void ChunkedAttention::Add(int chunk_index, int64_t token_begin, int n_tokens, KvElemType type,
                           const void* k, const void* v) {
  DB_CHECK(chunk_index >= next_chunk_ && chunk_index < n_chunks_);
  DB_CHECK(early_.count(chunk_index) == 0);
  if (chunk_index != next_chunk_) {
    Partial p;
    ComputePartial(token_begin, n_tokens, type, k, v, &p);
    early_.emplace(chunk_index, std::move(p));
    return;
  }
  ComputePartial(token_begin, n_tokens, type, k, v, &scratch_);
  Merge(scratch_);
  ++next_chunk_;
  for (auto it = early_.find(next_chunk_); it != early_.end(); it = early_.find(next_chunk_)) {
    Merge(it->second);
    early_.erase(it);
    ++next_chunk_;
  }
}

void ChunkedAttention::ComputePartial(int64_t token_begin, int n_tokens, KvElemType type,
                                      const void* k, const void* v, Partial* out) {
  const int head_dim = shape_.head_dim;
  const int gqa = shape_.n_head / shape_.n_head_kv;
  const int64_t kv_row = static_cast<int64_t>(shape_.n_head_kv) * head_dim;
  const int64_t elem_bytes = KvElemBytes(type);
  out->resize(acc_.size());
  float* dst = out->data();
  const size_t n_participants = pool_ != nullptr ? static_cast<size_t>(pool_->size()) : 1;
  if (scores_.size() < n_participants) scores_.resize(n_participants);
  for (size_t i = 0; i < n_participants; ++i) {
    if (scores_[i].size() < static_cast<size_t>(n_tokens)) scores_[i].resize(n_tokens);
  }
  // K and V are read in place (f16 converted as they are loaded): no chunk-sized copies.
  auto work = [&](int64_t begin, int64_t end, int participant) {
    HeadPartialArgs args;
    args.row_stride = kv_row;
    args.head_dim = head_dim;
    args.scale = shape_.scale;
    args.type = type;
    args.scores = scores_[participant].data();
    for (int64_t pair = begin; pair < end; ++pair) {
      const int64_t qi = pair / shape_.n_head;
      const int h = static_cast<int>(pair % shape_.n_head);
      const int64_t head_offset = static_cast<int64_t>(h / gqa) * head_dim * elem_bytes;
      float* st = dst + pair * stride_;
      const int n_vis = VisibleTokens(shape_.causal, q_pos0_ + qi, token_begin, n_tokens);
      if (n_vis == 0) {
        st[0] = kNegInf;
        st[1] = 0.0f;
        std::fill(st + 2, st + 2 + head_dim, 0.0f);
        continue;
      }
      args.q = q_ + pair * head_dim;
      args.k = static_cast<const uint8_t*>(k) + head_offset;
      args.v = static_cast<const uint8_t*>(v) + head_offset;
      args.n_keys = n_vis;
      kernel_(args, st);
    }
  };
  const int64_t n_pairs = static_cast<int64_t>(n_q_) * shape_.n_head;
  if (pool_ != nullptr) {
    // Same reasoning as the matmul grain: small slices cost more to hand out than to run.
    const int64_t work_per_pair = std::max<int64_t>(1, int64_t(n_tokens) * head_dim * 2);
    pool_->ParallelFor(n_pairs, work, std::max<int64_t>(1, (1 << 15) / work_per_pair));
  } else {
    work(0, n_pairs, 0);
  }
}

void ChunkedAttention::Merge(const Partial& p) {
  const int head_dim = shape_.head_dim;
  const int64_t n_pairs = static_cast<int64_t>(n_q_) * shape_.n_head;
  for (int64_t pair = 0; pair < n_pairs; ++pair) {
    float* a = acc_.data() + pair * stride_;
    const float* b = p.data() + pair * stride_;
    if (b[0] == kNegInf) continue;
    if (a[0] == kNegInf) {
      std::copy(b, b + stride_, a);
      continue;
    }
    const float m = std::max(a[0], b[0]);
    const float fa = std::exp(a[0] - m);
    const float fb = std::exp(b[0] - m);
    a[0] = m;
    a[1] = a[1] * fa + b[1] * fb;
    for (int d = 0; d < head_dim; ++d) a[2 + d] = a[2 + d] * fa + b[2 + d] * fb;
  }
}

void ChunkedAttention::Finish(float* out) {
  DB_CHECK_MSG(next_chunk_ == n_chunks_ && early_.empty(), "attention finished with chunks missing");
  const int head_dim = shape_.head_dim;
  const int64_t n_pairs = static_cast<int64_t>(n_q_) * shape_.n_head;
  for (int64_t pair = 0; pair < n_pairs; ++pair) {
    const float* a = acc_.data() + pair * stride_;
    float* o = out + pair * head_dim;
    const float inv = a[1] > 0.0f ? 1.0f / a[1] : 0.0f;
    for (int d = 0; d < head_dim; ++d) o[d] = a[2 + d] * inv;
  }
}

void ReferenceAttention(const AttentionShape& shape, const float* q, int n_q, int64_t q_pos0,
                        const float* k, const float* v, int64_t n_kv, float* out) {
  const int head_dim = shape.head_dim;
  const int gqa = shape.n_head / shape.n_head_kv;
  const int64_t kv_row = static_cast<int64_t>(shape.n_head_kv) * head_dim;
  std::vector<double> scores(static_cast<size_t>(n_kv));
  for (int qi = 0; qi < n_q; ++qi) {
    for (int h = 0; h < shape.n_head; ++h) {
      const float* qv = q + (static_cast<int64_t>(qi) * shape.n_head + h) * head_dim;
      const int kvh = h / gqa;
      int64_t n_vis = n_kv;
      if (shape.causal) n_vis = std::min<int64_t>(n_kv, q_pos0 + qi + 1);
      double m = -std::numeric_limits<double>::infinity();
      for (int64_t t = 0; t < n_vis; ++t) {
        double dot = 0.0;
        for (int d = 0; d < head_dim; ++d) dot += double(qv[d]) * k[t * kv_row + kvh * head_dim + d];
        scores[t] = dot * shape.scale;
        m = std::max(m, scores[t]);
      }
      double sum = 0.0;
      for (int64_t t = 0; t < n_vis; ++t) sum += (scores[t] = std::exp(scores[t] - m));
      float* o = out + (static_cast<int64_t>(qi) * shape.n_head + h) * head_dim;
      for (int d = 0; d < head_dim; ++d) {
        double acc = 0.0;
        for (int64_t t = 0; t < n_vis; ++t) acc += scores[t] * v[t * kv_row + kvh * head_dim + d];
        o[d] = n_vis > 0 ? static_cast<float>(acc / sum) : 0.0f;
      }
    }
  }
}

}  // namespace dualblade::compute
