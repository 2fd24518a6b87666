#include "compute/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "compute/ops.h"

namespace dualblade::compute {
namespace {

struct Case {
  AttentionShape shape;
  int n_q;
  int64_t q_pos0;
  int64_t n_kv;
  int chunk_tokens;
};

std::vector<float> Random(size_t n, std::mt19937& rng, float scale) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// Runs chunked attention with chunks delivered in `order`.
std::vector<float> RunChunked(const Case& c, const std::vector<float>& q, const void* k,
                              const void* v, KvElemType type, const std::vector<int>& order,
                              ThreadPool* pool) {
  const int64_t row = int64_t(c.shape.n_head_kv) * c.shape.head_dim * KvElemBytes(type);
  const int n_chunks = static_cast<int>((c.n_kv + c.chunk_tokens - 1) / c.chunk_tokens);
  ChunkedAttention attn(c.shape, q.data(), c.n_q, c.q_pos0, n_chunks, pool);
  for (int ci : order) {
    const int64_t begin = int64_t(ci) * c.chunk_tokens;
    const int n = static_cast<int>(std::min<int64_t>(c.chunk_tokens, c.n_kv - begin));
    attn.Add(ci, begin, n, type, static_cast<const char*>(k) + begin * row,
             static_cast<const char*>(v) + begin * row);
  }
  std::vector<float> out(size_t(c.n_q) * c.shape.n_head * c.shape.head_dim);
  attn.Finish(out.data());
  return out;
}

TEST(ChunkedAttentionTest, BitIdenticalAcrossArrivalOrdersAndCloseToReference) {
  std::mt19937 rng(42);
  const Case cases[] = {
      {{8, 4, 8, 1.0f / std::sqrt(8.0f), true}, 1, 99, 100, 16},     // decode, GQA 2:1
      {{4, 1, 64, 1.0f / 8.0f, true}, 1, 299, 300, 64},              // decode, GQA 4:1
      {{4, 2, 64, 1.0f / 8.0f, true}, 37, 40, 77, 16},               // prefill after a prefix
      {{2, 2, 32, 1.0f / std::sqrt(32.0f), false}, 3, 0, 50, 7},     // non-causal
  };
  ThreadPool pool(3);
  for (const Case& c : cases) {
    const size_t kv_elems = size_t(c.n_kv) * c.shape.n_head_kv * c.shape.head_dim;
    auto q = Random(size_t(c.n_q) * c.shape.n_head * c.shape.head_dim, rng, 1.0f);
    auto k = Random(kv_elems, rng, 1.0f);
    auto v = Random(kv_elems, rng, 1.0f);
    const int n_chunks = static_cast<int>((c.n_kv + c.chunk_tokens - 1) / c.chunk_tokens);
    std::vector<int> order(n_chunks);
    for (int i = 0; i < n_chunks; ++i) order[i] = i;
    auto base = RunChunked(c, q, k.data(), v.data(), KvElemType::kF32, order, nullptr);
    std::vector<float> ref(base.size());
    ReferenceAttention(c.shape, q.data(), c.n_q, c.q_pos0, k.data(), v.data(), c.n_kv, ref.data());
    for (size_t i = 0; i < ref.size(); ++i) ASSERT_NEAR(base[i], ref[i], 1e-5) << i;
    for (int trial = 0; trial < 10; ++trial) {
      std::shuffle(order.begin(), order.end(), rng);
      auto got = RunChunked(c, q, k.data(), v.data(), KvElemType::kF32, order,
                            trial % 2 ? &pool : nullptr);
      ASSERT_EQ(0, std::memcmp(got.data(), base.data(), base.size() * sizeof(float)))
          << "arrival order changed the bits, trial " << trial;
    }
    // F16 storage: same bits whatever the order, and close to the reference on rounded inputs.
    std::vector<uint16_t> k16(kv_elems), v16(kv_elems);
    Fp32ToFp16Row(k.data(), k16.data(), int64_t(kv_elems));
    Fp32ToFp16Row(v.data(), v16.data(), int64_t(kv_elems));
    std::sort(order.begin(), order.end());
    auto base16 = RunChunked(c, q, k16.data(), v16.data(), KvElemType::kF16, order, &pool);
    std::vector<float> kr(kv_elems), vr(kv_elems);
    Fp16ToFp32Row(k16.data(), kr.data(), int64_t(kv_elems));
    Fp16ToFp32Row(v16.data(), vr.data(), int64_t(kv_elems));
    ReferenceAttention(c.shape, q.data(), c.n_q, c.q_pos0, kr.data(), vr.data(), c.n_kv, ref.data());
    for (size_t i = 0; i < ref.size(); ++i) ASSERT_NEAR(base16[i], ref[i], 1e-5) << i;
    std::reverse(order.begin(), order.end());
    auto rev16 = RunChunked(c, q, k16.data(), v16.data(), KvElemType::kF16, order, nullptr);
    ASSERT_EQ(0, std::memcmp(rev16.data(), base16.data(), base16.size() * sizeof(float)));
  }
}

TEST(ChunkedAttentionTest, FullyMaskedChunksContributeNothing) {
  // Query at position 3 over 32 keys in chunks of 8: chunks 1..3 are entirely in its future.
  AttentionShape shape{2, 1, 8, 0.35f, true};
  std::mt19937 rng(7);
  auto q = Random(16, rng, 1.0f), k = Random(256, rng, 1.0f), v = Random(256, rng, 1.0f);
  Case c{shape, 1, 3, 32, 8};
  auto got = RunChunked(c, q, k.data(), v.data(), KvElemType::kF32, {3, 1, 0, 2}, nullptr);
  std::vector<float> ref(16);
  ReferenceAttention(shape, q.data(), 1, 3, k.data(), v.data(), 4, ref.data());
  for (int i = 0; i < 16; ++i) EXPECT_NEAR(got[i], ref[i], 1e-6);
}

}  // namespace
}  // namespace dualblade::compute
