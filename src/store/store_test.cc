#include "store/store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <iterator>

#include "common/units.h"
#include "store/codec.h"
#include "testing/test_env.h"

namespace dualblade::store {
namespace {

using testing::TempDir;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteAt(const std::string& path, uint64_t off, const std::string& bytes) {
  std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
  f.seekp(static_cast<std::streamoff>(off));
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::unique_ptr<Store> OpenRw(const std::string& path) {
  Result<std::unique_ptr<Store>> s = Store::Open(path, StoreOpenOptions{.read_only = false});
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(s).value() : nullptr;
}

TEST(StoreTest, FormatThenOpenEmpty) {
  TempDir dir;
  const std::string path = dir.File("s.img");
  Result<Superblock> sb = Store::Format(path, {.size_bytes = 64 * kMiB});
  ASSERT_TRUE(sb.ok()) << sb.status().ToString();
  Result<std::unique_ptr<Store>> s = Store::Open(path, {});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ((*s)->superblock(), *sb);
  EXPECT_EQ((*s)->sequence(), 1u);
  EXPECT_EQ((*s)->active_slot(), 0);
  AllocatorStats st = (*s)->allocator().stats();
  EXPECT_EQ(st.used_blocks, 0u);
  EXPECT_EQ(st.total_blocks * sb->block_bytes, sb->data_bytes);
  Result<DataArea> area = ReadDataArea(path);
  ASSERT_TRUE(area.ok());
  EXPECT_EQ(area->offset_bytes, sb->data_offset_bytes);
}

TEST(StoreTest, CommitAlternatesSlotsAndReopenKeepsAllocation) {
  TempDir dir;
  const std::string path = dir.File("s.img");
  ASSERT_TRUE(Store::Format(path, {.size_bytes = 32 * kMiB}).ok());
  std::vector<Extent> free_before;
  {
    auto s = OpenRw(path);
    ASSERT_TRUE(s);
    Extent a = *s->allocator().Allocate(10), b = *s->allocator().Allocate(5);
    ASSERT_TRUE(s->allocator().Free(a).ok());
    (void)b;
    s->SetRecord(kRecordSequenceIndex, {3, {9, 8, 7}});
    ASSERT_TRUE(s->Commit().ok());
    EXPECT_EQ(s->active_slot(), 1);
    EXPECT_EQ(s->sequence(), 2u);
    free_before = s->allocator().FreeExtents();
  }
  auto s = OpenRw(path);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->sequence(), 2u);
  EXPECT_EQ(s->allocator().FreeExtents(), free_before);
  ASSERT_NE(s->FindRecord(kRecordSequenceIndex), nullptr);
  EXPECT_EQ(s->FindRecord(kRecordSequenceIndex)->bytes, (std::vector<uint8_t>{9, 8, 7}));
  ASSERT_TRUE(s->Commit().ok());
  EXPECT_EQ(s->active_slot(), 0);
  EXPECT_EQ(s->sequence(), 3u);
}

// A torn or corrupt newest slot falls back to the previous commit; both bad is Corruption.
TEST(StoreTest, CorruptNewestSlotFallsBackToOlder) {
  TempDir dir;
  const std::string path = dir.File("s.img");
  Superblock sb = *Store::Format(path, {.size_bytes = 32 * kMiB});
  {
    auto s = OpenRw(path);
    (void)*s->allocator().Allocate(7);
    ASSERT_TRUE(s->Commit().ok());  // seq 2 in slot B
  }
  WriteAt(path, sb.meta_slot_offset_bytes[1] + 100, "garbage");
  {
    auto s = Store::Open(path, {});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    EXPECT_EQ((*s)->sequence(), 1u);
    EXPECT_EQ((*s)->allocator().stats().used_blocks, 0u);
  }
  WriteAt(path, sb.meta_slot_offset_bytes[0] + 70, "garbage");
  auto s = Store::Open(path, {});
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(s.status().IsCorruption()) << s.status().ToString();
  EXPECT_NE(s.status().message().find("no valid metadata slot"), std::string::npos);
}

// A crash while a commit is being written leaves a torn prefix of the new slot image over the
// older slot. Whatever the prefix, open returns the previous commit intact, and the new one only
// once every sector of it is there.
TEST(StoreTest, TornCommitKeepsThePreviousState) {
  TempDir dir;
  const std::string path = dir.File("s.img");
  const Superblock sb = *Store::Format(path, {.size_bytes = 16 * kMiB});
  std::vector<Extent> free_old, free_new;
  {
    auto s = OpenRw(path);
    (void)*s->allocator().Allocate(3);
    s->SetRecord(kRecordSequenceIndex, {1, std::vector<uint8_t>(9000, 0x11)});
    ASSERT_TRUE(s->Commit().ok());  // sequence 2, slot B; slot A (sequence 1) is the older
    free_old = s->allocator().FreeExtents();
  }
  const uint64_t slot_a = sb.meta_slot_offset_bytes[0];
  const std::string before = ReadAll(path).substr(slot_a, 64 * 1024);
  {
    auto s = OpenRw(path);
    (void)*s->allocator().Allocate(5);
    s->SetRecord(kRecordSequenceIndex, {1, std::vector<uint8_t>(12000, 0x22)});
    ASSERT_TRUE(s->Commit().ok());  // sequence 3 into slot A
    ASSERT_EQ(s->active_slot(), 0);
    free_new = s->allocator().FreeExtents();
  }
  const std::string after = ReadAll(path).substr(slot_a, 64 * 1024);
  const uint64_t written = AlignUp(kSlotHeaderBytes + 16 + 24 + 16 * free_new.size() + 16 + 12000,
                                   sb.block_bytes);
  for (uint64_t sectors = 0; sectors * 512 <= written; ++sectors) {
    SCOPED_TRACE("torn after " + std::to_string(sectors) + " sectors");
    WriteAt(path, slot_a, before);
    WriteAt(path, slot_a, after.substr(0, sectors * 512));
    auto s = Store::Open(path, {});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    const bool complete = sectors * 512 >= written;
    EXPECT_EQ((*s)->sequence(), complete ? 3u : 2u);
    EXPECT_EQ((*s)->allocator().FreeExtents(), complete ? free_new : free_old);
    EXPECT_EQ((*s)->FindRecord(kRecordSequenceIndex)->bytes.size(), complete ? 12000u : 9000u);
  }
}

TEST(StoreTest, OpenWritesNothingAndReadOnlyCannotCommit) {
  TempDir dir;
  const std::string path = dir.File("s.img");
  ASSERT_TRUE(Store::Format(path, {.size_bytes = 16 * kMiB}).ok());
  const std::string before = ReadAll(path);
  {
    auto s = Store::Open(path, {});
    ASSERT_TRUE(s.ok());
    EXPECT_TRUE((*s)->Commit().IsInvalidArgument());
    auto rw = OpenRw(path);
    ASSERT_TRUE(rw);
  }
  EXPECT_TRUE(ReadAll(path) == before);
}

TEST(StoreTest, MetadataLargerThanASlotIsNoSpace) {
  TempDir dir;
  const std::string path = dir.File("s.img");
  ASSERT_TRUE(Store::Format(path, {.size_bytes = 16 * kMiB}).ok());
  auto s = OpenRw(path);
  s->SetRecord(kRecordSequenceIndex, {1, std::vector<uint8_t>(5 * kMiB)});
  Status st = s->Commit();
  EXPECT_TRUE(st.IsNoSpace()) << st.ToString();
  EXPECT_EQ(s->sequence(), 1u);
}

TEST(StoreTest, FormatRefusesDataAndAnEarlierStoreUnlessForced) {
  TempDir dir;
  const std::string path = dir.File("s.img");
  ASSERT_TRUE(Store::Format(path, {.size_bytes = 16 * kMiB}).ok());
  Result<Superblock> again = Store::Format(path, {});
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().message(), path + " holds a dualblade store; use --force to overwrite it");
  Result<Superblock> forced = Store::Format(path, {.force = true});
  ASSERT_TRUE(forced.ok()) << forced.status().ToString();

