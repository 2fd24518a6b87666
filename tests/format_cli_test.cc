// `dualblade format` and `dualblade info` end to end: on files and on real loop devices, the
// refusals (filesystem, partition table, swap, an earlier store) and their --force overrides,
// and bad input, each a one-sentence error with nothing written.
#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "common/units.h"
#include "store/codec.h"
#include "store/superblock.h"
#include "testing/test_env.h"

namespace dualblade::testing {
namespace {

// A failed command: exit 1, one line on stderr naming the command, containing `what`.
void ExpectOneSentenceError(const CliResult& r, const std::string& what) {
  EXPECT_NE(r.rc, 0);
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_EQ(r.err.rfind("dualblade ", 0), 0u) << r.err;
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "more than one line: " << r.err;
  EXPECT_NE(r.err.find(what), std::string::npos) << "stderr: " << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

nlohmann::json InfoJson(const std::string& path) {
  CliResult r = RunDualblade({"info", path, "--json"});
  EXPECT_EQ(r.rc, 0) << r.err;
  return nlohmann::json::parse(r.out);
}

TEST(FormatCliTest, FormatAndInfoOnAFile) {
  TempDir dir;
  const std::string path = dir.File("store.img");
  CliResult f = RunDualblade({"format", path, "--size", "64M"});
  ASSERT_EQ(f.rc, 0) << f.err;
  EXPECT_NE(f.out.find("64.0 MiB store"), std::string::npos) << f.out;
  EXPECT_TRUE(f.err.empty()) << f.err;

  nlohmann::json j = InfoJson(path);
  EXPECT_EQ(j["kind"], "file");
  EXPECT_EQ(j["capacity_bytes"], 64 * kMiB);
  EXPECT_EQ(j["format_version"], store::kStoreFormatVersion);
  EXPECT_EQ(j["used_bytes"], 0);
  EXPECT_EQ(j["free_bytes"], j["data_bytes"]);
  EXPECT_EQ(j["largest_free_extent_bytes"], j["data_bytes"]);
  EXPECT_EQ(j["fragmentation"], 0.0);
  EXPECT_EQ(j["meta_active_slot"], "A");
  EXPECT_EQ(j["meta_sequence"], 1);
  EXPECT_EQ(j["uuid"].get<std::string>().size(), 36u);
  EXPECT_EQ(j["data_offset_bytes"].get<uint64_t>() + j["data_bytes"].get<uint64_t>(),
            j["capacity_bytes"].get<uint64_t>());

  CliResult t = RunDualblade({"info", path});
  ASSERT_EQ(t.rc, 0) << t.err;
  for (const char* field : {"uuid:", "capacity:", "used:", "free:", "largest free:",
                            "fragmentation:", "slot A in use, sequence 1"}) {
    EXPECT_NE(t.out.find(field), std::string::npos) << field << " missing from\n" << t.out;
  }
}

TEST(FormatCliTest, FormatAndInfoOnALoopDevice) {
  DB_LOOP_DEVICE_OR_SKIP(loop, 64 * kMiB);
  CliResult f = RunDualblade({"format", loop.device()});
  ASSERT_EQ(f.rc, 0) << f.err;
  nlohmann::json j = InfoJson(loop.device());
  EXPECT_EQ(j["kind"], "block_device");
  EXPECT_EQ(j["capacity_bytes"], 64 * kMiB);
  EXPECT_EQ(j["used_bytes"], 0);
}

TEST(FormatCliTest, SizeCapsTheCapacityOfADevice) {
  DB_LOOP_DEVICE_OR_SKIP(loop, 64 * kMiB);
  ASSERT_EQ(RunDualblade({"format", loop.device(), "--size", "32M"}).rc, 0);
  EXPECT_EQ(InfoJson(loop.device())["capacity_bytes"], 32 * kMiB);
  const std::string before = ReadBytes(loop.backing_file());
  ExpectOneSentenceError(RunDualblade({"format", loop.device(), "--size", "128M", "--force"}),
                         "does not fit");
  EXPECT_TRUE(ReadBytes(loop.backing_file()) == before);
}

// What mkfs, sfdisk and mkswap leave is refused, named, untouched; --force takes it over and
// erases the old signature so nothing later mistakes the store for it.
struct Foreign {
  const char* name;
  const char* make;     // shell command; DEV is replaced by the device
  const char* message;  // what the refusal must say
  friend void PrintTo(const Foreign& f, std::ostream* os) { *os << f.name; }
};

class RefuseForeignTest : public ::testing::TestWithParam<Foreign> {};

TEST_P(RefuseForeignTest, RefusedUnlessForced) {
  const Foreign& p = GetParam();
  DB_LOOP_DEVICE_OR_SKIP(loop, 64 * kMiB);
  std::string cmd = p.make;
  cmd.replace(cmd.find("DEV"), 3, ShellQuote(loop.device()));
  std::string out;
  ASSERT_EQ(RunCommand(cmd, &out), 0) << cmd << ": " << out;
  const std::string before = ReadBytes(loop.backing_file());

  CliResult r = RunDualblade({"format", loop.device()});
  ExpectOneSentenceError(r, loop.device() + " holds " + p.message + "; use --force to overwrite it");
  EXPECT_TRUE(ReadBytes(loop.backing_file()) == before) << "a refused format wrote something";

  CliResult forced = RunDualblade({"format", loop.device(), "--force"});
  ASSERT_EQ(forced.rc, 0) << forced.err;
  EXPECT_EQ(InfoJson(loop.device())["used_bytes"], 0);
  std::string probe;
  RunCommand("blkid -p -o export " + ShellQuote(loop.device()), &probe);
  EXPECT_EQ(probe.find("TYPE="), std::string::npos) << "signature survived --force: " << probe;
}

INSTANTIATE_TEST_SUITE_P(
    Signatures, RefuseForeignTest,
    ::testing::Values(Foreign{"ext4", "mkfs.ext4 -q -F DEV", "an ext4 filesystem"},
                      Foreign{"gpt", "echo 'label: gpt' | sfdisk -q DEV", "a gpt partition table"},
                      Foreign{"swap", "mkswap DEV", "a swap signature"}),
    [](const ::testing::TestParamInfo<Foreign>& i) { return std::string(i.param.name); });

TEST(FormatCliTest, RefusesAnEarlierStoreUnlessForced) {
  DB_LOOP_DEVICE_OR_SKIP(loop, 32 * kMiB);
  ASSERT_EQ(RunDualblade({"format", loop.device()}).rc, 0);
  const std::string uuid = InfoJson(loop.device())["uuid"];
  const std::string before = ReadBytes(loop.backing_file());
  ExpectOneSentenceError(RunDualblade({"format", loop.device()}),
                         loop.device() + " holds a dualblade store; use --force to overwrite it");
  EXPECT_TRUE(ReadBytes(loop.backing_file()) == before);
  ASSERT_EQ(RunDualblade({"format", loop.device(), "--force"}).rc, 0);
  EXPECT_NE(InfoJson(loop.device())["uuid"], uuid);
}

TEST(FormatCliTest, RefusesAFileWithDataInItsFirstMiB) {
  TempDir dir;
  const std::string path = dir.File("data.img");
  MakeZeroFile(path, 32 * kMiB);
  WriteBytes(path, 4096 * 100 + 7, "x");
  const std::string before = ReadBytes(path);
  ExpectOneSentenceError(RunDualblade({"format", path}),
                         "holds data in its first MiB (a non-zero byte at offset 409607)");
  EXPECT_TRUE(ReadBytes(path) == before);
  ASSERT_EQ(RunDualblade({"format", path, "--force"}).rc, 0);
}

TEST(FormatCliTest, MissingPathAndMissingFiles) {
  CliResult r = RunDualblade({"format"});
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("STORE is required"), std::string::npos) << r.err;
  r = RunDualblade({"info"});
  EXPECT_NE(r.rc, 0);

  TempDir dir;
  ExpectOneSentenceError(RunDualblade({"info", dir.File("nope")}), "does not exist");
  ExpectOneSentenceError(RunDualblade({"format", dir.File("nope")}),
                         "does not exist; give --size");
  EXPECT_NE(access(dir.File("nope").c_str(), F_OK), 0);
  ExpectOneSentenceError(RunDualblade({"format", dir.File("sub/nope"), "--size", "64M"}),
                         "No such file or directory");
  ExpectOneSentenceError(RunDualblade({"format", dir.File("x"), "--size", "lots"}),
                         "is not a size");
}

TEST(FormatCliTest, DirectoryIsRefused) {
  TempDir dir;
  ExpectOneSentenceError(RunDualblade({"format", dir.path(), "--size", "64M"}), "is a directory");
  ExpectOneSentenceError(RunDualblade({"info", dir.path()}), "is a directory");
}

TEST(FormatCliTest, TooSmallFileIsRefusedAndNothingIsLeft) {
  TempDir dir;
  const std::string fresh = dir.File("fresh.img");
  ExpectOneSentenceError(RunDualblade({"format", fresh, "--size", "8M"}),
                         "a store needs at least 16.0 MiB");
  EXPECT_NE(access(fresh.c_str(), F_OK), 0) << "a failed format left a file behind";

  const std::string small = dir.File("small.img");
  MakeZeroFile(small, 8 * kMiB);
  ExpectOneSentenceError(RunDualblade({"format", small, "--force"}),
                         "a store needs at least 16.0 MiB");
  EXPECT_TRUE(ReadBytes(small) == std::string(8 * kMiB, '\0'));
  ExpectOneSentenceError(RunDualblade({"format", small, "--size", "64M"}), "does not match");
}

TEST(FormatCliTest, TooSmallDeviceIsRefused) {
  DB_LOOP_DEVICE_OR_SKIP(loop, 8 * kMiB);
  ExpectOneSentenceError(RunDualblade({"format", loop.device()}), "a store needs at least 16.0 MiB");
  EXPECT_TRUE(ReadBytes(loop.backing_file()) == std::string(8 * kMiB, '\0'));
}

// Root ignores file permissions, so "read-only" is made with the immutable attribute there.
class ReadOnlyFile {
 public:
  explicit ReadOnlyFile(const std::string& path) : path_(path) {
    if (geteuid() == 0) {
      immutable_ = RunCommand("chattr +i " + ShellQuote(path)) == 0;
      ok_ = immutable_;
    } else {
      ok_ = chmod(path.c_str(), 0444) == 0;
    }
  }
  ~ReadOnlyFile() {
    if (immutable_) RunCommand("chattr -i " + ShellQuote(path_));
  }
  bool ok() const { return ok_; }

