// BlockDevice: probing of raw block devices and preallocated files, and the synchronous helpers.
#include "io/block_device.h"

#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/aligned_buffer.h"
#include "common/log.h"
#include "common/units.h"

namespace dualblade {

namespace {

// The smallest object worth opening: one page, which covers every logical block size we accept.
constexpr uint64_t kMinDeviceBytes = 4096;

// Reads a small sysfs attribute; empty on any failure (attributes are optional extras).
std::string ReadSysfs(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::string s;
  if (!in || !std::getline(in, s)) return {};
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

uint64_t ReadSysfsU64(const std::filesystem::path& p, uint64_t fallback) {
  std::string s = ReadSysfs(p);
  if (s.empty()) return fallback;
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (errno != 0 || end == s.c_str()) return fallback;
  return v;
}

// Resolves a device number to the sysfs directory of the whole disk that serves it: a partition
// ("vda1", which has a `partition` attribute) resolves to its parent ("vda"). Device-mapper and md
// devices are disks in their own right (they have queue/ and stat), so they stay as they are.
// Returns an empty path when the number has no block device behind it (btrfs, overlayfs and
// tmpfs report anonymous device numbers).
std::filesystem::path DiskSysfsDir(dev_t dev) {
  std::error_code ec;
  std::filesystem::path link = "/sys/dev/block/" + std::to_string(major(dev)) + ":" +
                               std::to_string(minor(dev));
  std::filesystem::path dir = std::filesystem::canonical(link, ec);
  if (ec) return {};
  if (std::filesystem::exists(dir / "partition", ec)) dir = dir.parent_path();
  if (!std::filesystem::exists(dir / "stat", ec)) return {};
  return dir;
}

void FillFromSysfs(const std::filesystem::path& disk, DeviceInfo* info, bool take_block_sizes) {
  if (disk.empty()) return;
  info->disk_name = disk.filename().string();
  std::filesystem::path q = disk / "queue";
  uint64_t max_kb = ReadSysfsU64(q / "max_sectors_kb", 0);
  info->max_transfer_bytes = static_cast<uint32_t>(std::min<uint64_t>(max_kb * 1024, 1u << 30));
  info->rotational = ReadSysfsU64(q / "rotational", 0) != 0;
  if (take_block_sizes) {
    info->logical_block_bytes =
        static_cast<uint32_t>(ReadSysfsU64(q / "logical_block_size", info->logical_block_bytes));
    info->physical_block_bytes =
        static_cast<uint32_t>(ReadSysfsU64(q / "physical_block_size", info->physical_block_bytes));
  }
}

// Reads the file's extents with FIEMAP, merging neighbours that are adjacent both in the file and
// on the device (ext4 caps one extent at 128 MiB, so a contiguous 2 GiB file reports 16).
// Filesystems without FIEMAP (tmpfs) leave the list empty; that is not an error.
void ProbeExtents(int fd, DeviceInfo* info) {
  constexpr uint32_t kBatch = 256;
  std::vector<uint8_t> raw(sizeof(fiemap) + kBatch * sizeof(fiemap_extent));
  auto* fm = reinterpret_cast<fiemap*>(raw.data());
  uint64_t start = 0;
  bool last = false;
  while (!last && start < info->size_bytes) {
    std::memset(raw.data(), 0, raw.size());
    fm->fm_start = start;
    fm->fm_length = FIEMAP_MAX_OFFSET - start;
    fm->fm_flags = FIEMAP_FLAG_SYNC;
    fm->fm_extent_count = kBatch;
    if (::ioctl(fd, FS_IOC_FIEMAP, fm) != 0) {
      DB_LOG_DEBUG("FIEMAP on %s failed: %s", info->path.c_str(), std::strerror(errno));
      info->extents.clear();
      return;
    }
    if (fm->fm_mapped_extents == 0) break;
    for (uint32_t i = 0; i < fm->fm_mapped_extents; ++i) {
      const fiemap_extent& e = fm->fm_extents[i];
      if (e.fe_flags & FIEMAP_EXTENT_LAST) last = true;
      if (!info->extents.empty()) {
        FileExtent& prev = info->extents.back();
        const bool unwritten = (e.fe_flags & FIEMAP_EXTENT_UNWRITTEN) != 0;
        if (prev.logical_bytes + prev.length_bytes == e.fe_logical &&
            prev.physical_bytes + prev.length_bytes == e.fe_physical && prev.unwritten == unwritten) {
          prev.length_bytes += e.fe_length;
          continue;
        }
      }
      info->extents.push_back({e.fe_logical, e.fe_physical, e.fe_length,
                               (e.fe_flags & FIEMAP_EXTENT_UNWRITTEN) != 0});
    }
    const fiemap_extent& tail = fm->fm_extents[fm->fm_mapped_extents - 1];
    start = tail.fe_logical + tail.fe_length;
  }
  // Contiguous: one physical run from file offset 0 to the end (written and unwritten pieces of
  // that run are listed separately but still adjacent).
  bool contiguous = !info->extents.empty() && info->extents[0].logical_bytes == 0;
  for (size_t i = 1; contiguous && i < info->extents.size(); ++i) {
    const FileExtent& p = info->extents[i - 1];
    const FileExtent& e = info->extents[i];
    contiguous = p.logical_bytes + p.length_bytes == e.logical_bytes &&
                 p.physical_bytes + p.length_bytes == e.physical_bytes;
  }
  info->extents_contiguous =
      contiguous && info->extents.back().logical_bytes + info->extents.back().length_bytes >=
                        info->size_bytes;
}

// The direct-I/O offset alignment the filesystem demands for this file (statx STATX_DIOALIGN,
// Linux 6.1+), 0 when the kernel does not say.
uint32_t FileDioAlign(int fd) {
#ifdef STATX_DIOALIGN
  struct statx stx;
  std::memset(&stx, 0, sizeof(stx));
  if (::statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 && (stx.stx_mask & STATX_DIOALIGN))
    return stx.stx_dio_offset_align;
#else
  (void)fd;
#endif
  return 0;
}

Status OpenError(const std::string& path, int err, bool writable) {
  if (writable && (err == EROFS || err == EACCES || err == EPERM || err == ETXTBSY))
    return ErrnoStatus(path + " is read-only and cannot be opened for writing", err);
  if (err == EBUSY)
    return ErrnoStatus(path + " is in use (mounted, or held exclusively by another program)", err);
  return ErrnoStatus("cannot open " + path, err);
}

std::string RangeContext(const char* what, const std::string& path, uint64_t off, uint64_t len) {
  return std::string(what) + " " + path + " at offset " + std::to_string(off) + " (" +
         std::to_string(len) + " bytes)";
}

}  // namespace

Result<std::unique_ptr<BlockDevice>> BlockDevice::Open(const std::string& path,
                                                       const OpenOptions& opts) {
  if (path.empty()) return Status::InvalidArgument("empty store path");
  if (opts.read_only && opts.create_size_bytes > 0)
    return Status::InvalidArgument("cannot create " + path + " read-only");

  struct stat st;
  bool exists = ::stat(path.c_str(), &st) == 0;
  if (!exists && (errno != ENOENT || opts.create_size_bytes == 0)) {
    if (errno == ENOENT) return ErrnoStatus(path + " does not exist", errno);
    return ErrnoStatus("cannot stat " + path, errno);
  }
  if (exists) {
    if (S_ISDIR(st.st_mode))
      return Status::InvalidArgument(path + " is a directory, not a block device or a file");
    if (S_ISCHR(st.st_mode))
      return Status::InvalidArgument(path +
                                     " is a character device; a store needs a block device "
                                     "(for NVMe, the namespace /dev/nvmeXnY, not /dev/nvmeX)");
    if (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode))
      return Status::InvalidArgument(path + " is neither a block device nor a regular file");
    if (S_ISBLK(st.st_mode) && opts.create_size_bytes > 0)
      return Status::InvalidArgument(path + " is a block device; it cannot be created or resized");
  }

