#include "residency/residency_probe.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <initializer_list>
#include <vector>

#include "common/units.h"
#include "testing/test_env.h"

namespace dualblade {
namespace {

constexpr uint64_t kFileBytes = 8 * kMiB;

// A file of kFileBytes written, synced and dropped from the page cache. Readahead is disabled on
// the returned descriptor so a read caches exactly what it reads.
struct ColdFile {
  testing::TempDir dir;
  std::string path = dir.File("kv");
  UniqueFd fd;
  ColdFile() {
    fd.Reset(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    std::vector<char> block(kMiB, 'k');
    for (uint64_t off = 0; off < kFileBytes; off += kMiB) {
      EXPECT_EQ(::pwrite(fd.get(), block.data(), block.size(), static_cast<off_t>(off)),
                static_cast<ssize_t>(block.size()));
    }
    EXPECT_EQ(::fdatasync(fd.get()), 0);
    Drop();
    EXPECT_EQ(::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_RANDOM), 0);
  }
  void Drop() { EXPECT_EQ(::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_DONTNEED), 0); }
  void Read(uint64_t off, uint64_t len) {
    std::vector<char> buf(len);
    EXPECT_EQ(::pread(fd.get(), buf.data(), len, static_cast<off_t>(off)),
              static_cast<ssize_t>(len));
  }
  PageCacheResidency Probe(uint64_t off, uint64_t len, ResidencyMethod m) {
    auto r = ProbeResidency(fd.get(), path, off, len, m);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : PageCacheResidency{};
  }
};

std::vector<ResidencyMethod> Methods() {
  std::vector<ResidencyMethod> m = {ResidencyMethod::kMincore};
  if (CachestatSupported()) m.push_back(ResidencyMethod::kCachestat);
  return m;
}

TEST(ResidencyProbeTest, BufferedReadMakesResidentAndDontneedEvicts) {
  ColdFile f;
  for (ResidencyMethod m : Methods()) {
    SCOPED_TRACE(ResidencyMethodName(m));
    EXPECT_EQ(f.Probe(0, 0, m).resident_bytes, 0u);
  }
  f.Read(0, 3 * kMiB);
  for (ResidencyMethod m : Methods()) {
    SCOPED_TRACE(ResidencyMethodName(m));
    PageCacheResidency whole = f.Probe(0, 0, m);
    EXPECT_EQ(whole.method, m);
    EXPECT_EQ(whole.length_bytes, kFileBytes);
    EXPECT_EQ(whole.resident_bytes, 3 * kMiB);
    EXPECT_DOUBLE_EQ(whole.fraction(), 3.0 / 8.0);
    EXPECT_EQ(f.Probe(0, 3 * kMiB, m).fraction(), 1.0);
    EXPECT_EQ(f.Probe(3 * kMiB, 5 * kMiB, m).resident_bytes, 0u);
    EXPECT_EQ(f.Probe(2 * kMiB, 2 * kMiB, m).resident_bytes, 1 * kMiB);
  }
  f.Drop();
  for (ResidencyMethod m : Methods()) {
    SCOPED_TRACE(ResidencyMethodName(m));
    EXPECT_EQ(f.Probe(0, 0, m).resident_bytes, 0u);
  }
}

TEST(ResidencyProbeTest, CachestatAndMincoreAgreeOnAScatteredPattern) {
  if (!CachestatSupported()) GTEST_SKIP() << "cachestat(2) needs Linux 6.5+";
  ColdFile f;
  // Every third 64 KiB piece, plus single pages at odd places.
  for (uint64_t off = 0; off < kFileBytes; off += 192 * kKiB) f.Read(off, 64 * kKiB);
  f.Read(5 * kMiB + 4096 * 7, 4096);
  f.Read(kFileBytes - 4096, 4096);
  for (uint64_t off : std::initializer_list<uint64_t>{0, 4096, 1 * kMiB + 12345, 7 * kMiB}) {
    for (uint64_t len : std::initializer_list<uint64_t>{0, 4096, 100000, 3 * kMiB}) {
      auto a = f.Probe(off, len, ResidencyMethod::kCachestat);
      auto b = f.Probe(off, len, ResidencyMethod::kMincore);
      EXPECT_EQ(a.resident_bytes, b.resident_bytes) << off << "+" << len;
      EXPECT_EQ(a.length_bytes, b.length_bytes);
    }
  }
}

TEST(ResidencyProbeTest, RangesWidenToWholePagesAndClipAtTheEnd) {
  ColdFile f;
  f.Read(0, 8192);
  for (ResidencyMethod m : Methods()) {
    SCOPED_TRACE(ResidencyMethodName(m));
    PageCacheResidency r = f.Probe(4095, 2, m);  // straddles pages 0 and 1
    EXPECT_EQ(r.offset_bytes, 0u);
    EXPECT_EQ(r.length_bytes, 8192u);
    EXPECT_EQ(r.resident_bytes, 8192u);
    PageCacheResidency tail = f.Probe(kFileBytes - 4096, 1 * kGiB, m);
    EXPECT_EQ(tail.length_bytes, 4096u);
    PageCacheResidency empty = f.Probe(kFileBytes, 0, m);
    EXPECT_EQ(empty.length_bytes, 0u);
    EXPECT_EQ(empty.fraction(), 0.0);
  }
  auto past = ProbeResidency(f.fd.get(), f.path, kFileBytes + 1, 0);
  ASSERT_TRUE(past.status().IsInvalidArgument());
  EXPECT_NE(past.status().message().find(f.path), std::string::npos);
}

TEST(ResidencyProbeTest, CachestatCountsDirtyPages) {
  if (!CachestatSupported()) GTEST_SKIP() << "cachestat(2) needs Linux 6.5+";
  ColdFile f;
  std::vector<char> block(1 * kMiB, 'd');
  ASSERT_EQ(::pwrite(f.fd.get(), block.data(), block.size(), 0), static_cast<ssize_t>(kMiB));
  PageCacheResidency r = f.Probe(0, 0, ResidencyMethod::kCachestat);
  EXPECT_TRUE(r.has_page_states);
  EXPECT_EQ(r.resident_bytes, 1 * kMiB);
  EXPECT_EQ(r.dirty_bytes + r.writeback_bytes, 1 * kMiB);  // nothing has flushed them yet
  ASSERT_EQ(::fdatasync(f.fd.get()), 0);
  r = f.Probe(0, 0, ResidencyMethod::kCachestat);
  EXPECT_EQ(r.dirty_bytes, 0u);
  // Evicting them is remembered in the workingset shadow entries.
  f.Drop();
  r = f.Probe(0, 0, ResidencyMethod::kCachestat);
  EXPECT_EQ(r.resident_bytes, 0u);
}

TEST(ResidencyProbeTest, AutoPicksCachestatWhereTheKernelHasIt) {
  ColdFile f;
  PageCacheResidency r = f.Probe(0, 0, ResidencyMethod::kAuto);
  EXPECT_EQ(r.method,
            CachestatSupported() ? ResidencyMethod::kCachestat : ResidencyMethod::kMincore);
}

TEST(ResidencyProbeTest, OpenErrorsNameThePath) {
  testing::TempDir dir;
  auto p = ResidencyProbe::Open(dir.File("missing"));
  ASSERT_TRUE(p.status().IsNotFound());
  EXPECT_NE(p.status().message().find(dir.File("missing")), std::string::npos);
  auto d = ResidencyProbe::Open(dir.path());
  ASSERT_TRUE(d.ok());  // a directory opens read-only, but cannot be probed
  EXPECT_TRUE(d->Probe(0, 0).status().IsInvalidArgument());
}

TEST(ResidencyProbeTest, BlockDeviceRangeThroughTheBufferedDescriptor) {
  DB_LOOP_DEVICE_OR_SKIP(loop, 16 * kMiB);
  UniqueFd fd(::open(loop.device().c_str(), O_RDWR | O_CLOEXEC));
  ASSERT_TRUE(fd.valid());
  ASSERT_EQ(::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_DONTNEED), 0);
  ASSERT_EQ(::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_RANDOM), 0);
  std::vector<char> buf(2 * kMiB);
  ASSERT_EQ(::pread(fd.get(), buf.data(), buf.size(), 4 * kMiB), static_cast<ssize_t>(buf.size()));
  for (ResidencyMethod m : Methods()) {
    SCOPED_TRACE(ResidencyMethodName(m));
    auto r = ProbeResidency(fd.get(), loop.device(), 0, 0, m);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->length_bytes, 16 * kMiB);
    EXPECT_EQ(r->resident_bytes, 2 * kMiB);
    EXPECT_EQ(ProbeResidency(fd.get(), loop.device(), 4 * kMiB, 2 * kMiB, m)->fraction(), 1.0);
  }
  ASSERT_EQ(::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_DONTNEED), 0);
  for (ResidencyMethod m : Methods()) {
    EXPECT_EQ(ProbeResidency(fd.get(), loop.device(), 0, 0, m)->resident_bytes, 0u);
  }
}

}  // namespace
}  // namespace dualblade