  const std::string other = dir.File("data.img");
  { std::ofstream(other, std::ios::binary) << std::string(20 * kMiB, '\0'); }
  WriteAt(other, 12345, "x");
  Result<Superblock> r = Store::Format(other, {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("non-zero byte at offset 12345"), std::string::npos)
      << r.status().message();
}

TEST(StoreTest, FailedFormatLeavesNoFile) {
  TempDir dir;
  const std::string path = dir.File("small.img");
  Result<Superblock> r = Store::Format(path, {.size_bytes = 8 * kMiB});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsInvalidArgument());
  EXPECT_NE(access(path.c_str(), F_OK), 0);
  EXPECT_TRUE(Store::Format(dir.File("nosize.img"), {}).status().IsInvalidArgument());
  EXPECT_TRUE(Store::Format(dir.path(), {.size_bytes = 64 * kMiB}).status().IsInvalidArgument());
}

TEST(StoreTest, TruncatedStoreIsCorruption) {
  TempDir dir;
  const std::string path = dir.File("s.img");
  ASSERT_TRUE(Store::Format(path, {.size_bytes = 32 * kMiB}).ok());
  ASSERT_EQ(::truncate(path.c_str(), 20 * kMiB), 0);
  auto s = Store::Open(path, {});
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(s.status().IsCorruption()) << s.status().ToString();
}

TEST(StoreTest, NotAStore) {
  TempDir dir;
  const std::string path = dir.File("zeros.img");
  { std::ofstream(path, std::ios::binary) << std::string(kMiB, '\0'); }
  auto s = Store::Open(path, {});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().message(), path + " is not a dualblade store (no superblock at byte 0)");
}

}  // namespace
}  // namespace dualblade::store
