// IoEngine: what both engines share, and the choice between them.
#include "io/io_engine.h"

#include <algorithm>
#include <cstdlib>
#include <string_view>

#include "common/aligned_buffer.h"
#include "common/log.h"
#include "common/units.h"
#include "io/io_engine_internal.h"

namespace dualblade {

namespace io_internal {

namespace {
const char* OpName(const IoRequest& req) {
  const bool direct = req.path == IoPath::kDirect;
  if (req.op == IoOp::kRead) return direct ? "direct read" : "buffered read";
  return direct ? "direct write" : "buffered write";
}

std::string Context(const BlockDevice& dev, const IoRequest& req, uint64_t off, uint64_t len) {
  return std::string(OpName(req)) + " " + dev.info().path + " at offset " + std::to_string(off) +
         " (" + std::to_string(len) + " bytes)";
}
}  // namespace

Status ValidateRequest(const BlockDevice& dev, const IoRequest& req) {
  const DeviceInfo& info = dev.info();
  if (req.op == IoOp::kWrite && dev.read_only())
    return Status::InvalidArgument(Context(dev, req, req.offset_bytes, req.len_bytes) + ": " +
                                   info.path + " was opened read-only");
  if (req.len_bytes == 0) return Status::OK();
  if (req.iov != nullptr) {
    uint64_t total = 0;
    bool aligned = true, null = false;
    for (uint32_t i = 0; i < req.iov_count; ++i) {
      total += req.iov[i].iov_len;
      null = null || req.iov[i].iov_base == nullptr;
      aligned = aligned &&
                IsAligned(reinterpret_cast<uintptr_t>(req.iov[i].iov_base), kDirectIoAlignBytes) &&
                IsAligned(req.iov[i].iov_len, info.logical_block_bytes);
    }
    if (null || total != req.len_bytes)
      return Status::InvalidArgument(Context(dev, req, req.offset_bytes, req.len_bytes) +
                                     ": the iovecs hold " + std::to_string(total) +
                                     " bytes or a null buffer");
    if (req.path == IoPath::kDirect && !aligned)
      return Status::InvalidArgument(Context(dev, req, req.offset_bytes, req.len_bytes) +
                                     ": direct I/O needs every iovec aligned to " +
                                     std::to_string(kDirectIoAlignBytes) + " bytes in address "
                                     "and to the logical block in length");
  } else if (req.buf == nullptr) {
    return Status::InvalidArgument(Context(dev, req, req.offset_bytes, req.len_bytes) +
                                   ": null buffer");
  }
  if (req.offset_bytes > info.size_bytes || req.len_bytes > info.size_bytes - req.offset_bytes)
    return Status::InvalidArgument(Context(dev, req, req.offset_bytes, req.len_bytes) +
                                   ": past the end of the device (" +
                                   std::to_string(info.size_bytes) + " bytes)");
  if (req.path == IoPath::kDirect) {
    const uint64_t lbs = info.logical_block_bytes;
    if (!IsAligned(req.offset_bytes, lbs) || !IsAligned(req.len_bytes, lbs) ||
        (req.iov == nullptr &&
         !IsAligned(reinterpret_cast<uintptr_t>(req.buf), kDirectIoAlignBytes)))
      return Status::InvalidArgument(Context(dev, req, req.offset_bytes, req.len_bytes) +
                                     ": direct I/O needs offset and length aligned to " +
                                     std::to_string(lbs) + " bytes and a buffer aligned to " +
                                     std::to_string(kDirectIoAlignBytes));
  }
  return Status::OK();
}

uint64_t MaxPieceBytes(const BlockDevice& dev, const IoEngineOptions& opts) {
  uint64_t max = opts.max_request_bytes;
  if (max == 0) max = dev.info().max_transfer_bytes;
  if (max == 0) max = kMiB;
  // io_uring's read/write length is 32 bits; 1 GiB keeps well inside it.
  max = std::min<uint64_t>(max, kGiB);
  return std::max<uint64_t>(AlignDown(max, kDirectIoAlignBytes), kDirectIoAlignBytes);
}

void SliceIov(const IoRequest& req, uint64_t from, uint64_t len, std::vector<iovec>* out) {
  out->clear();
  for (uint32_t i = 0; i < req.iov_count && len > 0; ++i) {
    const uint64_t n = req.iov[i].iov_len;
    if (from >= n) {
      from -= n;
      continue;
    }
    const uint64_t take = std::min(n - from, len);
    out->push_back({static_cast<uint8_t*>(req.iov[i].iov_base) + from, static_cast<size_t>(take)});
    len -= take;
    from = 0;
  }
}

int DescriptorFor(const BlockDevice& dev, const IoRequest& req) {
  return req.path == IoPath::kDirect ? dev.direct_fd() : dev.buffered_fd();
}

Status TransferError(const BlockDevice& dev, const IoRequest& req, uint64_t offset_bytes,
                     uint64_t len_bytes, int64_t result, bool injected) {
  Status st;
  if (result < 0) {
    st = ErrnoStatus(Context(dev, req, offset_bytes, len_bytes), static_cast<int>(-result));
  } else {
    st = Status::IOError(Context(dev, req, offset_bytes, len_bytes) +
                         (req.op == IoOp::kRead ? ": unexpected end of device"
                                                : ": the device accepted no bytes"));
  }
  if (injected) st.MarkInjected();
  return st;
}

}  // namespace io_internal

Status IoEngine::RunBatch(std::span<IoRequest> reqs) {
  DB_CHECK_MSG(outstanding() == 0, "RunBatch needs an idle engine");
  for (IoRequest& r : reqs) Enqueue(&r);
  std::vector<IoRequest*> done;
  done.reserve(reqs.size());
  while (done.size() < reqs.size()) DB_RETURN_IF_ERROR(Reap(1, &done));
  for (IoRequest& r : reqs) {
    if (!r.status.ok()) return r.status;
  }
  return Status::OK();
}

Result<std::unique_ptr<IoEngine>> CreateIoEngine(const BlockDevice* dev,
                                                 const IoEngineOptions& opts) {
  if (dev == nullptr) return Status::InvalidArgument("CreateIoEngine: no device");
  if (opts.queue_depth == 0 || opts.queue_depth > 4096)
    return Status::InvalidArgument("queue depth must be between 1 and 4096, not " +
                                   std::to_string(opts.queue_depth));
  if (!opts.force_threadpool) {
    // DUALBLADE_NO_IO_URING takes the same fallback path as a refused io_uring: for sandboxes
    // whose io_uring misbehaves rather than fails, and for testing the fallback itself.
    const char* no_uring = std::getenv("DUALBLADE_NO_IO_URING");
    const bool disabled =
        no_uring != nullptr && *no_uring != '\0' && std::string_view(no_uring) != "0";
    Result<std::unique_ptr<IoEngine>> uring =
        disabled ? Result<std::unique_ptr<IoEngine>>(
                       Status::NotSupported("disabled by DUALBLADE_NO_IO_URING"))
                 : io_internal::NewIoUringEngine(dev, opts);
    if (uring.ok()) return std::move(uring).value();
    DB_LOG_INFO("io_uring is unavailable (%s); using the thread-pool engine",
                uring.status().message().c_str());
  }
  return io_internal::NewThreadPoolEngine(dev, opts);
}

}  // namespace dualblade
