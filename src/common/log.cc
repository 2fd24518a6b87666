#include "common/log.h"

#include <atomic>
#include <cstdarg>
#include <cstdlib>
#include <cstring>

namespace dualblade {
namespace {

LogLevel LevelFromEnv() {
  const char* e = std::getenv("DUALBLADE_LOG");
  if (e == nullptr) return LogLevel::kInfo;
  if (std::strcmp(e, "debug") == 0) return LogLevel::kDebug;
  if (std::strcmp(e, "warn") == 0) return LogLevel::kWarn;
  if (std::strcmp(e, "error") == 0) return LogLevel::kError;
  return LogLevel::kInfo;
}

std::atomic<int>& LevelVar() {
  static std::atomic<int> level{static_cast<int>(LevelFromEnv())};
  return level;
}

}  // namespace

LogLevel CurrentLogLevel() { return static_cast<LogLevel>(LevelVar().load(std::memory_order_relaxed)); }
void SetLogLevel(LogLevel level) { LevelVar().store(static_cast<int>(level), std::memory_order_relaxed); }

void LogLine(LogLevel level, const char* fmt, ...) {
  if (level < CurrentLogLevel()) return;
  static const char* kTags[] = {"debug", "info", "warn", "error"};
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  std::fprintf(stderr, "dualblade: %s: %s\n", kTags[static_cast<int>(level)], buf);
}

}  // namespace dualblade
