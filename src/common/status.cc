#include "common/status.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace dualblade {

void CheckFailed(const char* file, int line, const char* expr, const char* msg) {
  std::fprintf(stderr, "%s:%d: check failed: %s%s%s\n", file, line, expr, msg ? ": " : "",
               msg ? msg : "");
  std::fflush(stderr);
  std::abort();
}

const char* Status::CodeName(Code code) {
  switch (code) {
    case Code::kOk: return "OK";
    case Code::kNotFound: return "NotFound";
    case Code::kCorruption: return "Corruption";
    case Code::kIOError: return "IOError";
    case Code::kInvalidArgument: return "InvalidArgument";
    case Code::kNotSupported: return "NotSupported";
    case Code::kNoSpace: return "NoSpace";
    case Code::kBusy: return "Busy";
  }
  return "Unknown";
}

Status Status::Annotate(std::string_view context) const {
  if (ok()) return *this;
  Status s = *this;
  s.msg_ = std::string(context) + ": " + msg_;
  return s;
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string s = CodeName(code_);
  s += ": ";
  s += msg_;
  if (injected_) s += " [injected]";
  return s;
}

Status ErrnoStatus(std::string_view context, int err) {
  std::string msg(context);
  msg += ": ";
  msg += std::strerror(err);
  Status s;
  switch (err) {
    case ENOENT: s = Status::NotFound(std::move(msg)); break;
    case ENOSPC: s = Status::NoSpace(std::move(msg)); break;
    case EINVAL: s = Status::InvalidArgument(std::move(msg)); break;
    case EBUSY: s = Status::Busy(std::move(msg)); break;
    case EOPNOTSUPP:
    case ENOSYS: s = Status::NotSupported(std::move(msg)); break;
    default: s = Status::IOError(std::move(msg)); break;
  }
  s.WithErrno(err);
  return s;
}

}  // namespace dualblade
