// kv_store_bench: KV store throughput per path on a scratch store, for a model shape.
//
//   kv_store_bench STORE_FILE [--ctx 16384] [--layers 16] [--kv-heads 8] [--head-dim 64]
//
// Formats STORE_FILE (a new file; an existing one is overwritten), appends the whole context of
// every layer (f16, 256-token chunks), commits, then reads every layer's full context in one
// batch through each path, twice (cold, then warm), with checksum verification on and off. Prints
// GB/s and the hashing time so the cost of verification can be quoted next to the read rate.
// Not a test: numbers depend on the machine; compare rows of one run.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/units.h"
#include "store/kv_store.h"

using namespace dualblade;
using namespace dualblade::store;

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0) {
    std::fprintf(stderr, "usage: %s STORE_FILE [--ctx N] [--layers N] [--kv-heads N] "
                         "[--head-dim N]\n", argv[0]);
    return 2;
  }
  const std::string path = argv[1];
  KvGeometry g{.n_layer = 16, .n_head_kv = 8, .head_dim = 64, .type = KvType::kF16,
               .chunk_tokens = 256, .capacity_tokens = 16384};
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const uint64_t v = std::stoull(argv[i + 1]);
    if (flag == "--ctx") g.capacity_tokens = v;
    else if (flag == "--layers") g.n_layer = static_cast<uint32_t>(v);
    else if (flag == "--kv-heads") g.n_head_kv = static_cast<uint32_t>(v);
    else if (flag == "--head-dim") g.head_dim = static_cast<uint32_t>(v);
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  const uint64_t ctx = g.capacity_tokens;
  const double kv_bytes = 2.0 * static_cast<double>(ctx * g.row_bytes() * g.n_layer);
  const uint64_t store_bytes = AlignUp(static_cast<uint64_t>(kv_bytes * 1.1), kMiB) + 64 * kMiB;
  Result<Superblock> sb = Store::Format(path, {.size_bytes = store_bytes, .force = true});
  if (!sb.ok()) {
    std::fprintf(stderr, "%s\n", sb.status().ToString().c_str());
    return 1;
  }
  auto st = Store::Open(path, {.read_only = false});
  if (!st.ok()) return 1;
  auto kv = KvStore::Open(st->get(), {});
  if (!kv.ok()) {
    std::fprintf(stderr, "%s\n", kv.status().ToString().c_str());
    return 1;
  }
  KvStore& s = **kv;
  const SeqId id = s.CreateSequence(g, "kv_store_bench").value();
  std::vector<uint8_t> rows(g.chunk_tokens * g.row_bytes());
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<uint8_t>(i * 131);
  Stopwatch w;
  for (uint64_t t = 0; t < ctx; t += g.chunk_tokens) {
    const uint64_t n = std::min<uint64_t>(g.chunk_tokens, ctx - t);
    for (uint32_t l = 0; l < g.n_layer; ++l) {
      if (Status a = s.Append(id, l, rows.data(), rows.data(), n); !a.ok()) {
        std::fprintf(stderr, "%s\n", a.ToString().c_str());
        return 1;
      }
    }
  }
  if (Status c = s.Commit(); !c.ok()) return 1;
  std::printf("engine %s, KV %.0f MiB, append+commit (direct) %.2f GB/s\n",
              std::string(s.engine_name()).c_str(), kv_bytes / kMiB,
              kv_bytes / w.ElapsedSeconds() / 1e9);
  std::vector<KvRange> ranges;
  for (uint32_t l = 0; l < g.n_layer; ++l) ranges.push_back({id, l, 0, ctx});
  const uint64_t chunks = (ctx + g.chunk_tokens - 1) / g.chunk_tokens;
  for (bool verify : {true, false}) {
    s.set_verify_checksums(verify);
    for (KvPath p : {KvPath::kDirect, KvPath::kPage}) {
      // Demote first so every path starts cold (DONTNEED), then set the path measured.
      for (uint32_t l = 0; l < g.n_layer; ++l) {
        if (!s.SetChunkPath(id, l, 0, chunks, KvPath::kDirect).ok() ||
            !s.SetChunkPath(id, l, 0, chunks, p).ok()) {
          return 1;
        }
      }
      for (const char* pass : {"cold", "warm"}) {
        const uint64_t hash_ns = s.stats().checksum_ns;
        uint64_t sink = 0;
        Stopwatch r;
        Status rs = s.ReadChunks(ranges, [&](const KvChunkView& c) { sink += c.k[0]; });
        const double sec = r.ElapsedSeconds();
        if (!rs.ok()) {
          std::fprintf(stderr, "%s\n", rs.ToString().c_str());
          return 1;
        }
        std::printf("read %-6s %-4s verify=%d: %6.2f GB/s, hashing %6.1f ms (sink %llu)\n",
                    KvPathName(p), pass, verify ? 1 : 0, kv_bytes / sec / 1e9,
                    static_cast<double>(s.stats().checksum_ns - hash_ns) / 1e6,
                    static_cast<unsigned long long>(sink % 10));
      }
    }
  }
  return s.Drop(id).ok() ? 0 : 1;
}