 private:
  std::string path_;
  bool immutable_ = false;
  bool ok_ = false;
};

TEST(FormatCliTest, ReadOnlyFileIsRefusedButInfoWorks) {
  TempDir dir;
  const std::string path = dir.File("ro.img");
  MakeZeroFile(path, 32 * kMiB);
  {
    ReadOnlyFile ro(path);
    if (!ro.ok()) GTEST_SKIP() << "cannot make a read-only file here (chattr +i failed)";
    ExpectOneSentenceError(RunDualblade({"format", path}), "is read-only");
    EXPECT_TRUE(ReadBytes(path) == std::string(32 * kMiB, '\0'));
  }
  const std::string store = dir.File("store.img");
  ASSERT_EQ(RunDualblade({"format", store, "--size", "32M"}).rc, 0);
  ReadOnlyFile ro(store);
  ASSERT_TRUE(ro.ok());
  CliResult r = RunDualblade({"info", store, "--json"});
  EXPECT_EQ(r.rc, 0) << r.err;
}

TEST(FormatCliTest, ReadOnlyDeviceIsRefused) {
  DB_LOOP_DEVICE_OR_SKIP(loop, 32 * kMiB);
  ASSERT_EQ(RunCommand("blockdev --setro " + ShellQuote(loop.device())), 0);
  CliResult r = RunDualblade({"format", loop.device()});
  RunCommand("blockdev --setrw " + ShellQuote(loop.device()));
  ExpectOneSentenceError(r, "is read-only");
  EXPECT_TRUE(ReadBytes(loop.backing_file()) == std::string(32 * kMiB, '\0'));
}

TEST(FormatCliTest, CorruptSuperblockIsRefused) {
  TempDir dir;
  const std::string path = dir.File("store.img");
  ASSERT_EQ(RunDualblade({"format", path, "--size", "32M"}).rc, 0);
  std::string sb = ReadBytes(path, 4096);
  sb[41] = static_cast<char>(sb[41] ^ 0x10);  // a bit of the capacity
  WriteBytes(path, 0, sb);
  const std::string before = ReadBytes(path);
  ExpectOneSentenceError(RunDualblade({"info", path}), "superblock is corrupt (checksum mismatch)");
  ExpectOneSentenceError(RunDualblade({"info", path, "--json"}), "checksum mismatch");
  EXPECT_TRUE(ReadBytes(path) == before) << "info wrote to a corrupt store";
}

TEST(FormatCliTest, NotAStoreIsRefused) {
  TempDir dir;
  const std::string path = dir.File("zeros.img");
  MakeZeroFile(path, 32 * kMiB);
  ExpectOneSentenceError(RunDualblade({"info", path}), "is not a dualblade store");
}

TEST(FormatCliTest, NewerFormatVersionIsNotSupported) {
  TempDir dir;
  const std::string path = dir.File("store.img");
  ASSERT_EQ(RunDualblade({"format", path, "--size", "32M"}).rc, 0);
  std::string sb = ReadBytes(path, store::kSuperblockBytes);
  auto* p = reinterpret_cast<uint8_t*>(sb.data());
  store::PutU32(p + 8, store::kStoreFormatVersion + 1);
  store::PutU64(p + 4088, store::Checksum({p, 4088}));
  WriteBytes(path, 0, sb);
  const std::string before = ReadBytes(path);
  ExpectOneSentenceError(RunDualblade({"info", path}),
                         "store format version 2 is newer than this dualblade supports (1)");
  EXPECT_TRUE(ReadBytes(path) == before);
}

TEST(FormatCliTest, BothMetadataSlotsCorruptIsRefused) {
  TempDir dir;
  const std::string path = dir.File("store.img");
  ASSERT_EQ(RunDualblade({"format", path, "--size", "32M"}).rc, 0);
  nlohmann::json j = InfoJson(path);
  WriteBytes(path, j["meta_slot_a_offset_bytes"].get<uint64_t>() + 64, "junk");
  ExpectOneSentenceError(RunDualblade({"info", path}), "has no valid metadata slot");
}

}  // namespace
}  // namespace dualblade::testing
