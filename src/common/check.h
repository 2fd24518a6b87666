// Always-on invariant checks (like GGML_ASSERT): they abort with file:line in every build type.
// Use them for programming errors only; outside input is reported through Status, never checked.
#pragma once

namespace dualblade {
[[noreturn]] void CheckFailed(const char* file, int line, const char* expr, const char* msg);
}  // namespace dualblade

#define DB_CHECK(cond)                                                          \
  do {                                                                          \
    if (__builtin_expect(!(cond), 0))                                           \
      ::dualblade::CheckFailed(__FILE__, __LINE__, #cond, nullptr);             \
  } while (0)

#define DB_CHECK_MSG(cond, msg)                                                 \
  do {                                                                          \
    if (__builtin_expect(!(cond), 0))                                           \
      ::dualblade::CheckFailed(__FILE__, __LINE__, #cond, (msg));               \
  } while (0)
