// CopyStage: makes a chunk that landed in a staging buffer available to compute. The seam between
// the pipeline's host staging and the memory compute reads: the CPU stage is zero copy (compute
// reads the staging buffer itself); a CUDA stage would start cudaMemcpyAsync into device memory on
// a copy stream when the chunk lands and make the compute stream wait on its event.
//
// Life of a chunk: Start (on the I/O thread, as soon as the chunk's bytes are in staging) ->
// Acquire (on the compute thread, right before compute touches the chunk; waits for the copy) ->
// Release (compute is done; the compute memory may be reused). A chunk that is never computed
// (the step failed) is simply never acquired: the next Start on the same staging buffer replaces
// it, so nothing accumulates beyond one entry per staging buffer.
//
// Thread-safety: implementations must accept Start from one thread while Acquire/Release run on
// another.
#pragma once

#include <cstdint>
#include <mutex>
#include <span>
#include <string_view>
#include <unordered_map>

#include "common/status.h"

namespace dualblade {

class CopyStage {
 public:
  virtual ~CopyStage() = default;
  // The chunk's bytes are in STAGING (keyed by its address) and will not change until Release.
  virtual Status Start(std::span<const uint8_t> staging) = 0;
  // The memory compute reads for the chunk staged at STAGING. REQUIRES: Start(staging) earlier.
  virtual Result<std::span<const uint8_t>> Acquire(std::span<const uint8_t> staging) = 0;
  // Compute no longer reads the chunk.
  virtual void Release(std::span<const uint8_t> staging) = 0;
  virtual std::string_view name() const = 0;
};

struct CopyStageStats {
  uint64_t chunks_started = 0;
  uint64_t chunks_acquired = 0;
  uint64_t bytes_copied = 0;  // 0 for a zero-copy stage
};

// Compute runs on the host, straight over the staging buffer: nothing is copied. It still checks
// the protocol (Acquire only what was started and not since released), so a pipeline bug that
// would hand a device stage an unstaged chunk fails here too.
class CpuCopyStage final : public CopyStage {
 public:
  Status Start(std::span<const uint8_t> staging) override;
  Result<std::span<const uint8_t>> Acquire(std::span<const uint8_t> staging) override;
  void Release(std::span<const uint8_t> staging) override;
  std::string_view name() const override { return "cpu"; }
  CopyStageStats stats() const;

 private:
  mutable std::mutex mu_;
  std::unordered_map<const uint8_t*, size_t> staged_;  // GUARDED_BY(mu_): address -> bytes
  CopyStageStats stats_;                               // GUARDED_BY(mu_)
};

}  // namespace dualblade
