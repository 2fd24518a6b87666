// dualblade iobench: the store's sequential O_DIRECT bandwidth through the I/O engine, the
// yardstick later used for SSD utilization.
//
// Reads sweep the store's data area (or the part of it --offset and --length name: a device
// whose speed depends on where it is read, such as a virtual disk, is then measured on the same
// blocks a benchmark reads). Writes go only to the largest free extent of the data area,
// so a store's KV data and its superblock and metadata are never overwritten, and only a store
// that dualblade formatted (a valid superblock) is touched at all.
#include <algorithm>
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "common/aligned_buffer.h"
#include "common/clock.h"
#include "common/units.h"
#include "io/io_buffer.h"
#include "io/io_engine.h"
#include "store/store.h"

namespace dualblade::cli {

namespace {

struct IobenchArgs {
  std::string store;
  std::string bs = "128K";
  uint32_t qd = 32;
  std::string rw = "read";
  double seconds = 5.0;
  std::string engine = "auto";
  bool plain_buffers = false;
  std::string offset;  // reads: the store offset the sweep starts at (default: the data area's)
  std::string length;  // reads: how much it covers (default: to the data area's end)
  bool json = false;
};

struct IobenchResult {
  uint64_t bytes = 0;
  uint64_t requests = 0;
  double elapsed_s = 0;
  uint64_t range_offset_bytes = 0;
  uint64_t range_len_bytes = 0;
  std::string engine;
  std::string device;
  bool registered_buffers = false;
};

// Bytes of the data area that a store file holds as preallocated, never-written extents. Reads
// of those return zeros without touching the device (ext4, XFS), so a read benchmark over them
// would report memory speed, not the SSD's.
uint64_t NeverWrittenBytes(const DeviceInfo& info, const store::DataArea& area) {
  uint64_t total = 0;
  const uint64_t end = area.offset_bytes + area.len_bytes;
  for (const FileExtent& e : info.extents) {
    if (!e.unwritten) continue;
    const uint64_t b = std::max(e.logical_bytes, area.offset_bytes);
    const uint64_t f = std::min(e.logical_bytes + e.length_bytes, end);
    if (f > b) total += f - b;
  }
  return total;
}

// Writes zeros over the never-written extents of the store's data area. This changes no data:
// those extents already read as zeros, and no KV chunk can live there (a chunk is written before
// its metadata names it). Afterwards reads of the data area reach the device.
Status FillNeverWritten(const std::string& path, bool progress) {
  store::StoreOpenOptions so;
  so.read_only = false;
  DB_ASSIGN_OR_RETURN(std::unique_ptr<store::Store> st, store::Store::Open(path, so));
  const BlockDevice& dev = st->device();
  const store::DataArea area = st->data_area();
  const uint64_t todo = NeverWrittenBytes(dev.info(), area);
  if (progress)
    std::fprintf(stderr, "iobench: %s of the data area was never written; writing zeros there first "
                 "so that reads reach the device\n", FormatBytes(todo).c_str());
  constexpr uint64_t kPieceBytes = 8 * kMiB;
  AlignedBuffer zeros(kPieceBytes);
  const uint64_t end = area.offset_bytes + area.len_bytes;
  for (const FileExtent& e : dev.info().extents) {
    if (!e.unwritten) continue;
    uint64_t off = std::max(e.logical_bytes, area.offset_bytes);
    const uint64_t stop = std::min(e.logical_bytes + e.length_bytes, end);
    while (off < stop) {
      const uint64_t n = std::min(kPieceBytes, stop - off);
      DB_RETURN_IF_ERROR(dev.PwriteDirect(off, std::span<const uint8_t>(zeros.data(), n)));
      off += n;
    }
  }
  return dev.Sync();
}

// Keeps qd requests of bs bytes in flight, walking [range_off, range_off + range_len) in order
// and wrapping at its end, until `seconds` have passed; then lets the last ones finish.
Status Sweep(IoEngine* engine, IoOp op, uint64_t bs, uint32_t qd, double seconds, bool plain,
             IobenchResult* out) {
  // Huge-page staging registered with the engine, as the KV pipeline stages its reads; --plain-buffers
  // measures ordinary 4 KiB-page buffers instead.
  IoBuffer staging;
  AlignedBuffer plain_staging;
  uint8_t* base = nullptr;
  const size_t total = static_cast<size_t>(bs) * qd;
  if (plain) {
    plain_staging = AlignedBuffer(total);
    base = plain_staging.data();
  } else {
    staging = IoBuffer(total);
    base = staging.data();
    out->registered_buffers = engine->RegisterBuffer(base, total);
  }
  if (op == IoOp::kWrite) {
    // Not zeros: some devices and thin layers short-cut zero writes.
    for (size_t i = 0; i < total; ++i) base[i] = static_cast<uint8_t>(i * 131 + 7);
  }
  const uint64_t begin = out->range_offset_bytes;
  const uint64_t end = begin + AlignDown(out->range_len_bytes, bs);
  uint64_t next = begin;
  std::vector<IoRequest> reqs(qd);
  std::vector<IoRequest*> done;
  done.reserve(qd);
  auto issue = [&](IoRequest* r) {
    r->offset_bytes = next;
    r->status = Status::OK();
    next += bs;
    if (next >= end) next = begin;
    engine->Enqueue(r);
  };
  Stopwatch sw;
  for (uint32_t i = 0; i < qd; ++i) {
    reqs[i].op = op;
    reqs[i].path = IoPath::kDirect;
    reqs[i].buf = base + static_cast<size_t>(i) * bs;
    reqs[i].len_bytes = bs;
    issue(&reqs[i]);
  }
  const uint64_t deadline_ns = static_cast<uint64_t>(seconds * 1e9);
  bool stopping = false;
  while (engine->outstanding() > 0) {
    done.clear();
    DB_RETURN_IF_ERROR(engine->Reap(1, &done));
    if (!stopping && sw.ElapsedNanos() >= deadline_ns) stopping = true;
    for (IoRequest* r : done) {
      if (!r->status.ok()) return r->status;
      out->bytes += r->done_bytes;
      ++out->requests;
      if (!stopping) issue(r);
    }
  }
  out->elapsed_s = sw.ElapsedSeconds();
  return Status::OK();
}

Status RunIobench(const IobenchArgs& a, IobenchResult* out) {
  DB_ASSIGN_OR_RETURN(uint64_t bs, ParseSize(a.bs));
  if (a.rw != "read" && a.rw != "write")
    return Status::InvalidArgument("--rw must be read or write, not '" + a.rw + "'");
  if (a.qd == 0 || a.qd > 1024)
    return Status::InvalidArgument("--qd must be between 1 and 1024, not " + std::to_string(a.qd));
  if (!(a.seconds > 0) || a.seconds > 3600)
    return Status::InvalidArgument("--seconds must be more than 0 and at most 3600");
  if (a.engine != "auto" && a.engine != "io_uring" && a.engine != "threadpool")
    return Status::InvalidArgument("--engine must be auto, io_uring or threadpool, not '" +
                                   a.engine + "'");
  const IoOp op = a.rw == "write" ? IoOp::kWrite : IoOp::kRead;

  store::StoreOpenOptions so;
  so.read_only = op == IoOp::kRead;
  DB_ASSIGN_OR_RETURN(std::unique_ptr<store::Store> st, store::Store::Open(a.store, so));
  const uint32_t lbs = st->device().info().logical_block_bytes;
  if (bs == 0 || bs % lbs != 0 || bs % kDirectIoAlignBytes != 0 || bs > kGiB)
    return Status::InvalidArgument("--bs must be a multiple of 4 KiB and of the logical block size (" +
                                   std::to_string(lbs) + " bytes), at most 1 GiB, not " + a.bs);

  if (op == IoOp::kRead) {
    const store::DataArea area = st->data_area();
    const uint64_t area_end = area.offset_bytes + area.len_bytes;
    out->range_offset_bytes = area.offset_bytes;
    if (!a.offset.empty()) {
      DB_ASSIGN_OR_RETURN(out->range_offset_bytes, ParseSize(a.offset));
    }
    if (out->range_offset_bytes < area.offset_bytes || out->range_offset_bytes >= area_end)
      return Status::InvalidArgument(
          "--offset " + a.offset + " lies outside the data area of " + a.store + " (bytes " +
          std::to_string(area.offset_bytes) + " to " + std::to_string(area_end) + ")");
    out->range_len_bytes = area_end - out->range_offset_bytes;
    if (!a.length.empty()) {
      DB_ASSIGN_OR_RETURN(uint64_t len, ParseSize(a.length));
      if (len == 0 || len > out->range_len_bytes)
        return Status::InvalidArgument(
            "--length " + a.length + " from byte " + std::to_string(out->range_offset_bytes) +
            " must be more than 0 and end inside the data area of " + a.store + " (at byte " +
            std::to_string(area_end) + ")");
      out->range_len_bytes = len;
    }
  } else if (!a.offset.empty() || !a.length.empty()) {
    return Status::InvalidArgument("--offset and --length choose what reads sweep; writes always "
                                   "go to the store's largest free extent");
  } else {
    // The largest free run: writing there cannot damage any KV data the store holds.
    store::Extent best;
    for (const store::Extent& e : st->allocator().FreeExtents())
      if (e.len_blocks > best.len_blocks) best = e;
    out->range_offset_bytes = st->OffsetBytes(best);
    out->range_len_bytes = st->LengthBytes(best);
  }
  // Start on a bs boundary inside the range, as fio does with --offset_align.
  const uint64_t aligned = AlignUp(out->range_offset_bytes, bs);
  const uint64_t skip = aligned - out->range_offset_bytes;
  out->range_len_bytes = skip >= out->range_len_bytes ? 0 : out->range_len_bytes - skip;
  out->range_offset_bytes = aligned;
  out->range_len_bytes = AlignDown(out->range_len_bytes, bs);
  if (out->range_len_bytes < bs)
    return Status::NoSpace(
        std::string(op == IoOp::kRead ? "the range read" : "the largest free extent") + " of " +
        a.store + " holds no whole " + FormatBytes(bs) + " request on a request-size boundary");

  // After the arguments are checked, so a bad range writes nothing.
  if (op == IoOp::kRead && NeverWrittenBytes(st->device().info(), st->data_area()) > 0) {
    // Reopen writable just for the fill; the measurement then uses a read-only store again.
    st.reset();
    DB_RETURN_IF_ERROR(FillNeverWritten(a.store, /*progress=*/!a.json));
    DB_ASSIGN_OR_RETURN(st, store::Store::Open(a.store, so));
  }
  const BlockDevice& dev = st->device();

  IoEngineOptions eo;
  eo.queue_depth = a.qd;
  eo.force_threadpool = a.engine == "threadpool";
  // One kernel request per bench request, as fio issues them; the block layer splits at
  // max_sectors_kb either way.
  eo.max_request_bytes = bs;
  DB_ASSIGN_OR_RETURN(std::unique_ptr<IoEngine> engine, CreateIoEngine(&dev, eo));
  if (a.engine == "io_uring" && engine->name() != "io_uring")
    return Status::NotSupported("io_uring is refused on this machine");
  out->engine = std::string(engine->name());
  out->device = dev.info().disk_name;
  return Sweep(engine.get(), op, bs, a.qd, a.seconds, a.plain_buffers, out);
}

}  // namespace

void AddIobenchCommand(CLI::App& app, int* exit_code) {
  auto args = std::make_shared<IobenchArgs>();
  CLI::App* cmd = app.add_subcommand(
      "iobench",
      "Measure the store's sequential O_DIRECT bandwidth through the I/O engine (the device's own "
      "peak, the yardstick for SSD utilization). Writes touch only free space of a dualblade store.");
  cmd->add_option("STORE", args->store, "Store: a raw block device or a store file")->required();
  cmd->add_option("--bs", args->bs, "Request size (K, M, G suffixes)")->capture_default_str();
  cmd->add_option("--qd", args->qd, "Requests kept in flight")->capture_default_str();
  cmd->add_option("--rw", args->rw, "read or write")->capture_default_str();
  cmd->add_option("--seconds", args->seconds, "How long to run")->capture_default_str();
  cmd->add_option("--engine", args->engine, "auto, io_uring or threadpool")->capture_default_str();
  cmd->add_flag("--plain-buffers", args->plain_buffers,
                "Use ordinary page-sized, unregistered buffers (for A/B measurements)");
  cmd->add_option("--offset", args->offset,
                  "Reads: the store byte offset to start at, inside the data area (K, M, G "
                  "suffixes; default: the data area's start)");
  cmd->add_option("--length", args->length,
                  "Reads: how many bytes to sweep from --offset (default: to the data area's end)");
  cmd->add_flag("--json", args->json, "Print one JSON object instead of text");
  cmd->callback([args, exit_code] {
    IobenchResult r;
    Status st = RunIobench(*args, &r);
    if (!st.ok()) {
      *exit_code = ReportError("iobench", st);
      return;
    }
    const uint64_t bs = ParseSize(args->bs).value();
    const double bw = r.elapsed_s > 0 ? static_cast<double>(r.bytes) / r.elapsed_s : 0;
    const double iops = r.elapsed_s > 0 ? static_cast<double>(r.requests) / r.elapsed_s : 0;
    if (args->json) {
      nlohmann::json j = {{"bytes_per_s", bw},
                          {"iops", iops},
                          {"bs", bs},
                          {"qd", args->qd},
                          {"rw", args->rw},
                          {"seconds", r.elapsed_s},
                          {"bytes", r.bytes},
                          {"engine", r.engine},
                          {"registered_buffers", r.registered_buffers},
                          {"device", r.device},
                          {"path", args->store},
                          {"offset_bytes", r.range_offset_bytes},
                          {"len_bytes", r.range_len_bytes}};
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("%s: sequential %s, %s requests, queue depth %u, %s engine%s, %.1f s\n",
                  args->store.c_str(), args->rw.c_str(), FormatBytes(bs).c_str(), args->qd,
                  r.engine.c_str(), r.registered_buffers ? " (registered buffers)" : "",
                  r.elapsed_s);
      std::printf("  bandwidth %s, %.0f IOPS, %s moved over %s from offset %llu (device %s)\n",
                  FormatBandwidth(bw).c_str(), iops, FormatBytes(r.bytes).c_str(),
                  FormatBytes(r.range_len_bytes).c_str(),
                  static_cast<unsigned long long>(r.range_offset_bytes),
                  r.device.empty() ? "unknown" : r.device.c_str());
    }
    *exit_code = 0;
  });
}

}  // namespace dualblade::cli
