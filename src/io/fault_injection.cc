#include "io/fault_injection.h"

#include <cerrno>
#include <chrono>
#include <thread>

namespace dualblade {

double FaultInjector::Uniform() {
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
}

bool FaultInjector::OnTransfer(IoOp op, uint64_t /*offset_bytes*/, uint64_t /*len_bytes*/,
                               int64_t* result) {
  uint32_t delay_us = 0;
  bool injected = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++counts_.transfers;
    if (!enabled_) return false;
    // Draw every number on every transfer, so the sequence of draws (and so the faults a seed
    // produces) does not depend on which faults fired before.
    const double pick = Uniform();
    const double delay = Uniform();
    const uint64_t cut = rng_();
    if (*result >= 0) {
      double edge = opts_.eio_rate;
      if (pick < edge) {
        *result = -EIO;
        ++counts_.eio;
        injected = true;
      } else if (op == IoOp::kWrite && pick < (edge += opts_.enospc_rate)) {
        *result = -ENOSPC;
        ++counts_.enospc;
        injected = true;
      } else if (pick < (edge += opts_.eagain_rate)) {
        *result = -EAGAIN;
        ++counts_.eagain;
        injected = true;
      } else if (pick < (edge += opts_.short_rate)) {
        const uint64_t align = opts_.short_align_bytes == 0 ? 1 : opts_.short_align_bytes;
        const uint64_t whole = static_cast<uint64_t>(*result) / align;
        if (whole >= 2) {
          *result = static_cast<int64_t>((1 + cut % (whole - 1)) * align);  // 1 .. whole-1 blocks
          ++counts_.short_transfers;
          injected = true;
        }
      }
    }
    if (delay < opts_.latency_rate && opts_.latency_us > 0) {
      delay_us = opts_.latency_us;
      ++counts_.delayed;
    }
  }
  if (delay_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(delay_us));
  return injected;
}

void FaultInjector::set_enabled(bool enabled) {
  std::lock_guard<std::mutex> lock(mu_);
  enabled_ = enabled;
}

FaultCounts FaultInjector::counts() const {
  std::lock_guard<std::mutex> lock(mu_);
  return counts_;
}

Result<std::unique_ptr<FaultInjectingIoEngine>> FaultInjectingIoEngine::Create(
    const BlockDevice* dev, IoEngineOptions opts, const FaultOptions& faults) {
  if (opts.fault_hook != nullptr)
    return Status::InvalidArgument("FaultInjectingIoEngine installs its own fault hook");
  std::unique_ptr<FaultInjectingIoEngine> engine(new FaultInjectingIoEngine());
  engine->injector_ = std::make_unique<FaultInjector>(faults);
  opts.fault_hook = engine->injector_.get();
  DB_ASSIGN_OR_RETURN(engine->inner_, CreateIoEngine(dev, opts));
  return engine;
}

}  // namespace dualblade
