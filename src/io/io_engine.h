// IoEngine: asynchronous batched reads and writes against one BlockDevice.
//
// Two implementations: io_uring (liburing; the default) and a small thread pool doing
// pread/pwrite, used where io_uring is refused (old kernels, seccomp sandboxes). CreateIoEngine
// picks one and says which through name(). Both pass the same test suite.
//
// Thread-safety: an engine belongs to the thread that submits to it (one ring per submitting
// thread, as RocksDB does); do not share one engine between threads.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "io/block_device.h"

namespace dualblade {

enum class IoOp : uint8_t { kRead, kWrite };
// Which descriptor of the BlockDevice serves the request.
enum class IoPath : uint8_t { kDirect, kBuffered };

// One request. The caller owns it and keeps it (and its buffer) alive and untouched until the
// engine hands it back from Reap().
struct IoRequest {
  // Inputs.
  IoOp op = IoOp::kRead;
  IoPath path = IoPath::kDirect;
  uint64_t offset_bytes = 0;
  uint8_t* buf = nullptr;
  uint64_t len_bytes = 0;
  uint64_t user_tag = 0;  // opaque to the engine
  // Vectored (scatter/gather) instead of buf: the transfer's bytes go to or come from
  // iov[0 .. iov_count) in order; len_bytes must be their total. Direct I/O needs every entry's
  // base aligned to kDirectIoAlignBytes and its length to the logical block size. The array is the
  // caller's, kept alive and untouched like buf.
  const iovec* iov = nullptr;
  uint32_t iov_count = 0;

  // Outputs, valid once the request comes back from Reap().
  Status status;            // OK only when all len_bytes were transferred
  uint64_t done_bytes = 0;  // bytes transferred (== len_bytes on success)
};

// Test seam: both engines consult it on every kernel transfer they finish (see
// io/fault_injection.h). Implementations must be thread-safe: the thread-pool engine calls it from
// its workers.
class IoFaultHook {
 public:
  virtual ~IoFaultHook() = default;
  // `result` holds what the kernel returned for one transfer of len_bytes at offset_bytes: a byte
  // count, or -errno. The hook may rewrite it (an error, or a shorter count) and returns true when
  // it did; the engine then handles the rewritten result exactly like a real one (a short count is
  // resumed, -EAGAIN is resubmitted) and marks a resulting error as injected.
  virtual bool OnTransfer(IoOp op, uint64_t offset_bytes, uint64_t len_bytes, int64_t* result) = 0;
};

struct IoEngineOptions {
  uint32_t queue_depth = 32;
  // Requests larger than this are split into several kernel requests (0 = the device's
  // max_transfer_bytes, or 1 MiB when unknown).
  uint64_t max_request_bytes = 0;
  // Force the thread-pool engine even where io_uring works (tests, A/B measurements).
  bool force_threadpool = false;
  // Register the device's descriptors with the ring (fewer fd lookups per request).
  bool register_files = true;
  // Not owned; must outlive the engine. nullptr in production.
  IoFaultHook* fault_hook = nullptr;
};

class IoEngine {
 public:
  virtual ~IoEngine() = default;

  // Accepts a request. The engine keeps at most queue_depth kernel requests in flight; the rest
  // wait in a software queue. Never blocks for completions. An invalid request (misaligned
  // direct I/O, out of range, null buffer) completes at once with InvalidArgument.
  virtual void Enqueue(IoRequest* req) = 0;

  // Submits what is queued, waits until at least min_complete requests (of those outstanding)
  // have finished, and appends every finished request to *done, in completion order. Short
  // transfers, -EAGAIN and -EINTR are resubmitted internally and never surface.
  // Returns an error only when the engine itself fails (the ring broke); per-request errors are in
  // each request's status.
  virtual Status Reap(size_t min_complete, std::vector<IoRequest*>* done) = 0;

  // Requests accepted and not yet handed back by Reap.
  virtual size_t outstanding() const = 0;

  // "io_uring" or "threadpool".
  virtual std::string_view name() const = 0;

  // Optional: registers [buf, buf + len_bytes) so that requests whose buffers lie wholly inside it
  // skip pinning their pages on every request (io_uring fixed buffers). Returns true when the
  // engine will use it; false, not an error, when it cannot (the thread-pool engine, a kernel or
  // memlock limit that refuses, a region over 1 GiB, all 16 slots taken). Vectored requests whose
  // iovecs all lie in one registered buffer use it too where the kernel has the vectored
  // fixed-buffer ops (Linux 6.15+; see vectored_fixed_supported()). The memory must stay mapped
  // until UnregisterBuffer drops it or the engine is destroyed.
  // REQUIRES: outstanding() == 0.
  virtual bool RegisterBuffer(uint8_t* /*buf*/, uint64_t /*len_bytes*/) { return false; }

  // Optional: drops the region RegisterBuffer took at buf (its start), so that the caller may
  // unmap it; the other regions stay registered. Returns true when buf was registered and is not
  // any more; false when it was not (or the engine registers nothing). Later requests into that
  // memory pin their pages per request again.
  // REQUIRES: outstanding() == 0.
  virtual bool UnregisterBuffer(uint8_t* /*buf*/) { return false; }

  // Whether the kernel requests of req will go out as fixed-buffer requests: its memory (buf, or
  // every iovec) lies wholly in one registered buffer, and for a vectored request the kernel has
  // the vectored fixed-buffer ops. Always false for the thread-pool engine.
  virtual bool UsesRegisteredBuffer(const IoRequest& /*req*/) const { return false; }

  // Kernel requests issued as fixed-buffer reads or writes since creation (plain and vectored;
  // resubmissions of short transfers count again). Lets tests prove that the fixed path is taken.
  virtual uint64_t fixed_requests() const { return 0; }

  // Whether the kernel takes vectored fixed-buffer reads and writes (IORING_OP_READV_FIXED and
  // IORING_OP_WRITEV_FIXED, probed at creation). Without them vectored requests are plain
  // readv/writev whatever their memory.
  virtual bool vectored_fixed_supported() const { return false; }

  virtual const IoEngineOptions& options() const = 0;

  // Convenience: runs every request to completion, keeping the queue full. Returns the first
  // per-request error (every request still completes and carries its own status).
  // REQUIRES: no other request is outstanding (they would be handed back here and lost).
  Status RunBatch(std::span<IoRequest> reqs);
};

// Creates the io_uring engine, or the thread-pool engine when io_uring is refused (the reason is
// logged at info level), when the environment sets DUALBLADE_NO_IO_URING (to anything but "" or
// "0"), or when opts.force_threadpool is set. The device must outlive the engine.
Result<std::unique_ptr<IoEngine>> CreateIoEngine(const BlockDevice* dev, const IoEngineOptions& opts);

}  // namespace dualblade
