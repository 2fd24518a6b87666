// The io_uring engine. One ring per engine (one engine per submitting thread).
//
// Life of a request (the submission loop of liburing's examples/io_uring-cp.c, with splitting):
//
//   Enqueue ──> pending_ ──carve──> piece (one slot, one SQE) ──submit──> kernel
//                  ▲                    ▲                                   │
//                  │                    └── retry_ <── short / -EAGAIN / -EINTR
//                  │                                                        │
//                  └─ a request stays at the front of pending_ until all   ▼
//                     its bytes are carved into pieces          piece done: last one finishes
//                                                               the request -> finished_ -> Reap
//
// A piece holds one of queue_depth slots from its first submission until it is done, so at most
// queue_depth kernel requests are ever in flight and the completion queue (twice the submission
// queue) cannot overflow. A failed piece stops the carving of its request; pieces already in flight
// finish, and the request carries the first error.
//
// Fixed buffers: a piece whose memory lies wholly in one registered buffer goes out as
// READ_FIXED / WRITE_FIXED, or, vectored, as READV_FIXED / WRITEV_FIXED where the kernel has them
// (probed at Init), so the kernel pins no pages for it. The vectored ones matter: a KV read into
// scattered chunk targets is one vectored request, and pinning its pages per request held direct
// reads to a fraction of the bandwidth that fixed reads reach on the development VM.
#include <liburing.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <span>
#include <unordered_map>

#include "common/log.h"
#include "io/io_engine_internal.h"

namespace dualblade::io_internal {

namespace {

// The vectored fixed-buffer ops came with Linux 6.15; liburing 2.3's headers (Debian 12) predate
// them. Values from the kernel's include/uapi/linux/io_uring.h (enum io_uring_op).
constexpr int kOpReadvFixed = 60;   // IORING_OP_READV_FIXED
constexpr int kOpWritevFixed = 61;  // IORING_OP_WRITEV_FIXED

// Whether the ring's kernel supports both vectored fixed-buffer ops.
bool ProbeVectoredFixed(io_uring* ring) {
  io_uring_probe* probe = io_uring_get_probe_ring(ring);
  if (probe == nullptr) return false;
  const bool ok = io_uring_opcode_supported(probe, kOpReadvFixed) &&
                  io_uring_opcode_supported(probe, kOpWritevFixed);
  io_uring_free_probe(probe);
  return ok;
}

class IoUringEngine final : public IoEngine {
 public:
  IoUringEngine(const BlockDevice* dev, const IoEngineOptions& opts)
      : dev_(dev), opts_(opts), max_piece_bytes_(MaxPieceBytes(*dev, opts)) {}

  Status Init() {
    io_uring_params params;
    std::memset(&params, 0, sizeof(params));
    int r = io_uring_queue_init_params(opts_.queue_depth, &ring_, &params);
    if (r < 0) return ErrnoStatus("io_uring_queue_init", -r);
    ring_ok_ = true;
    vectored_fixed_ = ProbeVectoredFixed(&ring_);
    if (opts_.register_files) {
      const int fds[2] = {dev_->direct_fd(), dev_->buffered_fd()};
      r = io_uring_register_files(&ring_, fds, 2);
      if (r == 0) {
        fixed_files_ = true;
      } else {
        DB_LOG_DEBUG("io_uring_register_files failed (%s); using plain descriptors",
                     std::strerror(-r));
      }
    }
    slots_.resize(opts_.queue_depth);
    free_slots_.reserve(opts_.queue_depth);
    for (uint32_t i = opts_.queue_depth; i > 0; --i) free_slots_.push_back(i - 1);
    return Status::OK();
  }

  ~IoUringEngine() override {
    if (!ring_ok_) return;
    // The kernel may still be writing into callers' buffers: wait for everything in flight before
    // the ring goes away.
    std::vector<IoRequest*> ignored;
    while (in_kernel_ > 0 || prepared_ > 0) {
      int r = io_uring_submit_and_wait(&ring_, 1);
      if (r < 0 && r != -EINTR) break;
      if (r > 0) {
        in_kernel_ += static_cast<uint32_t>(r);
        prepared_ -= static_cast<uint32_t>(r);
      }
      ProcessCompletions();
      retry_.clear();  // abandoned: nobody will reap them
    }
    // io_uring_queue_exit drops the registered files only when the kernel's deferred ring teardown
    // runs, so the device's exclusive claim would outlive this engine for a moment and an
    // immediate reopen of the same block device would fail with EBUSY. Unregistering waits for
    // the file table to be released.
    if (fixed_files_) io_uring_unregister_files(&ring_);
    io_uring_queue_exit(&ring_);
  }

