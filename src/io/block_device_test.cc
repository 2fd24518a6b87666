#include "io/block_device.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include <gtest/gtest.h>

#include "common/aligned_buffer.h"
#include "common/units.h"
#include "testing/test_env.h"

namespace dualblade {
namespace {

using testing::LoopDevice;
using testing::RunCommand;
using testing::TempDir;

// A pattern that differs in every 8-byte word and between calls with different seeds, so a read
// from the wrong offset or a stale cache never matches by accident.
void FillPattern(std::span<uint8_t> buf, uint64_t base_offset, uint64_t seed) {
  for (size_t i = 0; i + 8 <= buf.size(); i += 8) {
    uint64_t v = (base_offset + i) * 0x9E3779B97F4A7C15ull ^ seed;
    std::memcpy(buf.data() + i, &v, 8);
  }
}

void WriteFile(const std::string& path, size_t bytes) {
  std::ofstream out(path, std::ios::binary);
  std::string data(bytes, 'x');
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

TEST(BlockDeviceTest, CreatesPreallocatedFileWithoutHoles) {
  TempDir dir;
  const std::string path = dir.File("store.img");
  OpenOptions opts;
  opts.create_size_bytes = 64 * kMiB;
  auto dev = BlockDevice::Open(path, opts);
  ASSERT_TRUE(dev.ok()) << dev.status().ToString();
  const DeviceInfo& info = (*dev)->info();
  EXPECT_FALSE(info.is_block_device);
  EXPECT_EQ(info.size_bytes, 64 * kMiB);
  EXPECT_GE(info.logical_block_bytes, 512u);
  EXPECT_GE(info.physical_block_bytes, info.logical_block_bytes);
  EXPECT_NE((*dev)->direct_fd(), (*dev)->buffered_fd());

  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  // Allocated blocks cover the whole size: fallocate, not a sparse ftruncate.
  EXPECT_GE(static_cast<uint64_t>(st.st_blocks) * 512, 64 * kMiB);

  // Where FIEMAP works (ext4, xfs), the extents cover the file exactly, in order.
  if (!info.extents.empty()) {
    uint64_t covered = 0;
    for (const FileExtent& e : info.extents) {
      EXPECT_EQ(e.logical_bytes, covered);
      covered += e.length_bytes;
    }
    EXPECT_GE(covered, info.size_bytes);
    EXPECT_EQ(info.extents_contiguous, info.extents.size() == 1);
  }
  // On a filesystem backed by a real block device, the disk under it is found and has a stat file.
  if (!info.disk_name.empty()) {
    EXPECT_EQ(::access(("/sys/block/" + info.disk_name + "/stat").c_str(), R_OK), 0)
        << info.disk_name;
  }
}

TEST(BlockDeviceTest, OpensExistingFileAtItsSizeRoundedToBlocks) {
  TempDir dir;
  const std::string path = dir.File("f");
  WriteFile(path, 1 * kMiB + 100);
  auto dev = BlockDevice::Open(path, {});
  ASSERT_TRUE(dev.ok()) << dev.status().ToString();
  EXPECT_EQ((*dev)->info().size_bytes, AlignDown(1 * kMiB + 100, (*dev)->info().logical_block_bytes));
}

TEST(BlockDeviceTest, GrowsExistingSmallerFileWhenAskedToCreate) {
  TempDir dir;
  const std::string path = dir.File("f");
  WriteFile(path, 8192);
  OpenOptions opts;
  opts.create_size_bytes = 4 * kMiB;
  auto dev = BlockDevice::Open(path, opts);
  ASSERT_TRUE(dev.ok()) << dev.status().ToString();
  EXPECT_EQ((*dev)->info().size_bytes, 4 * kMiB);
}

TEST(BlockDeviceTest, MissingPathIsNotFound) {
  TempDir dir;
  auto dev = BlockDevice::Open(dir.File("nope"), {});
  ASSERT_FALSE(dev.ok());
  EXPECT_TRUE(dev.status().IsNotFound()) << dev.status().ToString();
  EXPECT_NE(dev.status().message().find(dir.File("nope")), std::string::npos);
  EXPECT_NE(dev.status().message().find("does not exist"), std::string::npos);
}

TEST(BlockDeviceTest, DirectoryIsRefused) {
  TempDir dir;
  auto dev = BlockDevice::Open(dir.path(), {});
  ASSERT_FALSE(dev.ok());
  EXPECT_TRUE(dev.status().IsInvalidArgument());
  EXPECT_NE(dev.status().message().find("is a directory"), std::string::npos)
      << dev.status().message();
}

TEST(BlockDeviceTest, CharacterDeviceIsRefused) {
  OpenOptions ro;
  ro.read_only = true;
  auto dev = BlockDevice::Open("/dev/null", ro);
  ASSERT_FALSE(dev.ok());
  EXPECT_TRUE(dev.status().IsInvalidArgument());
  EXPECT_NE(dev.status().message().find("character device"), std::string::npos)
      << dev.status().message();
}

TEST(BlockDeviceTest, TooSmallFileIsRefused) {
  TempDir dir;
  const std::string path = dir.File("tiny");
  WriteFile(path, 100);
  auto dev = BlockDevice::Open(path, {});
  ASSERT_FALSE(dev.ok());
  EXPECT_TRUE(dev.status().IsInvalidArgument());
  EXPECT_NE(dev.status().message().find("too small"), std::string::npos) << dev.status().message();
}

TEST(BlockDeviceTest, ReadOnlyFileOpenedForWritingIsRefused) {
  TempDir dir;
  const std::string path = dir.File("ro");
  WriteFile(path, 64 * 1024);
  // Root ignores permission bits, so as root the file is made immutable instead.
  bool immutable = false;
  if (::geteuid() == 0) {
    if (RunCommand("chattr +i " + path) != 0) GTEST_SKIP() << "chattr +i is not supported here";
    immutable = true;
  } else {
    ASSERT_EQ(::chmod(path.c_str(), 0444), 0);
  }
  auto dev = BlockDevice::Open(path, {});
  OpenOptions ro;
  ro.read_only = true;
  auto ro_dev = BlockDevice::Open(path, ro);
  if (immutable) RunCommand("chattr -i " + path);
  ASSERT_FALSE(dev.ok());
  EXPECT_NE(dev.status().message().find("read-only"), std::string::npos) << dev.status().message();
  ASSERT_TRUE(ro_dev.ok()) << ro_dev.status().ToString();
  AlignedBuffer buf(4096);
  Status st = (*ro_dev)->PwriteDirect(0, buf.span());
  EXPECT_TRUE(st.IsInvalidArgument()) << st.ToString();
  EXPECT_TRUE((*ro_dev)->PreadDirect(0, buf.span()).ok());
}

TEST(BlockDeviceTest, CannotCreateReadOnly) {
  TempDir dir;
  OpenOptions opts;
  opts.read_only = true;
  opts.create_size_bytes = kMiB;
  auto dev = BlockDevice::Open(dir.File("x"), opts);
  EXPECT_TRUE(dev.status().IsInvalidArgument());
  EXPECT_NE(::access(dir.File("x").c_str(), F_OK), 0);
}

TEST(BlockDeviceTest, DirectAndBufferedRoundTripOnFile) {
  TempDir dir;
  OpenOptions opts;
  opts.create_size_bytes = 8 * kMiB;
  auto dev = BlockDevice::Open(dir.File("s"), opts);
  ASSERT_TRUE(dev.ok()) << dev.status().ToString();
  AlignedBuffer w(256 * 1024), r(256 * 1024);
  FillPattern(w.span(), kMiB, 1);
  ASSERT_TRUE((*dev)->PwriteDirect(kMiB, w.span()).ok());
  ASSERT_TRUE((*dev)->PreadBuffered(kMiB, r.span()).ok());
  EXPECT_EQ(std::memcmp(w.data(), r.data(), w.size()), 0);

  FillPattern(w.span(), 2 * kMiB, 2);
  ASSERT_TRUE((*dev)->PwriteBuffered(2 * kMiB, w.span()).ok());
  ASSERT_TRUE((*dev)->Sync().ok());
  ASSERT_TRUE((*dev)->PreadDirect(2 * kMiB, r.span()).ok());
  EXPECT_EQ(std::memcmp(w.data(), r.data(), w.size()), 0);
}

TEST(BlockDeviceTest, RejectsMisalignedAndOutOfRange) {
  TempDir dir;
  OpenOptions opts;
  opts.create_size_bytes = kMiB;
  auto dev = BlockDevice::Open(dir.File("s"), opts);
  ASSERT_TRUE(dev.ok()) << dev.status().ToString();
  AlignedBuffer buf(8192);
  Status st = (*dev)->PreadDirect(100, buf.span().subspan(0, 4096));
  EXPECT_TRUE(st.IsInvalidArgument()) << st.ToString();
  EXPECT_NE(st.message().find("offset 100"), std::string::npos) << st.message();
  st = (*dev)->PreadDirect(0, buf.span().subspan(1, 4096));
  EXPECT_TRUE(st.IsInvalidArgument()) << st.ToString();
  st = (*dev)->PreadDirect(kMiB - 4096, buf.span());
  EXPECT_TRUE(st.IsInvalidArgument()) << st.ToString();
  EXPECT_NE(st.message().find("past the end"), std::string::npos) << st.message();
  // Buffered I/O has no alignment rule.
  EXPECT_TRUE((*dev)->PreadBuffered(100, buf.span().subspan(1, 333)).ok());
}

TEST(BlockDeviceLoopTest, ProbesLoopDevice) {
  DB_LOOP_DEVICE_OR_SKIP(loop, 32 * kMiB);
  auto dev = BlockDevice::Open(loop.device(), {});
  ASSERT_TRUE(dev.ok()) << dev.status().ToString();
  const DeviceInfo& info = (*dev)->info();
  EXPECT_TRUE(info.is_block_device);
  EXPECT_EQ(info.size_bytes, 32 * kMiB);
  EXPECT_EQ(info.logical_block_bytes, 512u);
  EXPECT_GE(info.physical_block_bytes, 512u);
  // "/dev/loop3" -> "loop3".
  EXPECT_EQ("/dev/" + info.disk_name, loop.device());
  EXPECT_GT(info.max_transfer_bytes, 0u);
  EXPECT_TRUE(info.extents.empty());
}

TEST(BlockDeviceLoopTest, ExclusiveWhileOpenForWriting) {
  DB_LOOP_DEVICE_OR_SKIP(loop, 8 * kMiB);
  auto first = BlockDevice::Open(loop.device(), {});
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto second = BlockDevice::Open(loop.device(), {});
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(second.status().IsBusy()) << second.status().ToString();
  EXPECT_NE(second.status().message().find("in use"), std::string::npos);
  // Readers do not claim the device.
  OpenOptions ro;
  ro.read_only = true;
  EXPECT_TRUE(BlockDevice::Open(loop.device(), ro).ok());
}

TEST(BlockDeviceLoopTest, PatternsThroughBothDescriptorsAreCoherent) {
  DB_LOOP_DEVICE_OR_SKIP(loop, 16 * kMiB);
  auto dev = BlockDevice::Open(loop.device(), {});
  ASSERT_TRUE(dev.ok()) << dev.status().ToString();
  const size_t kChunk = 128 * 1024;
  AlignedBuffer w(kChunk), r(kChunk);

  // Direct write, buffered read of the same LBAs (nothing cached yet).
  for (uint64_t off = 0; off < 4 * kMiB; off += kChunk) {
    FillPattern(w.span(), off, 10);
    ASSERT_TRUE((*dev)->PwriteDirect(off, w.span()).ok());
  }
  for (uint64_t off = 0; off < 4 * kMiB; off += kChunk) {
    FillPattern(w.span(), off, 10);
    ASSERT_TRUE((*dev)->PreadBuffered(off, r.span()).ok());
    ASSERT_EQ(std::memcmp(w.data(), r.data(), kChunk), 0) << "offset " << off;
  }
  // Those pages are cached now. A direct write must not leave the page cache stale.
  FillPattern(w.span(), 0, 11);
  ASSERT_TRUE((*dev)->PwriteDirect(0, w.span()).ok());
  ASSERT_TRUE((*dev)->PreadBuffered(0, r.span()).ok());
  EXPECT_EQ(std::memcmp(w.data(), r.data(), kChunk), 0);
  // A buffered write (dirty, unsynced) must be seen by a direct read of the same LBAs.
  FillPattern(w.span(), kChunk, 12);
  ASSERT_TRUE((*dev)->PwriteBuffered(kChunk, w.span()).ok());
  ASSERT_TRUE((*dev)->PreadDirect(kChunk, r.span()).ok());
  EXPECT_EQ(std::memcmp(w.data(), r.data(), kChunk), 0);
  ASSERT_TRUE((*dev)->Sync().ok());

  // The data reached the backing file (the device really wrote it).
  dev->reset();
  std::ifstream in(loop.backing_file(), std::ios::binary);
  std::vector<char> got(kChunk);
  in.seekg(static_cast<std::streamoff>(kChunk));
  in.read(got.data(), static_cast<std::streamsize>(kChunk));
  EXPECT_EQ(std::memcmp(got.data(), w.data(), kChunk), 0);
}

TEST(BlockDeviceLoopTest, ReadOnlyLoopDeviceOpenedForWritingIsRefused) {
  DB_LOOP_DEVICE_OR_SKIP(loop, 8 * kMiB);
  ASSERT_EQ(RunCommand("blockdev --setro " + loop.device()), 0);
  auto dev = BlockDevice::Open(loop.device(), {});
  RunCommand("blockdev --setrw " + loop.device());
  ASSERT_FALSE(dev.ok());
  EXPECT_NE(dev.status().message().find("read-only"), std::string::npos)
      << dev.status().ToString();
}

TEST(BlockDeviceLoopTest, PartitionResolvesToItsDisk) {
  DB_LOOP_DEVICE_OR_SKIP(loop, 16 * kMiB);
  // One partition from 1 MiB to 9 MiB, then the kernel is told about it.
  std::string out;
  if (RunCommand("echo 'start=2048, size=16384' | sfdisk -q " + loop.device(), &out) != 0)
    GTEST_SKIP() << "sfdisk failed: " << out;
  const std::string part = loop.device() + "p1";
  if (RunCommand("partx -a " + loop.device() + " && udevadm settle; test -b " + part, &out) != 0)
    GTEST_SKIP() << "the kernel did not create " << part << ": " << out;
  {
    auto dev = BlockDevice::Open(part, {});
    ASSERT_TRUE(dev.ok()) << dev.status().ToString();
    EXPECT_TRUE((*dev)->info().is_block_device);
    EXPECT_EQ((*dev)->info().size_bytes, 8 * kMiB);
    EXPECT_EQ("/dev/" + (*dev)->info().disk_name, loop.device());  // the parent, not "loopNp1"
    EXPECT_GT((*dev)->info().max_transfer_bytes, 0u);
    // The whole disk is claimed while one of its partitions is open for writing.
    auto whole = BlockDevice::Open(loop.device(), {});
    EXPECT_TRUE(whole.status().IsBusy()) << whole.status().ToString();
  }
  RunCommand("partx -d " + loop.device());
}

}  // namespace
}  // namespace dualblade
