// Monotonic time helpers. Thread-safety: stateless.
#pragma once

#include <chrono>
#include <cstdint>

namespace dualblade {

inline uint64_t NowNanos() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}
inline uint64_t NowMicros() { return NowNanos() / 1000; }

// Measures elapsed time from construction (or the last Reset).
class Stopwatch {
 public:
  Stopwatch() : start_ns_(NowNanos()) {}
  void Reset() { start_ns_ = NowNanos(); }
  uint64_t ElapsedNanos() const { return NowNanos() - start_ns_; }
  double ElapsedSeconds() const { return static_cast<double>(ElapsedNanos()) * 1e-9; }
  double ElapsedMillis() const { return static_cast<double>(ElapsedNanos()) * 1e-6; }

 private:
  uint64_t start_ns_;
};

}  // namespace dualblade