  void Enqueue(IoRequest* req) override {
    req->done_bytes = 0;
    req->status = ValidateRequest(*dev_, *req);
    ++outstanding_;
    if (!req->status.ok() || req->len_bytes == 0) {
      finished_.push_back(req);
      return;
    }
    pending_.push_back({req});
  }

  Status Reap(size_t min_complete, std::vector<IoRequest*>* done) override {
    if (!broken_.ok()) return broken_;
    min_complete = std::min(min_complete, outstanding_);
    size_t handed = 0;
    for (;;) {
      ProcessCompletions();
      Fill();
      handed += finished_.size();
      outstanding_ -= finished_.size();
      done->insert(done->end(), finished_.begin(), finished_.end());
      finished_.clear();
      const unsigned wait_nr = handed >= min_complete ? 0 : 1;
      if (prepared_ == 0 && wait_nr == 0) return Status::OK();
      DB_CHECK_MSG(prepared_ + in_kernel_ > 0, "waiting for completions with nothing in flight");
      int r = io_uring_submit_and_wait(&ring_, wait_nr);
      if (r == -EINTR) continue;
      if (r < 0) {
        broken_ = ErrnoStatus("io_uring_submit on " + dev_->info().path, -r);
        return broken_;
      }
      in_kernel_ += static_cast<uint32_t>(r);
      prepared_ -= static_cast<uint32_t>(r);
    }
  }

  bool RegisterBuffer(uint8_t* buf, uint64_t len_bytes) override {
    DB_CHECK_MSG(outstanding_ == 0, "RegisterBuffer with requests outstanding");
    // The kernel takes at most 1 GiB per registered buffer.
    if (buf == nullptr || len_bytes == 0 || len_bytes > kMaxRegisteredBytes ||
        buffers_.size() >= kMaxRegisteredBuffers)
      return false;
    std::vector<iovec> previous = buffers_;
    std::vector<iovec> next = buffers_;
    next.push_back({buf, static_cast<size_t>(len_bytes)});
    if (ReplaceBufferTable(std::move(next))) return true;
    (void)ReplaceBufferTable(std::move(previous));  // the others as before, if the kernel lets us
    return false;
  }

  bool UnregisterBuffer(uint8_t* buf) override {
    DB_CHECK_MSG(outstanding_ == 0, "UnregisterBuffer with requests outstanding");
    auto it = std::find_if(buffers_.begin(), buffers_.end(),
                           [&](const iovec& b) { return b.iov_base == buf; });
    if (it == buffers_.end()) return false;
    std::vector<iovec> rest = buffers_;
    rest.erase(rest.begin() + (it - buffers_.begin()));
    // Whether or not the rest could be registered again, buf is not registered any more:
    // requests into memory that is not pin their pages, correct either way.
    (void)ReplaceBufferTable(std::move(rest));
    return true;
  }

  bool UsesRegisteredBuffer(const IoRequest& req) const override {
    if (req.iov != nullptr) {
      return vectored_fixed_ &&
             RegisteredIndexOfIov({req.iov, req.iov + req.iov_count}) >= 0;
    }
    return RegisteredIndex(req.buf, req.len_bytes) >= 0;
  }

  uint64_t fixed_requests() const override { return fixed_requests_; }
  bool vectored_fixed_supported() const override { return vectored_fixed_; }

  size_t outstanding() const override { return outstanding_; }
  std::string_view name() const override { return "io_uring"; }
  const IoEngineOptions& options() const override { return opts_; }

 private:
  struct Pending {
    IoRequest* req;
    uint64_t carved_bytes = 0;  // bytes of req already handed to pieces
  };
  // One piece in flight (or waiting to be resubmitted). The request's own progress is kept in its
  // output fields (done_bytes, status) and in pieces_out_.
  struct Slot {
    IoRequest* req = nullptr;
    uint64_t offset_bytes = 0;  // of the piece
    uint8_t* buf = nullptr;
    uint64_t len_bytes = 0;
    uint64_t done_bytes = 0;  // of the piece; the rest is resubmitted
    uint64_t rel_offset_bytes = 0;  // of the piece within its request (vectored requests)
    std::vector<iovec> iov;         // the piece's rest, for a vectored request
  };

