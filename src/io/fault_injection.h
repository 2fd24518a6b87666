// Fault injection for the I/O layer, for tests: seeded EIO, ENOSPC on writes, short transfers,
// spurious EAGAIN and added latency, injected under a real engine so that its retry path (not a
// mock) has to cope. Errors that reach a request's Status carry Status::injected() so a test can
// tell them from real device errors.
//
// FaultInjector rewrites kernel results through the engines' IoFaultHook seam;
// FaultInjectingIoEngine is an IoEngine that owns an injector and a real engine wired to it.
//
// Thread-safety: FaultInjector is thread-safe (the thread-pool engine calls it from its workers);
// FaultInjectingIoEngine follows the IoEngine contract (one submitting thread).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <random>

#include "io/io_engine.h"

namespace dualblade {

struct FaultOptions {
  uint64_t seed = 1;
  // Per-transfer probabilities, each in [0, 1]; one transfer gets at most one of the first four.
  double eio_rate = 0;     // fails with EIO
  double enospc_rate = 0;  // a write fails with ENOSPC (reads are left alone)
  double eagain_rate = 0;  // reports EAGAIN; the engine must resubmit it
  double short_rate = 0;   // reports fewer bytes than moved; the engine must resume the rest
  double latency_rate = 0; // the completion is held back by latency_us
  uint32_t latency_us = 0;
  // Short counts are multiples of this, as the kernel never ends a direct transfer mid-block.
  uint32_t short_align_bytes = 4096;
};

struct FaultCounts {
  uint64_t transfers = 0;  // every transfer seen, injected or not
  uint64_t eio = 0;
  uint64_t enospc = 0;
  uint64_t eagain = 0;
  uint64_t short_transfers = 0;
  uint64_t delayed = 0;
};

class FaultInjector final : public IoFaultHook {
 public:
  explicit FaultInjector(const FaultOptions& opts) : opts_(opts), rng_(opts.seed) {}

  bool OnTransfer(IoOp op, uint64_t offset_bytes, uint64_t len_bytes, int64_t* result) override;

  // While disabled, transfers pass untouched (and are still counted).
  void set_enabled(bool enabled);
  FaultCounts counts() const;
  const FaultOptions& options() const { return opts_; }

 private:
  double Uniform();  // REQUIRES: mu_ held

  const FaultOptions opts_;
  mutable std::mutex mu_;
  std::mt19937_64 rng_;  // GUARDED_BY(mu_)
  bool enabled_ = true;  // GUARDED_BY(mu_)
  FaultCounts counts_;   // GUARDED_BY(mu_)
};

class FaultInjectingIoEngine final : public IoEngine {
 public:
  // Builds the engine CreateIoEngine would (io_uring, or the thread pool when forced or refused)
  // with an injector as its fault hook. opts.fault_hook must be null.
  static Result<std::unique_ptr<FaultInjectingIoEngine>> Create(const BlockDevice* dev,
                                                                IoEngineOptions opts,
                                                                const FaultOptions& faults);

  void Enqueue(IoRequest* req) override { inner_->Enqueue(req); }
  Status Reap(size_t min_complete, std::vector<IoRequest*>* done) override {
    return inner_->Reap(min_complete, done);
  }
  size_t outstanding() const override { return inner_->outstanding(); }
  std::string_view name() const override { return inner_->name(); }
  bool RegisterBuffer(uint8_t* buf, uint64_t len_bytes) override {
    return inner_->RegisterBuffer(buf, len_bytes);
  }
  bool UnregisterBuffer(uint8_t* buf) override { return inner_->UnregisterBuffer(buf); }
  bool UsesRegisteredBuffer(const IoRequest& req) const override {
    return inner_->UsesRegisteredBuffer(req);
  }
  uint64_t fixed_requests() const override { return inner_->fixed_requests(); }
  bool vectored_fixed_supported() const override { return inner_->vectored_fixed_supported(); }
  const IoEngineOptions& options() const override { return inner_->options(); }

  FaultInjector& injector() { return *injector_; }

 private:
  FaultInjectingIoEngine() = default;

  // Declared first so it outlives the engine that calls it.
  std::unique_ptr<FaultInjector> injector_;
  std::unique_ptr<IoEngine> inner_;
};

}  // namespace dualblade
