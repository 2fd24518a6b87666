#include "compute/matmul.h"

#include <cblas.h>

#include <algorithm>
#include <cstring>
#include <mutex>

#include "common/check.h"
#include "compute/ops.h"
#include "model/vec_dot.h"

namespace dualblade::compute {
namespace {

// Weight rows dequantized per sgemm call. Every call packs the whole activation batch again
// (512 tokens x 2048 is 4 MiB), so tiles must be wide enough to amortize that: up to 4 MiB of F32
// weights and at least 64 rows, yet at least kMinTiles tiles so the dynamic slices can balance
// the threads. The tiling depends on the shape only, never on the thread count: sgemm's edge
// kernels sum in another order, so a column's bits depend on where it falls in its tile.
constexpr int64_t kTileFloats = int64_t{1} << 20;
constexpr int64_t kMinTileRows = 64;
constexpr int64_t kMinTiles = 8;

int64_t GemmTileRows(int64_t n_in, int64_t n_out) {
  const int64_t by_size = std::max(kMinTileRows, kTileFloats / std::max<int64_t>(1, n_in));
  const int64_t by_count = (n_out + kMinTiles - 1) / kMinTiles;
  const int64_t rows = std::min(by_size, std::max<int64_t>(16, (by_count + 15) / 16 * 16));
  return std::max<int64_t>(1, std::min(rows, n_out));
}

// A parallel slice should carry at least this many multiply-adds: below that, waking and waiting
// for another thread (microseconds, far more on a busy machine) costs more than it saves.
constexpr int64_t kMinMacsPerSlice = 1 << 15;

int64_t MinRowsPerSlice(int64_t n_in, int64_t n_tokens) {
  return std::max<int64_t>(1, kMinMacsPerSlice / std::max<int64_t>(1, n_in * n_tokens));
}

// Our pool parallelizes over weight rows; OpenBLAS must not start threads of its own under it.
void SingleThreadedBlas() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}

}  // namespace

bool MatmulSupportsType(GgmlType type) { return GetRowKernels(type) != nullptr; }

void DequantizeRow(GgmlType type, const void* row, float* out, int64_t n) {
  const RowKernels* ops = GetRowKernels(type);
  DB_CHECK(ops != nullptr);
  ops->to_float(row, out, n);
}

void Matmul::Run(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y,
                 ThreadPool* pool) {
  DB_CHECK(MatmulSupportsType(w.type) && n_tokens >= 0);
  if (n_tokens == 0) return;
  switch (mode_) {
    case MatmulMode::kAuto:
      if (n_tokens >= kGemmMinTokens) return RunGemm(w, x, n_tokens, y, pool);
      return RunQuantized(w, x, n_tokens, y, pool);
    case MatmulMode::kQuantizedActivations:
      return RunQuantized(w, x, n_tokens, y, pool);
    case MatmulMode::kF32:
      if (n_tokens >= kGemmMinTokens) return RunGemm(w, x, n_tokens, y, pool);
      return RunF32Rows(w, x, n_tokens, y, pool);
  }
}

void Matmul::RunGemm(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y,
                     ThreadPool* pool) {
  SingleThreadedBlas();
  const int n_threads = pool != nullptr ? pool->size() : 1;
  if (tiles_.size() < static_cast<size_t>(n_threads)) tiles_.resize(n_threads);
  const RowKernels* ops = GetRowKernels(w.type);
  const int64_t tile_rows = GemmTileRows(w.n_in, w.n_out);
  const int64_t n_tiles = (w.n_out + tile_rows - 1) / tile_rows;
  auto work = [&](int64_t tile_begin, int64_t tile_end, int thread) {
    std::vector<float>& tile = tiles_[thread];
    for (int64_t t = tile_begin; t < tile_end; ++t) {
      const int64_t r0 = t * tile_rows;
      const int64_t rows = std::min(tile_rows, w.n_out - r0);
      const float* b;
      if (w.type == GgmlType::kF32) {
        b = reinterpret_cast<const float*>(w.data + r0 * w.row_bytes);
      } else {
        if (tile.size() < static_cast<size_t>(tile_rows * w.n_in)) {
          tile.resize(static_cast<size_t>(tile_rows * w.n_in));
        }
        for (int64_t r = 0; r < rows; ++r) {
          ops->to_float(w.data + (r0 + r) * w.row_bytes, tile.data() + r * w.n_in, w.n_in);
        }
        b = tile.data();
      }
      // Y[:, r0:r0+rows] = X · B^T, B = rows x n_in row-major.
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n_tokens),
                  static_cast<int>(rows), static_cast<int>(w.n_in), 1.0f, x,
                  static_cast<int>(w.n_in), b, static_cast<int>(w.n_in), 0.0f, y + r0,
                  static_cast<int>(w.n_out));
    }
  };
  if (pool != nullptr) {
    pool->ParallelFor(n_tiles, work);
  } else {
    work(0, n_tiles, 0);
  }
}

void Matmul::RunQuantized(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y,
                          ThreadPool* pool) {
  const RowKernels* ops = GetRowKernels(w.type);
  const size_t xq_row = RowSizeBytes(ops->vec_dot_type, w.n_in);
  const uint8_t* xq;
  if (ops->vec_dot_type == GgmlType::kF32) {
    xq = reinterpret_cast<const uint8_t*>(x);
  } else {
    xq_.resize(xq_row * static_cast<size_t>(n_tokens));
    for (int64_t t = 0; t < n_tokens; ++t) {
      ops->from_float(x + t * w.n_in, xq_.data() + t * xq_row, w.n_in);
    }
    xq = xq_.data();
  }
  auto work = [&](int64_t begin, int64_t end, int) {
    for (int64_t r = begin; r < end; ++r) {
      const uint8_t* row = w.data + r * w.row_bytes;
      for (int64_t t = 0; t < n_tokens; ++t) {
        y[t * w.n_out + r] = ops->vec_dot(w.n_in, row, xq + t * xq_row);
      }
    }
  };
  if (pool != nullptr) {
    pool->ParallelFor(w.n_out, work, MinRowsPerSlice(w.n_in, n_tokens));
  } else {
    work(0, w.n_out, 0);
  }
}

void Matmul::RunF32Rows(const WeightMatrix& w, const float* x, int64_t n_tokens, float* y,
                        ThreadPool* pool) {
  const int n_threads = pool != nullptr ? pool->size() : 1;
  if (tiles_.size() < static_cast<size_t>(n_threads)) tiles_.resize(n_threads);
  const RowKernels* ops = GetRowKernels(w.type);
  auto work = [&](int64_t begin, int64_t end, int thread) {
    std::vector<float>& buf = tiles_[thread];
    buf.resize(static_cast<size_t>(w.n_in));
    for (int64_t r = begin; r < end; ++r) {
      const uint8_t* row = w.data + r * w.row_bytes;
      const float* wf;
      if (w.type == GgmlType::kF32) {
        wf = reinterpret_cast<const float*>(row);
      } else {
        ops->to_float(row, buf.data(), w.n_in);
        wf = buf.data();
      }
      for (int64_t t = 0; t < n_tokens; ++t) y[t * w.n_out + r] = DotF32(wf, x + t * w.n_in, w.n_in);
    }
  };
  if (pool != nullptr) {
    pool->ParallelFor(w.n_out, work, MinRowsPerSlice(w.n_in, n_tokens));
  } else {
    work(0, w.n_out, 0);
  }
}

}  // namespace dualblade::compute
