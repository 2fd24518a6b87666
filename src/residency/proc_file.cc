#include "residency/proc_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>

namespace dualblade {

namespace {

// One page holds every file we sample except memory.stat and meminfo; the buffer grows on demand
// and then stays, so steady-state sampling allocates nothing.
constexpr size_t kInitialBufBytes = 4096;
// Guards against a runaway file; the largest file read here (v1 memory.stat) is about 2 KiB.
constexpr size_t kMaxFileBytes = 1 << 20;

Status ReadAllAt0(int fd, const std::string& path, std::string* buf, size_t* len) {
  if (buf->size() < kInitialBufBytes) buf->resize(kInitialBufBytes);
  size_t total = 0;
  for (;;) {
    if (total == buf->size()) {
      if (buf->size() >= kMaxFileBytes) {
        return Status::Corruption("read " + path + ": file larger than " +
                                  std::to_string(kMaxFileBytes) + " bytes");
      }
      buf->resize(buf->size() * 2);
    }
    ssize_t n = ::pread(fd, buf->data() + total, buf->size() - total, static_cast<off_t>(total));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("read " + path, errno);
    }
    if (n == 0) break;
    total += static_cast<size_t>(n);
    // seq_file (procfs, cgroupfs) and sysfs fill the whole buffer unless the content ends
    // first, and so does a regular file: a short read is the end, and stopping here saves the
    // second syscall that would return 0 (half the cost of sampling a small file).
    if (total < buf->size()) break;
  }
  *len = total;
  return Status::OK();
}

}  // namespace

Result<std::string> ReadTextFile(const std::string& path) {
  DB_ASSIGN_OR_RETURN(ProcFile f, ProcFile::Open(path));
  DB_ASSIGN_OR_RETURN(std::string_view text, f.Read());
  return std::string(text);
}

Status WriteControlFile(const std::string& path, std::string_view text) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus("open " + path + " for writing", errno);
  for (;;) {
    ssize_t n = ::write(fd.get(), text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus("write '" + std::string(TrimSpace(text)) + "' to " + path, errno);
    if (static_cast<size_t>(n) != text.size()) {
      return Status::IOError("write to " + path + ": short write of a control file");
    }
    return Status::OK();
  }
}

Result<ProcFile> ProcFile::Open(const std::string& path) {
  ProcFile f;
  f.fd_.Reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!f.fd_.valid()) return ErrnoStatus("open " + path, errno);
  f.path_ = path;
  return f;
}

Result<std::string_view> ProcFile::Read() {
  DB_CHECK(fd_.valid());
  size_t len = 0;
  DB_RETURN_IF_ERROR(ReadAllAt0(fd_.get(), path_, &buf_, &len));
  return std::string_view(buf_.data(), len);
}

std::optional<uint64_t> ParseU64(std::string_view text) {
  if (text.empty() || text.size() > 20) return std::nullopt;
  uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

std::optional<double> ParseDecimal(std::string_view text) {
  size_t dot = text.find('.');
  std::string_view int_part = text.substr(0, dot);
  auto whole = ParseU64(int_part);
  if (!whole) return std::nullopt;
  double v = static_cast<double>(*whole);
  if (dot != std::string_view::npos) {
    std::string_view frac = text.substr(dot + 1);
    if (frac.empty() || frac.size() > 9) return std::nullopt;
    auto f = ParseU64(frac);
    if (!f) return std::nullopt;
    v += static_cast<double>(*f) / std::pow(10.0, static_cast<double>(frac.size()));
  }
  return v;
}

std::string_view TrimSpace(std::string_view text) {
  constexpr std::string_view kSpace = " \t\n\r";
  size_t b = text.find_first_not_of(kSpace);
  if (b == std::string_view::npos) return {};
  size_t e = text.find_last_not_of(kSpace);
  return text.substr(b, e - b + 1);
}

bool NextLine(std::string_view* text, std::string_view* line) {
  if (text->empty()) return false;
  size_t nl = text->find('\n');
  if (nl == std::string_view::npos) {
    *line = *text;
    *text = {};
  } else {
    *line = text->substr(0, nl);
    text->remove_prefix(nl + 1);
  }
  return true;
}

bool NextField(std::string_view* text, std::string_view* field) {
  constexpr std::string_view kSpace = " \t\n\r";
  size_t b = text->find_first_not_of(kSpace);
  if (b == std::string_view::npos) {
    *text = {};
    return false;
  }
  text->remove_prefix(b);
  size_t e = text->find_first_of(kSpace);
  if (e == std::string_view::npos) e = text->size();
  *field = text->substr(0, e);
  text->remove_prefix(e);
  return true;
}

}  // namespace dualblade