  std::unique_ptr<BlockDevice> dev(new BlockDevice());
  dev->read_only_ = opts.read_only;
  DeviceInfo& info = dev->info_;
  info.path = path;
  const bool writable = !opts.read_only;
  const int access = writable ? O_RDWR : O_RDONLY;

  int flags = access | O_CLOEXEC;
  if (!exists) flags |= O_CREAT | O_EXCL;
  int bfd = ::open(path.c_str(), flags, 0644);
  if (bfd < 0) return OpenError(path, errno, writable);
  dev->buffered_fd_.Reset(bfd);
  // A file this call created is removed again when any later step fails: nothing half-made stays.
  struct RemoveOnFailure {
    const std::string* path = nullptr;
    ~RemoveOnFailure() {
      if (path != nullptr) ::unlink(path->c_str());
    }
  } remove_on_failure{exists ? nullptr : &path};
  if (!exists && ::fstat(bfd, &st) != 0) return ErrnoStatus("cannot stat " + path, errno);

  if (S_ISREG(st.st_mode) && opts.create_size_bytes > 0 &&
      static_cast<uint64_t>(st.st_size) < opts.create_size_bytes) {
    // Mode 0 allocates real blocks (unwritten extents) for the whole range, so later direct
    // writes never hit a hole and never fail half-way with ENOSPC.
    if (::fallocate(bfd, 0, 0, static_cast<off_t>(opts.create_size_bytes)) != 0) {
      int err = errno;
      if (err == EOPNOTSUPP)
        return ErrnoStatus("the filesystem under " + path + " cannot preallocate a store file", err);
      return ErrnoStatus("cannot preallocate " + FormatBytes(opts.create_size_bytes) + " for " + path,
                         err);
    }
    if (::fstat(bfd, &st) != 0) return ErrnoStatus("cannot stat " + path, errno);
  }

