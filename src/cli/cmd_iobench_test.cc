// Drives the built dualblade binary: iobench on small stores (a file and a loop device), its JSON,
// and its refusal to write anywhere but the free space of a dualblade store.
#include <algorithm>
#include <fstream>
#include <iterator>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "io/block_device.h"
#include "testing/test_env.h"

namespace dualblade {
namespace {

using testing::DualbladeBinary;
using testing::RunCommand;
using testing::TempDir;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Runs a dualblade subcommand; returns its exit status and its output.
int Dualblade(const std::string& args, std::string* out) {
  out->clear();
  return RunCommand(DualbladeBinary() + " " + args, out);
}

nlohmann::json ParseLastLine(const std::string& out) {
  size_t end = out.find_last_not_of('\n');
  size_t start = out.rfind('\n', end);
  std::string line = out.substr(start == std::string::npos ? 0 : start + 1, end + 1);
  return nlohmann::json::parse(line);
}

TEST(IobenchCommandTest, ReadsAStoreFileAndPrintsJson) {
  TempDir dir;
  const std::string store = dir.File("s.img");
  std::string out;
  ASSERT_EQ(Dualblade("format " + store + " --size 64M", &out), 0) << out;
  ASSERT_EQ(Dualblade("iobench " + store + " --bs 64K --qd 4 --seconds 0.3 --json", &out), 0)
      << out;
  nlohmann::json j = ParseLastLine(out);
  EXPECT_GT(j["bytes_per_s"].get<double>(), 0);
  EXPECT_EQ(j["bs"].get<uint64_t>(), 65536u);
  EXPECT_EQ(j["qd"].get<uint32_t>(), 4u);
  EXPECT_EQ(j["rw"].get<std::string>(), "read");
  EXPECT_GE(j["seconds"].get<double>(), 0.3);
  EXPECT_LT(j["seconds"].get<double>(), 10.0);
  const std::string engine = j["engine"].get<std::string>();
  EXPECT_TRUE(engine == "io_uring" || engine == "threadpool") << engine;
  EXPECT_TRUE(j.contains("device"));
  // The sweep stays inside the data area: after the superblock and metadata, within the file.
  EXPECT_GE(j["offset_bytes"].get<uint64_t>(), 1u << 20);
  EXPECT_LE(j["offset_bytes"].get<uint64_t>() + j["len_bytes"].get<uint64_t>(), 64u << 20);
  EXPECT_EQ(j["bytes"].get<uint64_t>() % 65536, 0u);

  // The forced fallback engine works too, and says so.
  ASSERT_EQ(Dualblade("iobench " + store + " --engine threadpool --seconds 0.2 --json", &out), 0)
      << out;
  EXPECT_EQ(ParseLastLine(out)["engine"].get<std::string>(), "threadpool");

  // Text output names the figures.
  ASSERT_EQ(Dualblade("iobench " + store + " --seconds 0.2", &out), 0) << out;
  EXPECT_NE(out.find("bandwidth"), std::string::npos) << out;
}

// A freshly formatted store file is preallocated but never written; reads of such extents return
// zeros without touching the device. iobench must fill them (with the zeros they already read as)
// so that it measures the SSD, and must leave the bytes unchanged.
// --offset and --length narrow the read sweep to part of the data area, the rest untouched.
TEST(IobenchCommandTest, ReadsOnlyTheRangeAsked) {
  TempDir dir;
  const std::string store = dir.File("s.img");
  std::string out;
  ASSERT_EQ(Dualblade("format " + store + " --size 64M", &out), 0) << out;
  ASSERT_EQ(Dualblade("iobench " + store +
                          " --bs 1M --qd 2 --seconds 0.2 --offset 12M --length 8M --json",
                      &out),
            0)
      << out;
  nlohmann::json j = ParseLastLine(out);
  EXPECT_EQ(j["offset_bytes"].get<uint64_t>(), 12u << 20);
  EXPECT_EQ(j["len_bytes"].get<uint64_t>(), 8u << 20);
  EXPECT_GT(j["bytes"].get<uint64_t>(), 0u);
  // A start off the request-size boundary moves up to it, and the length shrinks to whole
  // requests, as for the whole data area.
  ASSERT_EQ(Dualblade("iobench " + store +
                          " --bs 1M --qd 2 --seconds 0.2 --offset 12700K --length 4M --json",
                      &out),
            0)
      << out;
  j = ParseLastLine(out);
  EXPECT_EQ(j["offset_bytes"].get<uint64_t>(), 13u << 20);
  EXPECT_EQ(j["len_bytes"].get<uint64_t>(), 3u << 20);
  // Only an offset: to the data area's end.
  ASSERT_EQ(Dualblade("iobench " + store + " --bs 1M --qd 2 --seconds 0.2 --offset 60M --json",
                      &out),
            0)
      << out;
  j = ParseLastLine(out);
  EXPECT_EQ(j["offset_bytes"].get<uint64_t>(), 60u << 20);
  EXPECT_EQ(j["len_bytes"].get<uint64_t>(), 4u << 20);
}

TEST(IobenchCommandTest, FillsNeverWrittenExtentsBeforeMeasuringReads) {
  TempDir dir;
  const std::string store = dir.File("s.img");
  std::string out;
  ASSERT_EQ(Dualblade("format " + store + " --size 32M", &out), 0) << out;
  ASSERT_EQ(Dualblade("info " + store + " --json", &out), 0) << out;
  const uint64_t data_begin = nlohmann::json::parse(out)["data_offset_bytes"].get<uint64_t>();
  // Never-written bytes of the data area (the metadata slots may stay partly unwritten).
  auto unwritten_bytes = [&] {
    auto dev = BlockDevice::Open(store, OpenOptions{.read_only = true});
    EXPECT_TRUE(dev.ok()) << dev.status().ToString();
    uint64_t n = 0;
    for (const FileExtent& e : (*dev)->info().extents) {
      const uint64_t end = e.logical_bytes + e.length_bytes;
      if (e.unwritten && end > data_begin) n += end - std::max(e.logical_bytes, data_begin);
    }
    return n;
  };
  if (unwritten_bytes() == 0) GTEST_SKIP() << "this filesystem reports no unwritten extents";
  const std::string before = ReadAll(store);
  ASSERT_EQ(Dualblade("iobench " + store + " --bs 64K --qd 4 --seconds 0.2", &out), 0) << out;
  EXPECT_NE(out.find("never written"), std::string::npos) << out;
  EXPECT_EQ(unwritten_bytes(), 0u);
  EXPECT_TRUE(ReadAll(store) == before) << "iobench changed the store's bytes";
  // A second run finds nothing to fill.
  ASSERT_EQ(Dualblade("iobench " + store + " --bs 64K --qd 4 --seconds 0.2", &out), 0) << out;
  EXPECT_EQ(out.find("never written"), std::string::npos) << out;
}

TEST(IobenchCommandTest, WritesOnlyTheStoresFreeSpace) {
  TempDir dir;
  const std::string store = dir.File("s.img");
  std::string out;
  ASSERT_EQ(Dualblade("format " + store + " --size 64M", &out), 0) << out;
  const std::string before = ReadAll(store);
  ASSERT_EQ(Dualblade("iobench " + store + " --rw write --bs 1M --qd 8 --seconds 0.3 --json", &out),
            0)
      << out;
  nlohmann::json j = ParseLastLine(out);
  EXPECT_EQ(j["rw"].get<std::string>(), "write");
  EXPECT_GT(j["bytes"].get<uint64_t>(), 0u);
  const uint64_t off = j["offset_bytes"].get<uint64_t>();
  const uint64_t len = j["len_bytes"].get<uint64_t>();
  const std::string after = ReadAll(store);
  ASSERT_EQ(after.size(), before.size());
  ASSERT_GE(off, 4096u);
  // Superblock and metadata before the written range, and anything after it, are untouched.
  EXPECT_TRUE(after.compare(0, off, before, 0, off) == 0);
  EXPECT_TRUE(after.compare(off + len, std::string::npos, before, off + len, std::string::npos) == 0);
  EXPECT_NE(after.substr(off, 4096), before.substr(off, 4096));  // it really wrote
  EXPECT_EQ(Dualblade("info " + store, &out), 0) << out;
}

TEST(IobenchCommandTest, RefusesWhatIsNotAStore) {
  TempDir dir;
  const std::string path = dir.File("plain.img");
  {
    std::ofstream f(path, std::ios::binary);
    std::string data(32 << 20, 'k');
    f.write(data.data(), static_cast<std::streamsize>(data.size()));
  }
  const std::string before = ReadAll(path);
  std::string out;
  EXPECT_EQ(Dualblade("iobench " + path + " --rw write --seconds 0.2", &out), 1) << out;
  EXPECT_NE(out.find("dualblade iobench: "), std::string::npos) << out;
  EXPECT_EQ(ReadAll(path), before);
  EXPECT_EQ(Dualblade("iobench " + path + " --seconds 0.2", &out), 1) << out;
}

TEST(IobenchCommandTest, BadArgumentsAreOneSentence) {
  TempDir dir;
  const std::string store = dir.File("s.img");
  std::string out;
  ASSERT_EQ(Dualblade("format " + store + " --size 32M", &out), 0) << out;
  // The data area of a 32 MiB store runs from 9 MiB (after the superblock and two 4 MiB
  // metadata slots) to 32 MiB.
  for (const char* bad : {"--rw trim", "--bs 6K", "--bs 0", "--qd 0", "--seconds 0",
                          "--engine spdk", "--bs lots", "--offset 0", "--offset 1M",
                          "--offset 32M", "--offset 10M --length 23M", "--length 0",
                          "--offset 10M --length lots", "--rw write --offset 10M",
                          "--rw write --length 1M", "--offset 31M --length 512K --bs 1M"}) {
    EXPECT_EQ(Dualblade("iobench " + store + " " + bad, &out), 1) << bad << ": " << out;
    EXPECT_EQ(out.rfind("dualblade iobench: ", 0), 0u) << bad << ": " << out;
    EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << bad << ": " << out;
  }
  EXPECT_EQ(Dualblade("iobench " + dir.File("missing") + " --seconds 0.1", &out), 1);
  EXPECT_NE(out.find("does not exist"), std::string::npos) << out;
}

TEST(IobenchCommandTest, ReadsAndWritesALoopDeviceStore) {
  DB_LOOP_DEVICE_OR_SKIP(loop, 64 << 20);
  std::string out;
  ASSERT_EQ(Dualblade("format " + loop.device(), &out), 0) << out;
  ASSERT_EQ(Dualblade("iobench " + loop.device() + " --rw write --seconds 0.3 --json", &out), 0)
      << out;
  ASSERT_EQ(Dualblade("iobench " + loop.device() + " --seconds 0.3 --json", &out), 0) << out;
  nlohmann::json j = ParseLastLine(out);
  EXPECT_GT(j["bytes_per_s"].get<double>(), 0);
  EXPECT_EQ("/dev/" + j["device"].get<std::string>(), loop.device());
  EXPECT_EQ(Dualblade("info " + loop.device(), &out), 0) << out;
}

}  // namespace
}  // namespace dualblade
