// The thread-pool engine: queue_depth worker threads doing blocking pread/pwrite, for kernels or
// sandboxes that refuse io_uring. Same contract as the io_uring engine: nothing starts before
// Reap, requests larger than the max piece are split, short transfers, -EAGAIN and -EINTR are
// resumed, each request carries its first error.
//
// Thread-safety: Enqueue/Reap/outstanding belong to the owning thread; the workers share only
// queue_, finished_ and the per-request counters, all under mu_.
#include <pthread.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "io/io_engine_internal.h"

namespace dualblade::io_internal {

namespace {

// One worker per queue slot keeps queue_depth transfers in flight; beyond this the threads cost
// more than the depth gains.
constexpr uint32_t kMaxWorkers = 128;

class ThreadPoolEngine final : public IoEngine {
 public:
  ThreadPoolEngine(const BlockDevice* dev, const IoEngineOptions& opts)
      : dev_(dev), opts_(opts), max_piece_bytes_(MaxPieceBytes(*dev, opts)) {
    const uint32_t n = std::min(opts.queue_depth, kMaxWorkers);
    workers_.reserve(n);
    for (uint32_t i = 0; i < n; ++i) {
      workers_.emplace_back([this] { WorkerLoop(); });
      pthread_setname_np(workers_.back().native_handle(), "dualblade-io");
    }
  }

  ~ThreadPoolEngine() override {
    {
      // Queued pieces never start; pieces being transferred finish before the workers exit, so no
      // thread touches a caller's buffer after the engine is gone.
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      queue_.clear();
    }
    work_cv_.notify_all();
    for (std::thread& t : workers_) t.join();
  }

  void Enqueue(IoRequest* req) override {
    req->done_bytes = 0;
    req->status = ValidateRequest(*dev_, *req);
    ++outstanding_;
    if (!req->status.ok() || req->len_bytes == 0) {
      local_finished_.push_back(req);
      return;
    }
    const uint32_t pieces =
        static_cast<uint32_t>((req->len_bytes + max_piece_bytes_ - 1) / max_piece_bytes_);
    staged_.push_back({req, pieces});
  }

  Status Reap(size_t min_complete, std::vector<IoRequest*>* done) override {
    min_complete = std::min(min_complete, outstanding_);
    size_t handed = local_finished_.size();
    done->insert(done->end(), local_finished_.begin(), local_finished_.end());
    local_finished_.clear();
    std::unique_lock<std::mutex> lock(mu_);
    if (!staged_.empty()) {
      for (const Staged& s : staged_) {
        pieces_left_[s.req] = s.pieces;
        for (uint64_t off = 0; off < s.req->len_bytes; off += max_piece_bytes_)
          queue_.push_back({s.req, off, std::min(max_piece_bytes_, s.req->len_bytes - off)});
      }
      staged_.clear();
      work_cv_.notify_all();
    }
    done_cv_.wait(lock, [&] { return handed + finished_.size() >= min_complete; });
    handed += finished_.size();
    done->insert(done->end(), finished_.begin(), finished_.end());
    finished_.clear();
    lock.unlock();
    outstanding_ -= handed;
    return Status::OK();
  }

  size_t outstanding() const override { return outstanding_; }
  std::string_view name() const override { return "threadpool"; }
  const IoEngineOptions& options() const override { return opts_; }

 private:
  struct Staged {
    IoRequest* req;
    uint32_t pieces;
  };
  struct Piece {
    IoRequest* req;
    uint64_t rel_offset_bytes;  // within the request
    uint64_t len_bytes;
  };

  void WorkerLoop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      work_cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      Piece p = queue_.front();
      queue_.pop_front();
      lock.unlock();
      uint64_t moved = 0;
      Status st = Transfer(p, &moved);
      lock.lock();
      IoRequest* req = p.req;
      req->done_bytes += moved;
      if (!st.ok() && req->status.ok()) req->status = std::move(st);
      auto it = pieces_left_.find(req);
      if (--it->second == 0) {
        pieces_left_.erase(it);
        finished_.push_back(req);
        done_cv_.notify_one();
      }
    }
  }

  // Moves one piece with blocking calls, resuming short transfers and EINTR/EAGAIN.
  Status Transfer(const Piece& p, uint64_t* moved) {
    const IoRequest& req = *p.req;
    const int fd = DescriptorFor(*dev_, req);
    while (*moved < p.len_bytes) {
      const uint64_t off = req.offset_bytes + p.rel_offset_bytes + *moved;
      const size_t len = static_cast<size_t>(p.len_bytes - *moved);
      ssize_t n;
      if (req.iov != nullptr) {
        std::vector<iovec> iov;
        SliceIov(req, p.rel_offset_bytes + *moved, len, &iov);
        const int cnt = static_cast<int>(iov.size());
        n = req.op == IoOp::kRead ? ::preadv(fd, iov.data(), cnt, static_cast<off_t>(off))
                                  : ::pwritev(fd, iov.data(), cnt, static_cast<off_t>(off));
      } else {
        uint8_t* buf = req.buf + p.rel_offset_bytes + *moved;
        n = req.op == IoOp::kRead ? ::pread(fd, buf, len, static_cast<off_t>(off))
                                  : ::pwrite(fd, buf, len, static_cast<off_t>(off));
      }
      int64_t result = n < 0 ? -static_cast<int64_t>(errno) : static_cast<int64_t>(n);
      bool injected = false;
      if (opts_.fault_hook != nullptr)
        injected = opts_.fault_hook->OnTransfer(req.op, off, len, &result);
      if (result == -EINTR || result == -EAGAIN) continue;
      if (result <= 0) return TransferError(*dev_, req, off, len, result, injected);
      *moved += static_cast<uint64_t>(result);
    }
    return Status::OK();
  }

  const BlockDevice* dev_;
  const IoEngineOptions opts_;
  const uint64_t max_piece_bytes_;

  // Owning thread only.
  std::vector<Staged> staged_;            // enqueued, not yet released to the workers
  std::vector<IoRequest*> local_finished_;  // rejected at Enqueue, or empty
  size_t outstanding_ = 0;

  std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  bool stop_ = false;                                      // GUARDED_BY(mu_)
  std::deque<Piece> queue_;                                // GUARDED_BY(mu_)
  std::unordered_map<IoRequest*, uint32_t> pieces_left_;   // GUARDED_BY(mu_)
  std::vector<IoRequest*> finished_;                       // GUARDED_BY(mu_)
  std::vector<std::thread> workers_;
};

}  // namespace

std::unique_ptr<IoEngine> NewThreadPoolEngine(const BlockDevice* dev, const IoEngineOptions& opts) {
  return std::make_unique<ThreadPoolEngine>(dev, opts);
}

}  // namespace dualblade::io_internal
