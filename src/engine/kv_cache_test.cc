#include "engine/kv_cache.h"

#include <vector>

#include <gtest/gtest.h>

namespace dualblade::engine {
namespace {

TEST(MemoryKvCacheTest, AppendThenReadDeliversEveryChunkOnceClipped) {
  KvGeometry g;
  g.n_layer = 2;
  g.n_head_kv = 2;
  g.head_dim = 4;
  g.chunk_tokens = 5;
  g.n_ctx = 23;
  auto kv = NewMemoryKvCache(g);
  const int64_t row = g.row_elems();
  std::vector<float> k(23 * row), v(23 * row);
  for (size_t i = 0; i < k.size(); ++i) {
    k[i] = float(i);
    v[i] = -float(i);
  }
  ASSERT_TRUE(kv->Append(1, k.data(), v.data(), 7).ok());
  ASSERT_TRUE(kv->Append(1, k.data() + 7 * row, v.data() + 7 * row, 16).ok());
  EXPECT_EQ(kv->n_tokens(1), 23);
  EXPECT_EQ(kv->n_tokens(0), 0);
  EXPECT_TRUE(kv->Append(1, k.data(), v.data(), 1).IsNoSpace());
  std::vector<int> seen(23, 0);
  std::vector<int64_t> chunks;
  ASSERT_TRUE(kv->ReadChunks(1, 3, 21, [&](int64_t chunk, int64_t begin, int n, const void* kp,
                                           const void* vp) {
                  chunks.push_back(chunk);
                  EXPECT_EQ(begin / 5, chunk);
                  EXPECT_EQ((begin + n - 1) / 5, chunk);
                  const float* kf = static_cast<const float*>(kp);
                  const float* vf = static_cast<const float*>(vp);
                  for (int t = 0; t < n; ++t) {
                    ++seen[begin + t];
                    EXPECT_EQ(kf[t * row], float((begin + t) * row));
                    EXPECT_EQ(vf[t * row + 1], -float((begin + t) * row + 1));
                  }
                }).ok());
  EXPECT_EQ(chunks, (std::vector<int64_t>{0, 1, 2, 3, 4}));
  for (int t = 0; t < 23; ++t) EXPECT_EQ(seen[t], (t >= 3 && t < 21) ? 1 : 0) << t;
  EXPECT_EQ(kv->stats().read_bytes_memory, 2 * 18 * g.row_bytes());
}

}  // namespace
}  // namespace dualblade::engine