  // A writable block device is claimed exclusively (O_EXCL), so the kernel refuses it while a
  // filesystem is mounted on it or on one of its partitions. Only one descriptor may hold the
  // claim; the buffered one shares the same device.
  int dflags = access | O_CLOEXEC | O_DIRECT;
  if (S_ISBLK(st.st_mode) && writable) dflags |= O_EXCL;
  int dfd = ::open(path.c_str(), dflags);
  if (dfd < 0) {
    int err = errno;
    if (err == EINVAL)
      return ErrnoStatus("the filesystem under " + path + " refuses O_DIRECT", err);
    return OpenError(path, err, writable);
  }
  dev->direct_fd_.Reset(dfd);

  if (S_ISBLK(st.st_mode)) {
    info.is_block_device = true;
    uint64_t size = 0;
    if (::ioctl(dfd, BLKGETSIZE64, &size) != 0)
      return ErrnoStatus("BLKGETSIZE64 on " + path, errno);
    int lbs = 0;
    if (::ioctl(dfd, BLKSSZGET, &lbs) != 0) return ErrnoStatus("BLKSSZGET on " + path, errno);
    unsigned int pbs = 0;
    if (::ioctl(dfd, BLKPBSZGET, &pbs) != 0) return ErrnoStatus("BLKPBSZGET on " + path, errno);
    // Linux lets a read-only device be opened for writing and fails each write with EPERM later;
    // refuse it now, with the reason.
    int ro = 0;
    if (writable && ::ioctl(dfd, BLKROGET, &ro) == 0 && ro != 0)
      return ErrnoStatus(path + " is read-only and cannot be opened for writing", EROFS);
    info.size_bytes = size;
    info.logical_block_bytes = static_cast<uint32_t>(lbs);
    info.physical_block_bytes = pbs;
    FillFromSysfs(DiskSysfsDir(st.st_rdev), &info, /*take_block_sizes=*/false);
  } else {
    FillFromSysfs(DiskSysfsDir(st.st_dev), &info, /*take_block_sizes=*/true);
    if (uint32_t dio = FileDioAlign(dfd); dio != 0) info.logical_block_bytes = dio;
    // Direct I/O cannot reach a trailing partial block, so the usable space ends before it.
    info.size_bytes = AlignDown(static_cast<uint64_t>(st.st_size), info.logical_block_bytes);
    ProbeExtents(bfd, &info);
  }

