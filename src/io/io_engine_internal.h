// Pieces shared by the io_uring and thread-pool engines: request validation, request splitting,
// and the Status a failed transfer turns into. Not part of the public interface.
// Thread-safety: stateless functions.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "io/block_device.h"
#include "io/io_engine.h"

namespace dualblade::io_internal {

// OK, or the InvalidArgument the request completes with: null buffer, range past the end of the
// device, direct I/O not aligned to the logical block size (offset, length) and 4 KiB (buffer),
// a write to a device opened read-only.
Status ValidateRequest(const BlockDevice& dev, const IoRequest& req);

// The largest piece one kernel request may carry: opts.max_request_bytes, else the device's max
// transfer, else 1 MiB; rounded down to 4 KiB so every piece of a direct request stays aligned.
uint64_t MaxPieceBytes(const BlockDevice& dev, const IoEngineOptions& opts);

int DescriptorFor(const BlockDevice& dev, const IoRequest& req);

// The iovecs covering bytes [from, from + len) of a vectored request, into *out (cleared first).
void SliceIov(const IoRequest& req, uint64_t from, uint64_t len, std::vector<iovec>* out);

// The Status for a transfer of len_bytes at offset_bytes that ended with `result` (-errno, or 0
// for a transfer that made no progress), with the path and offset as context.
Status TransferError(const BlockDevice& dev, const IoRequest& req, uint64_t offset_bytes,
                     uint64_t len_bytes, int64_t result, bool injected);

std::unique_ptr<IoEngine> NewThreadPoolEngine(const BlockDevice* dev, const IoEngineOptions& opts);
// Fails (with the reason) where the kernel or a sandbox refuses io_uring.
Result<std::unique_ptr<IoEngine>> NewIoUringEngine(const BlockDevice* dev,
                                                   const IoEngineOptions& opts);

}  // namespace dualblade::io_internal