  // Prepares SQEs: resubmissions first (they hold slots already), then new pieces while slots last.
  void Fill() {
    while (!retry_.empty()) {
      if (!PrepareSqe(retry_.front())) return;
      retry_.pop_front();
    }
    while (!pending_.empty()) {
      Pending& p = pending_.front();
      IoRequest* req = p.req;
      if (!req->status.ok() || p.carved_bytes == req->len_bytes) {
        // Fully carved (or failed: stop carving). The request finishes with its last piece.
        pending_.pop_front();
        if (PiecesOut(req) == 0) finished_.push_back(req);
        continue;
      }
      if (free_slots_.empty()) return;
      if (io_uring_sq_space_left(&ring_) == 0) return;
      uint32_t s = free_slots_.back();
      free_slots_.pop_back();
      const uint64_t len = std::min(max_piece_bytes_, req->len_bytes - p.carved_bytes);
      slots_[s] = Slot{req,  req->offset_bytes + p.carved_bytes,
                       req->buf == nullptr ? nullptr : req->buf + p.carved_bytes,
                       len,  0,  p.carved_bytes,  std::move(slots_[s].iov)};
      p.carved_bytes += len;
      ++pieces_out_[req];
      bool ok = PrepareSqe(s);
      DB_CHECK(ok);
    }
  }

  // Returns false when the submission queue is full.
  bool PrepareSqe(uint32_t s) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) return false;
    Slot& sl = slots_[s];
    const bool direct = sl.req->path == IoPath::kDirect;
    const int fd = fixed_files_ ? (direct ? 0 : 1) : DescriptorFor(*dev_, *sl.req);
    const uint64_t off = sl.offset_bytes + sl.done_bytes;
    const unsigned len = static_cast<unsigned>(sl.len_bytes - sl.done_bytes);
    if (sl.req->iov != nullptr) {
      // The slot keeps the iovec array until the piece completes (the kernel may read it late).
      SliceIov(*sl.req, sl.rel_offset_bytes + sl.done_bytes, len, &sl.iov);
      const auto cnt = static_cast<unsigned>(sl.iov.size());
      const bool read = sl.req->op == IoOp::kRead;
      const int index = vectored_fixed_ ? RegisteredIndexOfIov(sl.iov) : -1;
      if (index >= 0) {
        // Like READV/WRITEV (addr = the iovec array, len = its count), plus the buffer that every
        // iovec lies in.
        io_uring_prep_rw(read ? kOpReadvFixed : kOpWritevFixed, sqe, fd, sl.iov.data(), cnt, off);
        sqe->buf_index = static_cast<uint16_t>(index);
        ++fixed_requests_;
      } else if (read) {
        io_uring_prep_readv(sqe, fd, sl.iov.data(), cnt, off);
      } else {
        io_uring_prep_writev(sqe, fd, sl.iov.data(), cnt, off);
      }
      if (fixed_files_) sqe->flags |= IOSQE_FIXED_FILE;
      io_uring_sqe_set_data64(sqe, s);
      ++prepared_;
      return true;
    }
    uint8_t* buf = sl.buf + sl.done_bytes;
    const int index = RegisteredIndex(buf, len);
    if (index >= 0) ++fixed_requests_;
    if (sl.req->op == IoOp::kRead) {
      if (index >= 0) {
        io_uring_prep_read_fixed(sqe, fd, buf, len, off, index);
      } else {
        io_uring_prep_read(sqe, fd, buf, len, off);
      }
    } else {
      if (index >= 0) {
        io_uring_prep_write_fixed(sqe, fd, buf, len, off, index);
      } else {
        io_uring_prep_write(sqe, fd, buf, len, off);
      }
    }
    if (fixed_files_) sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(sqe, s);
    ++prepared_;
    return true;
  }

  // Replaces the registered-buffer table by NEXT (liburing 2.3 has no call that adds or drops one
  // entry: the table goes as a whole, which is safe while the ring is idle). On failure nothing
  // is registered and false is returned.
  bool ReplaceBufferTable(std::vector<iovec> next) {
    if (!buffers_.empty()) io_uring_unregister_buffers(&ring_);
    buffers_.clear();
    if (next.empty()) return true;
    int r = io_uring_register_buffers(&ring_, next.data(), static_cast<unsigned>(next.size()));
    if (r != 0) {
      DB_LOG_DEBUG("io_uring_register_buffers of %zu buffers failed (%s); requests pin their "
                   "pages instead", next.size(), std::strerror(-r));
      return false;
    }
    buffers_ = std::move(next);
    return true;
  }

  // Index of the registered buffer holding [buf, buf + len) wholly, or -1.
  int RegisteredIndex(const uint8_t* buf, uint64_t len) const {
    for (size_t i = 0; i < buffers_.size(); ++i) {
      const auto* base = static_cast<const uint8_t*>(buffers_[i].iov_base);
      if (buf >= base && buf + len <= base + buffers_[i].iov_len) return static_cast<int>(i);
    }
    return -1;
  }