  if (info.logical_block_bytes < 512 || info.logical_block_bytes > kDirectIoAlignBytes ||
      (info.logical_block_bytes & (info.logical_block_bytes - 1)) != 0)
    return Status::NotSupported(path + " has a logical block size of " +
                                std::to_string(info.logical_block_bytes) +
                                " bytes; dualblade supports powers of two from 512 to 4096");
  if (info.physical_block_bytes < info.logical_block_bytes)
    info.physical_block_bytes = info.logical_block_bytes;
  if (info.size_bytes < kMinDeviceBytes)
    return Status::InvalidArgument(path + " is too small (" + FormatBytes(info.size_bytes) +
                                   "; at least " + FormatBytes(kMinDeviceBytes) + " is needed)");
  remove_on_failure.path = nullptr;
  return dev;
}

BlockDevice::~BlockDevice() = default;

namespace {

Status CheckRange(const char* what, const DeviceInfo& info, uint64_t off, uint64_t len,
                  const void* buf, bool direct) {
  if (len == 0) return Status::OK();
  if (buf == nullptr)
    return Status::InvalidArgument(RangeContext(what, info.path, off, len) + ": null buffer");
  if (off > info.size_bytes || len > info.size_bytes - off)
    return Status::InvalidArgument(RangeContext(what, info.path, off, len) +
                                   ": past the end of the device (" +
                                   std::to_string(info.size_bytes) + " bytes)");
  if (direct) {
    const uint64_t lbs = info.logical_block_bytes;
    if (!IsAligned(off, lbs) || !IsAligned(len, lbs) ||
        !IsAligned(reinterpret_cast<uintptr_t>(buf), kDirectIoAlignBytes))
      return Status::InvalidArgument(RangeContext(what, info.path, off, len) +
                                     ": direct I/O needs offset and length aligned to " +
                                     std::to_string(lbs) + " bytes and a buffer aligned to " +
                                     std::to_string(kDirectIoAlignBytes));
  }
  return Status::OK();
}

Status PreadFull(const char* what, const DeviceInfo& info, int fd, uint64_t off,
                 std::span<uint8_t> buf) {
  size_t done = 0;
  while (done < buf.size()) {
    ssize_t n = ::pread(fd, buf.data() + done, buf.size() - done, static_cast<off_t>(off + done));
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return ErrnoStatus(RangeContext(what, info.path, off + done, buf.size() - done), errno);
    }
    if (n == 0)
      return Status::IOError(RangeContext(what, info.path, off + done, buf.size() - done) +
                             ": unexpected end of device");
    done += static_cast<size_t>(n);
  }
  return Status::OK();
}

Status PwriteFull(const char* what, const DeviceInfo& info, int fd, uint64_t off,
                  std::span<const uint8_t> buf) {
  size_t done = 0;
  while (done < buf.size()) {
    ssize_t n = ::pwrite(fd, buf.data() + done, buf.size() - done, static_cast<off_t>(off + done));
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return ErrnoStatus(RangeContext(what, info.path, off + done, buf.size() - done), errno);
    }
    if (n == 0)
      return Status::IOError(RangeContext(what, info.path, off + done, buf.size() - done) +
                             ": the device accepted no bytes");
    done += static_cast<size_t>(n);
  }
  return Status::OK();
}

}  // namespace

Status BlockDevice::PreadDirect(uint64_t offset_bytes, std::span<uint8_t> buf) const {
  DB_RETURN_IF_ERROR(CheckRange("direct read", info_, offset_bytes, buf.size(), buf.data(), true));
  return PreadFull("direct read", info_, direct_fd_.get(), offset_bytes, buf);
}

Status BlockDevice::PwriteDirect(uint64_t offset_bytes, std::span<const uint8_t> buf) const {
  if (read_only_) return Status::InvalidArgument(info_.path + " was opened read-only");
  DB_RETURN_IF_ERROR(CheckRange("direct write", info_, offset_bytes, buf.size(), buf.data(), true));
  return PwriteFull("direct write", info_, direct_fd_.get(), offset_bytes, buf);
}

Status BlockDevice::PreadBuffered(uint64_t offset_bytes, std::span<uint8_t> buf) const {
  DB_RETURN_IF_ERROR(
      CheckRange("buffered read", info_, offset_bytes, buf.size(), buf.data(), false));
  return PreadFull("buffered read", info_, buffered_fd_.get(), offset_bytes, buf);
}

Status BlockDevice::PwriteBuffered(uint64_t offset_bytes, std::span<const uint8_t> buf) const {
  if (read_only_) return Status::InvalidArgument(info_.path + " was opened read-only");
  DB_RETURN_IF_ERROR(
      CheckRange("buffered write", info_, offset_bytes, buf.size(), buf.data(), false));
  return PwriteFull("buffered write", info_, buffered_fd_.get(), offset_bytes, buf);
}

Status BlockDevice::Sync() const {
  if (read_only_) return Status::OK();
  // The buffered descriptor first: its dirty pages must reach the device before the flush that
  // the direct descriptor's fdatasync issues covers them.
  if (::fdatasync(buffered_fd_.get()) != 0) return ErrnoStatus("fdatasync " + info_.path, errno);
  if (::fdatasync(direct_fd_.get()) != 0) return ErrnoStatus("fdatasync " + info_.path, errno);
  return Status::OK();
}

}  // namespace dualblade
