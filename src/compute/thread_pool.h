// A fixed pool of worker threads for data-parallel kernels (`-t THREADS`). ParallelFor splits a
// range into slices that the caller and the workers claim dynamically, so a worker the kernel
// has descheduled (a busy machine) delays nothing: the others take its share. Which participant
// runs a slice varies from run to run; kernels keep results independent of it (scratch may be
// per participant, results may not), so outputs never depend on timing.
// Thread-safety: ParallelFor may be called from one thread at a time (the engine's thread).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace dualblade::compute {

class ThreadPool {
 public:
  // `n_threads` counts the calling thread; values below 1 mean 1.
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Runs fn(begin, end, participant) over slices covering [0, n) exactly once, each slice of at
  // least `min_per_thread` items (except when n is smaller), and returns when all are done.
  // `participant` is in [0, size()): 0 is the caller; use it only to pick scratch buffers.
  // fn is any callable taking (int64_t begin, int64_t end, int participant); it is referenced,
  // not copied, so a call allocates nothing (a decode step makes hundreds of them).
  template <typename Fn>
  void ParallelFor(int64_t n, Fn&& fn, int64_t min_per_thread = 1) {
    using F = std::remove_reference_t<Fn>;
    RangeFn ref;
    ref.obj = const_cast<void*>(static_cast<const void*>(std::addressof(fn)));
    ref.call = [](void* obj, int64_t begin, int64_t end, int participant) {
      (*static_cast<F*>(obj))(begin, end, participant);
    };
    Run(n, ref, min_per_thread);
  }

 private:
  // A non-owning reference to the caller's callable.
  struct RangeFn {
    void* obj = nullptr;
    void (*call)(void* obj, int64_t begin, int64_t end, int participant) = nullptr;
    void operator()(int64_t begin, int64_t end, int participant) const {
      call(obj, begin, end, participant);
    }
  };
  void Run(int64_t n, const RangeFn& fn, int64_t min_per_thread);
  void WorkerLoop(int index);
  // Claims and runs slices of job `gen` until none is left or a newer job replaced it.
  void RunSlices(uint32_t gen, int participant);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_cv_;
  // Current job, written under mu_ before generation_ is bumped.
  const RangeFn* job_ = nullptr;
  int64_t job_n_ = 0;
  std::atomic<uint32_t> generation_{0};
  // (generation << 32) | (slice count << 16) | next unclaimed slice: a claim succeeds only for
  // the current job and only below its own slice count.
  std::atomic<uint64_t> next_slice_{0};
  std::atomic<int64_t> slices_done_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace dualblade::compute
