// Minimal leveled logging to stderr. Thread-safety: each call writes one line with one fprintf.
#pragma once

#include <cstdio>

namespace dualblade {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Default kInfo; DUALBLADE_LOG=debug|info|warn|error overrides it at first use.
LogLevel CurrentLogLevel();
void SetLogLevel(LogLevel level);
void LogLine(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

}  // namespace dualblade

#define DB_LOG_DEBUG(...) ::dualblade::LogLine(::dualblade::LogLevel::kDebug, __VA_ARGS__)
#define DB_LOG_INFO(...) ::dualblade::LogLine(::dualblade::LogLevel::kInfo, __VA_ARGS__)
#define DB_LOG_WARN(...) ::dualblade::LogLine(::dualblade::LogLevel::kWarn, __VA_ARGS__)
#define DB_LOG_ERROR(...) ::dualblade::LogLine(::dualblade::LogLevel::kError, __VA_ARGS__)
