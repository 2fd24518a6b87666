// A fixed pool of worker threads for data-parallel kernels (`-t THREADS`): the caller splits a
// range into one contiguous slice per thread and takes part itself, so a pool of 1 runs inline.
// The split is static and depends only on (n, size()), so results never depend on timing.
// Thread-safety: ParallelFor may be called from one thread at a time (the engine's thread).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
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

  // Splits [0, n) into up to size() contiguous slices of at least `min_per_thread` items and runs
  // fn(begin, end, thread_index) on each; returns when every slice is done. Slice t covers
  // [n*t/k, n*(t+1)/k) for k slices.
  using RangeFn = std::function<void(int64_t begin, int64_t end, int thread_index)>;
  void ParallelFor(int64_t n, const RangeFn& fn, int64_t min_per_thread = 1);

 private:
  void WorkerLoop(int index);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_cv_;
  // Job description, published by bumping generation_ (release) and read after seeing it (acquire).
  const RangeFn* job_ = nullptr;
  int64_t job_n_ = 0;
  int job_slices_ = 0;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace dualblade::compute
