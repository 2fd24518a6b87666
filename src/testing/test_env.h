// Test helpers shared by every test binary: temporary files and directories that delete
// themselves, real loop devices that detach themselves, capability checks that skip with a reason.
// Never used by the shipped binary.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace dualblade::testing {

// A fresh directory under $TMPDIR (default /var/tmp: a disk filesystem that honours O_DIRECT,
// unlike tmpfs), removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Why loop devices cannot be used here, or nullopt when they can (root, /dev/loop-control).
std::optional<std::string> LoopDevicesUnavailableReason();

// A real loop device (losetup -f --show --direct-io=on) over a preallocated backing file in its
// own TempDir. Detached and deleted on destruction, also when the test fails.
class LoopDevice {
 public:
  // Aborts the test (via the returned nullopt + reason) when it cannot be created.
  static std::optional<LoopDevice> Create(uint64_t size_bytes, std::string* why_not);
  ~LoopDevice();
  LoopDevice(LoopDevice&& o) noexcept;
  LoopDevice& operator=(LoopDevice&&) = delete;
  LoopDevice(const LoopDevice&) = delete;
  LoopDevice& operator=(const LoopDevice&) = delete;

  const std::string& device() const { return device_; }        // "/dev/loopN"
  const std::string& backing_file() const { return backing_; }

 private:
  LoopDevice() = default;
  std::unique_ptr<TempDir> dir_;
  std::string backing_;
  std::string device_;
};

// Runs a shell command, returns its exit status; captures stdout+stderr into *output if given.
int RunCommand(const std::string& cmd, std::string* output = nullptr);

// Path of the dualblade binary built with this tree (set by CMake), and the repository root.
std::string DualbladeBinary();
std::string SourceDir();

}  // namespace dualblade::testing

// Skips the current test, printing why, when loop devices are unavailable; otherwise declares
// `var` as a LoopDevice of `size`.
#define DB_LOOP_DEVICE_OR_SKIP(var, size)                                         \
  std::string var##_why;                                                          \
  auto var##_opt = ::dualblade::testing::LoopDevice::Create((size), &var##_why);  \
  if (!var##_opt) GTEST_SKIP() << "no loop device: " << var##_why;               \
  auto& var = *var##_opt
