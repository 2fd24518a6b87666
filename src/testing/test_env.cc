#include "testing/test_env.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <stdexcept>

namespace dualblade::testing {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/var/tmp") + "/dualblade-test-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + tmpl);
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

int RunCommand(const std::string& cmd, std::string* output) {
  std::string full = cmd + " 2>&1";
  FILE* p = ::popen(full.c_str(), "r");
  if (p == nullptr) return -1;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) {
    if (output) output->append(buf.data(), n);
  }
  int st = ::pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

std::optional<std::string> LoopDevicesUnavailableReason() {
  if (::geteuid() != 0) return "loop devices need root";
  if (::access("/dev/loop-control", F_OK) != 0) return "/dev/loop-control is missing";
  if (RunCommand("command -v losetup >/dev/null") != 0) return "losetup is not installed";
  return std::nullopt;
}

std::optional<LoopDevice> LoopDevice::Create(uint64_t size_bytes, std::string* why_not) {
  if (auto reason = LoopDevicesUnavailableReason()) {
    *why_not = *reason;
    return std::nullopt;
  }
  LoopDevice d;
  d.dir_ = std::make_unique<TempDir>();
  d.backing_ = d.dir_->File("backing.img");
  int fd = ::open(d.backing_.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
  if (fd < 0 || ::posix_fallocate(fd, 0, static_cast<off_t>(size_bytes)) != 0) {
    if (fd >= 0) ::close(fd);
    *why_not = "cannot create the backing file " + d.backing_;
    return std::nullopt;
  }
  ::close(fd);
  std::string out;
  int rc = RunCommand("losetup -f --show --direct-io=on " + d.backing_, &out);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  if (rc != 0 || out.rfind("/dev/loop", 0) != 0) {
    *why_not = "losetup failed: " + out;
    return std::nullopt;
  }
  d.device_ = out;
  return d;
}

LoopDevice::LoopDevice(LoopDevice&& o) noexcept
    : dir_(std::move(o.dir_)), backing_(std::move(o.backing_)), device_(std::move(o.device_)) {
  o.dir_.reset();
  o.device_.clear();
}

LoopDevice::~LoopDevice() {
  if (!device_.empty()) {
    // A device still open elsewhere detaches lazily (autoclear) once closed.
    RunCommand("losetup -d " + device_);
  }
}

std::string DualbladeBinary() {
#ifdef DUALBLADE_BINARY
  return DUALBLADE_BINARY;
#else
  return "dualblade";
#endif
}

std::string SourceDir() {
#ifdef DUALBLADE_SOURCE_DIR
  return DUALBLADE_SOURCE_DIR;
#else
  return ".";
#endif
}

}  // namespace dualblade::testing