  // Index of the registered buffer holding every iovec of iov wholly (one buffer for all), or -1.
  int RegisteredIndexOfIov(std::span<const iovec> iov) const {
    if (iov.empty()) return -1;
    const int index = RegisteredIndex(static_cast<const uint8_t*>(iov[0].iov_base), iov[0].iov_len);
    if (index < 0) return -1;
    const auto* base = static_cast<const uint8_t*>(buffers_[index].iov_base);
    const uint8_t* end = base + buffers_[index].iov_len;
    for (const iovec& v : iov.subspan(1)) {
      const auto* p = static_cast<const uint8_t*>(v.iov_base);
      if (p < base || p + v.iov_len > end) return -1;
    }
    return index;
  }

  // Reaps every completion already posted, without waiting.
  void ProcessCompletions() {
    io_uring_cqe* cqe;
    unsigned head;
    unsigned n = 0;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      ++n;
      --in_kernel_;
      OnCompletion(static_cast<uint32_t>(cqe->user_data), cqe->res);
    }
    io_uring_cq_advance(&ring_, n);
  }

  void OnCompletion(uint32_t s, int res) {
    Slot& sl = slots_[s];
    IoRequest* req = sl.req;
    int64_t result = res;
    bool injected = false;
    if (opts_.fault_hook != nullptr)
      injected = opts_.fault_hook->OnTransfer(req->op, sl.offset_bytes + sl.done_bytes,
                                              sl.len_bytes - sl.done_bytes, &result);
    if (result == -EAGAIN || result == -EINTR) {
      retry_.push_back(s);
      return;
    }
    if (result <= 0) {
      if (req->status.ok())
        req->status = TransferError(*dev_, *req, sl.offset_bytes + sl.done_bytes,
                                    sl.len_bytes - sl.done_bytes, result, injected);
      FinishPiece(s);
      return;
    }
    sl.done_bytes += static_cast<uint64_t>(result);
    req->done_bytes += static_cast<uint64_t>(result);
    if (sl.done_bytes < sl.len_bytes) {
      retry_.push_back(s);  // short transfer: the rest goes out again
      return;
    }
    FinishPiece(s);
  }

  void FinishPiece(uint32_t s) {
    IoRequest* req = slots_[s].req;
    slots_[s] = Slot{};
    free_slots_.push_back(s);
    auto it = pieces_out_.find(req);
    if (--it->second > 0) return;
    pieces_out_.erase(it);
    // Still being carved (only the front of pending_ ever is): it finishes when Fill pops it.
    if (!pending_.empty() && pending_.front().req == req) return;
    finished_.push_back(req);
  }

  uint32_t PiecesOut(IoRequest* req) const {
    auto it = pieces_out_.find(req);
    return it == pieces_out_.end() ? 0 : it->second;
  }

  const BlockDevice* dev_;
  const IoEngineOptions opts_;
  const uint64_t max_piece_bytes_;
  io_uring ring_;
  bool ring_ok_ = false;
  bool fixed_files_ = false;
  bool vectored_fixed_ = false;  // the kernel has READV_FIXED and WRITEV_FIXED
  uint64_t fixed_requests_ = 0;
  Status broken_;

  static constexpr uint64_t kMaxRegisteredBytes = 1ull << 30;
  static constexpr size_t kMaxRegisteredBuffers = 16;
  std::vector<iovec> buffers_;       // registered with the ring, in index order

  std::vector<Slot> slots_;          // queue_depth entries
  std::vector<uint32_t> free_slots_;
  std::deque<Pending> pending_;      // requests with bytes not yet carved into pieces
  std::deque<uint32_t> retry_;       // slots whose piece must be (re)submitted
  std::unordered_map<IoRequest*, uint32_t> pieces_out_;  // pieces holding a slot, per request
  std::vector<IoRequest*> finished_;  // complete, not yet handed back
  size_t outstanding_ = 0;
  uint32_t prepared_ = 0;   // SQEs prepared and not yet submitted
  uint32_t in_kernel_ = 0;  // submitted, completion not yet reaped
};

}  // namespace

Result<std::unique_ptr<IoEngine>> NewIoUringEngine(const BlockDevice* dev,
                                                   const IoEngineOptions& opts) {
  auto engine = std::make_unique<IoUringEngine>(dev, opts);
  DB_RETURN_IF_ERROR(engine->Init());
  return std::unique_ptr<IoEngine>(std::move(engine));
}

}  // namespace dualblade::io_internal
