// Attention over a KV cache that arrives in chunks (token ranges) in any order, as the KV store
// completes its reads. Each chunk yields, per (query, head), a partial softmax state (running max
// m, sum s of exp(score - m), and o = sum of exp(score - m) * v); partials are merged strictly in
// chunk order, buffering chunks that arrive early, so the output is bit-identical whatever the
// arrival order, and one kernel serves every KV policy.
//
// Layout: a KV row is one token's n_head_kv * head_dim elements (f32 or f16); a chunk holds
// n_tokens consecutive rows of K and the same of V. Queries are [n_q, n_head, head_dim], query i at
// position q_pos0 + i; with causal masking it sees key tokens t <= q_pos0 + i. Query head h reads
// KV head h / (n_head / n_head_kv) (GQA, as ggml broadcasts).
//
// Thread-safety: one ChunkedAttention is driven by one thread; it parallelizes internally on the
// given pool.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "compute/attention_kernels.h"
#include "compute/thread_pool.h"

namespace dualblade::compute {

struct AttentionShape {
  int n_head = 0;
  int n_head_kv = 0;
  int head_dim = 0;
  float scale = 0.0f;  // usually 1/sqrt(head_dim)
  bool causal = true;
};

class ChunkedAttention {
 public:
  // q: [n_q, n_head, head_dim], must outlive this object. n_chunks: how many chunks Add will be
  // called with (indices 0..n_chunks-1, each once). pool may be null (single thread).
  ChunkedAttention(const AttentionShape& shape, const float* q, int n_q, int64_t q_pos0,
                   int n_chunks, ThreadPool* pool);
  // An object to Reset before use: the engine keeps one and resets it per layer, so its buffers
  // are allocated once rather than per layer and token.
  ChunkedAttention() = default;
  // Starts a new computation with the constructor's arguments; buffers are kept.
  void Reset(const AttentionShape& shape, const float* q, int n_q, int64_t q_pos0, int n_chunks,
             ThreadPool* pool);
  ChunkedAttention(const ChunkedAttention&) = delete;
  ChunkedAttention& operator=(const ChunkedAttention&) = delete;

  // Consumes chunk `chunk_index` = key tokens [token_begin, token_begin + n_tokens). Chunk indices
  // must be in token order (chunk i+1 follows chunk i). k/v are only read during the call.
  void Add(int chunk_index, int64_t token_begin, int n_tokens, KvElemType type, const void* k,
           const void* v);

  // REQUIRES: every chunk added. Writes out: [n_q, n_head, head_dim].
  void Finish(float* out);

 private:
  // Partial state of every (query, head): [n_q * n_head] of (m, s, o[head_dim]).
  using Partial = std::vector<float>;
  void ComputePartial(int64_t token_begin, int n_tokens, KvElemType type, const void* k,
                      const void* v, Partial* out);
  void Merge(const Partial& p);

  AttentionShape shape_;
  const float* q_ = nullptr;
  int n_q_ = 0;
  int64_t q_pos0_ = 0;
  int n_chunks_ = 0;
  ThreadPool* pool_ = nullptr;
  int stride_ = 0;  // floats per (query, head) state: 2 + head_dim
  HeadPartialFn kernel_ = nullptr;
  Partial acc_;
  int next_chunk_ = 0;
  std::map<int, Partial> early_;  // chunks that arrived before their predecessors
  Partial scratch_;  // partial of an in-order chunk, reused
  std::vector<std::vector<float>> scores_;  // per pool participant
};

// Plain reference: full softmax over keys [0, n_kv) in F32 and double sums. For tests.
void ReferenceAttention(const AttentionShape& shape, const float* q, int n_q, int64_t q_pos0,
                        const float* k, const float* v, int64_t n_kv, float* out);

}  // namespace dualblade::compute
