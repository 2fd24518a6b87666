#include "compute/thread_pool.h"

#include <algorithm>

#include "common/check.h"

namespace dualblade::compute {
namespace {

// Workers spin this many polls before sleeping: a decode step issues dozens of short parallel
// sections back to back, and a condition-variable wake-up (tens of microseconds) per section would
// cost more than the work on small models.
constexpr int kSpinPolls = 1 << 14;

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
  workers_.reserve(n_threads_ - 1);
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { WorkerLoop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true, std::memory_order_release);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::ParallelFor(int64_t n, const RangeFn& fn, int64_t min_per_thread) {
  if (n <= 0) return;
  min_per_thread = std::max<int64_t>(1, min_per_thread);
  const int slices =
      static_cast<int>(std::min<int64_t>(n_threads_, std::max<int64_t>(1, n / min_per_thread)));
  if (slices == 1) {
    fn(0, n, 0);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = &fn;
    job_n_ = n;
    job_slices_ = slices;
    pending_.store(slices - 1, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_cv_.notify_all();
  fn(0, n / slices, 0);
  // Yield now and then: with more threads than free cores a worker may need this core to finish.
  for (int i = 1; pending_.load(std::memory_order_acquire) != 0; ++i) {
    if (i % 256 == 0) {
      std::this_thread::yield();
    } else {
      CpuRelax();
    }
  }
}

void ThreadPool::WorkerLoop(int index) {
  uint64_t seen = 0;
  for (;;) {
    uint64_t gen = generation_.load(std::memory_order_acquire);
    for (int i = 0; gen == seen && i < kSpinPolls; ++i) {
      CpuRelax();
      gen = generation_.load(std::memory_order_acquire);
    }
    if (gen == seen) {
      std::unique_lock<std::mutex> lock(mu_);
      wake_cv_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
    }
    // Read the job and its generation together under the lock: a worker that was not needed for
    // one job may wake up late, and must run the job that is current, exactly once.
    const RangeFn* job;
    int64_t n;
    int slices;
    {
      std::lock_guard<std::mutex> lock(mu_);
      seen = generation_.load(std::memory_order_acquire);
      job = job_;
      n = job_n_;
      slices = job_slices_;
    }
    if (stop_.load(std::memory_order_acquire)) return;
    if (index < slices) {
      const int64_t begin = n * index / slices;
      const int64_t end = n * (index + 1) / slices;
      (*job)(begin, end, index);
      pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }
}

}  // namespace dualblade::compute
