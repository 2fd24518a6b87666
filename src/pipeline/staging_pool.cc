#include "pipeline/staging_pool.h"

#include <string>
#include <utility>

#include "common/check.h"

namespace dualblade {

StagingLease::StagingLease(StagingLease&& o) noexcept
    : pool_(std::exchange(o.pool_, nullptr)), index_(o.index_), span_(std::exchange(o.span_, {})) {}

StagingLease& StagingLease::operator=(StagingLease&& o) noexcept {
  if (this != &o) {
    Release();
    pool_ = std::exchange(o.pool_, nullptr);
    index_ = o.index_;
    span_ = std::exchange(o.span_, {});
  }
  return *this;
}

void StagingLease::Release() {
  if (pool_ == nullptr) return;
  pool_->Return(index_);
  pool_ = nullptr;
  span_ = {};
}

Result<std::unique_ptr<StagingPool>> StagingPool::Create(const StagingPoolOptions& opts) {
  if (opts.buffer_bytes == 0) {
    return Status::InvalidArgument("staging buffer size must be greater than 0");
  }
  size_t rounded = (opts.buffer_bytes + kDirectIoAlignBytes - 1) / kDirectIoAlignBytes *
                   kDirectIoAlignBytes;
  size_t n = opts.budget_bytes / rounded;
  if (n == 0) {
    return Status::InvalidArgument("staging budget of " + std::to_string(opts.budget_bytes) +
                                   " bytes does not hold one " + std::to_string(rounded) +
                                   "-byte buffer");
  }
  if (n > UINT32_MAX) return Status::InvalidArgument("staging budget holds too many buffers");
  return std::unique_ptr<StagingPool>(new StagingPool(rounded, n));
}

StagingPool::StagingPool(size_t buffer_bytes, size_t n_buffers)
    : buffer_bytes_(buffer_bytes),
      arena_(buffer_bytes * n_buffers),
      n_buffers_(n_buffers),
      leased_(n_buffers, false) {
  free_.reserve(n_buffers);
  for (size_t i = 0; i < n_buffers; ++i) {
    free_.push_back(static_cast<uint32_t>(n_buffers - 1 - i));  // hand out buffer 0 first
  }
}

StagingPool::~StagingPool() { DB_CHECK_MSG(full(), "staging pool destroyed with leases out"); }

std::optional<StagingLease> StagingPool::TryAcquire() {
  if (free_.empty()) {
    ++stats_.exhausted;
    return std::nullopt;
  }
  uint32_t index = free_.back();
  free_.pop_back();
  DB_CHECK(!leased_[index]);
  leased_[index] = true;
  ++stats_.acquires;
  if (in_use_bytes() > stats_.peak_in_use_bytes) stats_.peak_in_use_bytes = in_use_bytes();
  return StagingLease(this, index,
                      arena_.span().subspan(size_t{index} * buffer_bytes_, buffer_bytes_));
}

void StagingPool::Return(uint32_t index) {
  DB_CHECK(index < n_buffers_);
  DB_CHECK_MSG(leased_[index], "staging buffer returned twice");
  leased_[index] = false;
  free_.push_back(index);
}

}  // namespace dualblade
