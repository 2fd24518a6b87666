#include "pipeline/copy_stage.h"

#include <string>

namespace dualblade {

Status CpuCopyStage::Start(std::span<const uint8_t> staging) {
  if (staging.empty()) return Status::InvalidArgument("a staged chunk cannot be empty");
  std::lock_guard<std::mutex> lock(mu_);
  staged_[staging.data()] = staging.size();
  ++stats_.chunks_started;
  return Status::OK();
}

Result<std::span<const uint8_t>> CpuCopyStage::Acquire(std::span<const uint8_t> staging) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = staged_.find(staging.data());
  if (it == staged_.end() || it->second < staging.size()) {
    return Status::InvalidArgument("compute asked for a chunk that was never staged (" +
                                   std::to_string(staging.size()) + " bytes)");
  }
  ++stats_.chunks_acquired;
  return staging;  // zero copy: compute reads the staging buffer
}

void CpuCopyStage::Release(std::span<const uint8_t> staging) {
  std::lock_guard<std::mutex> lock(mu_);
  staged_.erase(staging.data());
}

CopyStageStats CpuCopyStage::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace dualblade
