// The sequence index record decodes to exactly what was encoded, and damaged records (truncated,
// flipped bytes, extents the allocator does not hold) are Corruption, never a crash.
#include <gtest/gtest.h>

#include <random>

#include "common/units.h"
#include "store/kv_store_impl.h"
#include "store/kv_test_util.h"
#include "testing/test_env.h"

namespace dualblade::store {
namespace {

using dualblade::testing::TempDir;
using testing::AppendRandom;
using testing::KvFixture;
using testing::RefSequence;

class KvIndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    f_ = KvFixture::Create(dir_.File("s.img"), 64 * kMiB);
    ASSERT_TRUE(f_);
    std::mt19937_64 rng(5);
    KvGeometry g{.n_layer = 2, .n_head_kv = 2, .head_dim = 32, .type = KvType::kQ8_0,
                 .chunk_tokens = 8, .capacity_tokens = 20};
    for (int i = 0; i < 2; ++i) {
      SeqId id = f_->kv().CreateSequence(g, "model-" + std::to_string(i)).value();
      RefSequence ref(g);
      ASSERT_TRUE(AppendRandom(f_->kv(), id, ref, 0, 30, rng).ok());  // grows a second extent
      ASSERT_TRUE(f_->kv().SetChunkPath(id, 1, 1, KvPath::kPage).ok());
    }
    ASSERT_TRUE(f_->kv().Commit().ok());
    const MetadataRecord* rec = f_->store().FindRecord(kRecordSequenceIndex);
    ASSERT_NE(rec, nullptr);
    record_ = *rec;
  }

  Status Decode(const MetadataRecord& rec) {
    std::map<SeqId, std::unique_ptr<Sequence>> seqs;
    SeqId next = 0;
    return DecodeSequenceIndex(rec, f_->store(), &seqs, &next);
  }

  TempDir dir_;
  std::unique_ptr<KvFixture> f_;
  MetadataRecord record_;
};

TEST_F(KvIndexTest, RoundTrips) {
  std::map<SeqId, std::unique_ptr<Sequence>> seqs;
  SeqId next = 0;
  ASSERT_TRUE(DecodeSequenceIndex(record_, f_->store(), &seqs, &next).ok());
  EXPECT_EQ(next, 3u);
  ASSERT_EQ(seqs.size(), 2u);
  EXPECT_EQ(EncodeSequenceIndex(seqs, next), record_.bytes);
  const Sequence& s = *seqs.at(1);
  EXPECT_EQ(s.model_identity, "model-0");
  EXPECT_EQ(s.layers[0].n_tokens, 30u);
  EXPECT_EQ(s.layers[0].extents.size(), 2u);
  EXPECT_EQ(s.layers[1].chunks[1].path, KvPath::kPage);
  EXPECT_EQ(s.layout.geometry.type, KvType::kQ8_0);
}

TEST_F(KvIndexTest, EveryTruncationIsCorruption) {
  for (size_t n = 0; n < record_.bytes.size(); ++n) {
    MetadataRecord r = record_;
    r.bytes.resize(n);
    EXPECT_TRUE(Decode(r).IsCorruption()) << "length " << n;
  }
  MetadataRecord longer = record_;
  longer.bytes.push_back(0);
  EXPECT_TRUE(Decode(longer).IsCorruption());
  MetadataRecord newer = record_;
  newer.version = kSequenceIndexVersion + 1;
  EXPECT_TRUE(Decode(newer).IsNotSupported());
}

TEST_F(KvIndexTest, RandomByteFlipsNeverCrash) {
  std::mt19937_64 rng(6);
  int rejected = 0;
  for (int i = 0; i < 3000; ++i) {
    MetadataRecord r = record_;
    for (int j = 0; j < 1 + static_cast<int>(rng() % 3); ++j) {
      r.bytes[rng() % r.bytes.size()] ^= static_cast<uint8_t>(1 + rng() % 255);
    }
    if (!Decode(r).ok()) ++rejected;
  }
  // Hashes and paths may change harmlessly; sizes and extents may not.
  EXPECT_GT(rejected, 1000);
}

TEST_F(KvIndexTest, ExtentsTheAllocatorDoesNotHoldAreCorruption) {
  f_->Close();
  ASSERT_TRUE(f_->Reopen().ok());
  // Free one segment behind the index's back: the index now names free blocks.
  std::map<SeqId, std::unique_ptr<Sequence>> seqs;
  SeqId next = 0;
  ASSERT_TRUE(DecodeSequenceIndex(record_, f_->store(), &seqs, &next).ok());
  ASSERT_TRUE(f_->store().allocator().Free(seqs.at(2)->layers[1].extents[0].extent).ok());
  Status st = Decode(record_);
  EXPECT_TRUE(st.IsCorruption());
  EXPECT_NE(st.message().find("not allocated"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace dualblade::store
