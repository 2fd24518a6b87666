#include "compute/thread_pool.h"

#include <algorithm>

#include "common/check.h"

namespace dualblade::compute {
namespace {

// Workers spin this many polls before sleeping: a decode step issues dozens of short parallel
// sections back to back, and a condition-variable wake-up (tens of microseconds) per section would
// cost more than the work on small models.
constexpr int kSpinPolls = 1 << 14;
// Slices per participant: enough that a late or descheduled worker's share is picked up by the
// others in small pieces, few enough that claiming costs nothing.
constexpr int64_t kSlicesPerThread = 4;
// Slice indices and counts are 16-bit fields of next_slice_.
constexpr int64_t kMaxSlices = 0xFFFF;

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

void ThreadPool::Run(int64_t n, const RangeFn& fn, int64_t min_per_thread) {
  if (n <= 0) return;
  min_per_thread = std::max<int64_t>(1, min_per_thread);
  const int64_t slices =
      std::min<int64_t>({n_threads_ * kSlicesPerThread, std::max<int64_t>(1, n / min_per_thread),
                         kMaxSlices});
  if (slices == 1 || n_threads_ == 1) {
    fn(0, n, 0);
    return;
  }
  uint32_t gen;
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = &fn;
    job_n_ = n;
    slices_done_.store(0, std::memory_order_relaxed);
    gen = generation_.load(std::memory_order_relaxed) + 1;
    next_slice_.store((static_cast<uint64_t>(gen) << 32) | (static_cast<uint64_t>(slices) << 16),
                      std::memory_order_release);
    generation_.store(gen, std::memory_order_release);
  }
  wake_cv_.notify_all();
  RunSlices(gen, 0);
  // Yield now and then: with more threads than free cores a worker may hold a claimed slice.
  for (int i = 1; slices_done_.load(std::memory_order_acquire) != slices; ++i) {
    if (i % 64 == 0) {
      std::this_thread::yield();
    } else {
      CpuRelax();
    }
  }
}

void ThreadPool::RunSlices(uint32_t gen, int participant) {
  // The job's generation and slice count travel in the same word as the claim counter: a worker
  // that read the previous job's state can then never claim a slice against the next job's
  // count (it once could, while the next job was being published, and ran a slice twice). A
  // successful claim means the job is unfinished, so job_ and job_n_ are still its own.
  for (;;) {
    uint64_t cur = next_slice_.load(std::memory_order_acquire);
    int64_t slice, slices;
    do {
      if (static_cast<uint32_t>(cur >> 32) != gen) return;
      slices = static_cast<int64_t>((cur >> 16) & 0xFFFFu);
      slice = static_cast<int64_t>(cur & 0xFFFFu);
      if (slice >= slices) return;
    } while (!next_slice_.compare_exchange_weak(cur, cur + 1, std::memory_order_acq_rel,
                                                std::memory_order_acquire));
    const int64_t begin = job_n_ * slice / slices;
    const int64_t end = job_n_ * (slice + 1) / slices;
    (*job_)(begin, end, participant);
    slices_done_.fetch_add(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::WorkerLoop(int index) {
  uint32_t seen = 0;
  for (;;) {
    uint32_t gen = generation_.load(std::memory_order_acquire);
    for (int i = 0; gen == seen && i < kSpinPolls; ++i) {
      CpuRelax();
      gen = generation_.load(std::memory_order_acquire);
    }
    if (gen == seen) {
      std::unique_lock<std::mutex> lock(mu_);
      wake_cv_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      gen = generation_.load(std::memory_order_acquire);
    }
    seen = gen;
    if (stop_.load(std::memory_order_acquire)) return;
    RunSlices(gen, index);
  }
}

}  // namespace dualblade::compute
