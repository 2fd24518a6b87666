// Status and Result<T>: the error currency of every function that touches the outside world
// (files, devices, model files, user input). A Status is a code plus a one-sentence message.
// Thread-safety: values; safe to copy between threads, no shared state.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "common/check.h"

namespace dualblade {

class [[nodiscard]] Status {
 public:
  enum class Code : uint8_t {
    kOk = 0,
    kNotFound,
    kCorruption,
    kIOError,
    kInvalidArgument,
    kNotSupported,
    kNoSpace,
    kBusy,
  };

  Status() = default;  // OK

  static Status OK() { return Status(); }
  static Status NotFound(std::string msg) { return Status(Code::kNotFound, std::move(msg)); }
  static Status Corruption(std::string msg) { return Status(Code::kCorruption, std::move(msg)); }
  static Status IOError(std::string msg) { return Status(Code::kIOError, std::move(msg)); }
  static Status InvalidArgument(std::string msg) {
    return Status(Code::kInvalidArgument, std::move(msg));
  }
  static Status NotSupported(std::string msg) { return Status(Code::kNotSupported, std::move(msg)); }
  static Status NoSpace(std::string msg) { return Status(Code::kNoSpace, std::move(msg)); }
  static Status Busy(std::string msg) { return Status(Code::kBusy, std::move(msg)); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return msg_; }
  // errno that caused this status, 0 when none (set by ErrnoStatus).
  int sys_errno() const { return errno_; }
  // True when a fault-injecting wrapper produced this error rather than the kernel.
  bool injected() const { return injected_; }

  bool IsNotFound() const { return code_ == Code::kNotFound; }
  bool IsCorruption() const { return code_ == Code::kCorruption; }
  bool IsIOError() const { return code_ == Code::kIOError; }
  bool IsInvalidArgument() const { return code_ == Code::kInvalidArgument; }
  bool IsNotSupported() const { return code_ == Code::kNotSupported; }
  bool IsNoSpace() const { return code_ == Code::kNoSpace; }
  bool IsBusy() const { return code_ == Code::kBusy; }

  Status& WithErrno(int e) {
    errno_ = e;
    return *this;
  }
  Status& MarkInjected() {
    injected_ = true;
    return *this;
  }
  // Returns a copy whose message is "context: message".
  Status Annotate(std::string_view context) const;

  // "IOError: read /dev/loop0 at 4096: Input/output error" (for logs and tests).
  std::string ToString() const;
  static const char* CodeName(Code code);

 private:
  Status(Code code, std::string msg) : code_(code), msg_(std::move(msg)) {}

  Code code_ = Code::kOk;
  int errno_ = 0;
  bool injected_ = false;
  std::string msg_;
};

// Turns errno into a Status with context, like LevelDB's PosixError:
// ENOENT -> NotFound, ENOSPC -> NoSpace, EINVAL -> InvalidArgument, EBUSY -> Busy,
// EOPNOTSUPP/ENOSYS -> NotSupported, anything else -> IOError.
Status ErrnoStatus(std::string_view context, int err);

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT: implicit by design
    DB_CHECK_MSG(!std::get<Status>(v_).ok(), "Result constructed from an OK status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & {
    DB_CHECK_MSG(ok(), status().ToString().c_str());
    return std::get<T>(v_);
  }
  const T& value() const& {
    DB_CHECK_MSG(ok(), status().ToString().c_str());
    return std::get<T>(v_);
  }
  T&& value() && {
    DB_CHECK_MSG(ok(), status().ToString().c_str());
    return std::get<T>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<Status, T> v_;
};

}  // namespace dualblade

// Propagates a non-OK Status from an expression returning Status.
#define DB_RETURN_IF_ERROR(expr)                \
  do {                                          \
    ::dualblade::Status _db_st = (expr);        \
    if (!_db_st.ok()) return _db_st;            \
  } while (0)

#define DB_CONCAT_INNER(a, b) a##b
#define DB_CONCAT(a, b) DB_CONCAT_INNER(a, b)

// `DB_ASSIGN_OR_RETURN(auto x, FunctionReturningResult());`
#define DB_ASSIGN_OR_RETURN(lhs, expr) \
  DB_ASSIGN_OR_RETURN_IMPL(DB_CONCAT(_db_res_, __LINE__), lhs, expr)
#define DB_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.status();            \
  lhs = std::move(tmp).value()
