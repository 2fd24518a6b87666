// GGUF writer tests: every metadata type and tensors round-trip through the reader, byte for byte.
#include "model/gguf_writer.h"

#include <cmath>
#include <cstring>
#include <limits>

#include <gtest/gtest.h>

#include "model/gguf.h"
#include "testing/test_env.h"

namespace dualblade {
namespace {

TEST(GgufWriterTest, EveryScalarTypeRoundTrips) {
  GgufWriter w;
  w.Set("u8", GgufEncodeU8(250));
  w.Set("i8", GgufEncodeI8(-100));
  w.Set("u16", GgufEncodeU16(65000));
  w.Set("i16", GgufEncodeI16(-30000));
  w.Set("u32", GgufEncodeU32(4000000000u));
  w.Set("i32", GgufEncodeI32(-2000000000));
  w.Set("f32", GgufEncodeF32(1.5f));
  w.Set("bool", GgufEncodeBool(true));
  w.Set("string", GgufEncodeString("héllo"));
  w.Set("u64", GgufEncodeU64(std::numeric_limits<uint64_t>::max()));
  w.Set("i64", GgufEncodeI64(std::numeric_limits<int64_t>::min()));
  w.Set("f64", GgufEncodeF64(0.1));
  auto bytes = w.WriteToMemory();
  ASSERT_TRUE(bytes.ok());
  auto f = GgufFile::Parse(*bytes);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  const GgufFile& g = **f;
  EXPECT_EQ(g.version(), 3u);
  ASSERT_EQ(g.metadata().size(), 12u);
  EXPECT_EQ(g.metadata()[0].first, "u8");
  EXPECT_EQ(*g.GetU32("u8"), 250u);
  EXPECT_EQ(*g.GetI32("i8"), -100);
  EXPECT_EQ(*g.GetU32("u16"), 65000u);
  EXPECT_EQ(*g.GetI32("i16"), -30000);
  EXPECT_EQ(*g.GetU32("u32"), 4000000000u);
  EXPECT_EQ(*g.GetI32("i32"), -2000000000);
  EXPECT_EQ(*g.GetF32("f32"), 1.5f);
  EXPECT_EQ(*g.GetBool("bool"), true);
  EXPECT_EQ(*g.GetString("string"), "héllo");
  EXPECT_EQ(*g.GetU64("u64"), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(*g.GetI64("i64"), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(*g.GetF64("f64"), 0.1);
  EXPECT_EQ(g.Find("f64")->type, GgufType::kF64);
  EXPECT_EQ(g.Find("i16")->type, GgufType::kI16);

  // Conversions happen only when the value fits.
  EXPECT_EQ(*g.GetI64("u32"), 4000000000);
  EXPECT_TRUE(g.GetI32("u32").status().IsInvalidArgument());
  EXPECT_TRUE(g.GetU32("i8").status().IsInvalidArgument());
  EXPECT_TRUE(g.GetU32("u64").status().IsInvalidArgument());
  EXPECT_TRUE(g.GetString("u32").status().IsInvalidArgument());
  EXPECT_TRUE(g.GetBool("u8").status().IsInvalidArgument());
  Status missing = g.GetU32("llama.block_count").status();
  EXPECT_TRUE(missing.IsNotFound());
  EXPECT_EQ(missing.message(), "GGUF key 'llama.block_count' is missing");
}

TEST(GgufWriterTest, ArraysIncludingNestedRoundTrip) {
  GgufWriter w;
  const std::vector<std::string> toks = {"<unk>", "", "▁the", std::string("a\0b", 3)};
  w.SetStringArray("tokens", toks);
  w.SetF32Array("scores", std::vector<float>{0.5f, -1.0f, 3.25f});
  w.SetI32Array("types", std::vector<int32_t>{1, 2, -3});
  w.Set("u8s", GgufEncodeArray(GgufType::kU8, {GgufEncodeU8(1), GgufEncodeU8(255)}));
  w.Set("f64s", GgufEncodeArray(GgufType::kF64, {GgufEncodeF64(2.5)}));
  w.Set("empty", GgufEncodeArray(GgufType::kI32, {}));
  w.Set("nested",
        GgufEncodeArray(GgufType::kArray,
                        {GgufEncodeArray(GgufType::kI16, {GgufEncodeI16(-1), GgufEncodeI16(2)}),
                         GgufEncodeArray(GgufType::kArray,
                                         {GgufEncodeArray(GgufType::kString,
                                                          {GgufEncodeString("deep")})})}));
  auto bytes = w.WriteToMemory();
  ASSERT_TRUE(bytes.ok());
  auto f = GgufFile::Parse(*bytes);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  const GgufFile& g = **f;
  auto t = g.GetStringArray("tokens");
  ASSERT_TRUE(t.ok());
  ASSERT_EQ(t->size(), 4u);
  for (size_t i = 0; i < toks.size(); ++i) EXPECT_EQ((*t)[i], toks[i]);
  EXPECT_EQ(*g.GetF32Array("scores"), (std::vector<float>{0.5f, -1.0f, 3.25f}));
  EXPECT_EQ(*g.GetI32Array("types"), (std::vector<int32_t>{1, 2, -3}));
  EXPECT_EQ(*g.GetI32Array("u8s"), (std::vector<int32_t>{1, 255}));
  EXPECT_EQ(*g.GetU32Array("u8s"), (std::vector<uint32_t>{1, 255}));
  EXPECT_TRUE(g.GetU32Array("types").status().IsInvalidArgument());  // -3 does not fit
  EXPECT_EQ(*g.GetF32Array("f64s"), (std::vector<float>{2.5f}));
  EXPECT_TRUE(g.GetF32Array("types").status().IsInvalidArgument());
  EXPECT_TRUE(g.GetStringArray("scores").status().IsInvalidArgument());
  EXPECT_EQ(*g.GetArrayLength("empty"), 0u);
  EXPECT_TRUE(g.GetI32Array("empty")->empty());
  const GgufValue* n = g.Find("nested");
  ASSERT_NE(n, nullptr);
  ASSERT_EQ(n->elem_type, GgufType::kArray);
  ASSERT_EQ(n->arrays.size(), 2u);
  EXPECT_EQ(n->arrays[0].elem_type, GgufType::kI16);
  EXPECT_EQ(n->arrays[0].ElemI64(0), -1);
  EXPECT_EQ(n->arrays[0].ElemI64(1), 2);
  ASSERT_EQ(n->arrays[1].arrays.size(), 1u);
  EXPECT_EQ(n->arrays[1].arrays[0].strings.at(0), "deep");
  EXPECT_EQ(n->ToString(), "[[-1, 2], [[\"deep\"]]]");
}

TEST(GgufWriterTest, TensorsArePaddedToTheAlignment) {
  for (uint32_t align : {32u, 64u, 4096u}) {
    GgufWriter w(2);
    if (align != 32) w.SetAlignment(align);
    w.SetString("general.architecture", "llama");
    std::vector<uint8_t> a(3 * 4), b(34 * 2), c(2 * 5);
    for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<uint8_t>(i);
    for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint8_t>(100 + i);
    ASSERT_TRUE(w.AddTensor("a", GgmlType::kF32, {3}, a).ok());
    ASSERT_TRUE(w.AddTensor("b", GgmlType::kQ8_0, {32, 2}, b).ok());
    ASSERT_TRUE(w.AddTensor("c", GgmlType::kF16, {5, 1, 1, 1},
                            [](std::span<uint8_t> out) {
                              for (size_t i = 0; i < out.size(); ++i) out[i] = 0xA0 + i;
                              return Status::OK();
                            }).ok());
    testing::TempDir dir;
    const std::string path = dir.File("t.gguf");
    ASSERT_TRUE(w.WriteFile(path).ok());
    auto f = GgufFile::Open(path);
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    const GgufFile& g = **f;
    EXPECT_EQ(g.version(), 2u);
    EXPECT_EQ(g.alignment(), align);
    EXPECT_EQ(g.data_offset_bytes() % align, 0u);
    ASSERT_EQ(g.tensors().size(), 3u);
    const GgufTensor* tb = g.FindTensor("b");
    ASSERT_NE(tb, nullptr);
    EXPECT_EQ(tb->type, GgmlType::kQ8_0);
    EXPECT_EQ(tb->n_dims, 2u);
    EXPECT_EQ(tb->ne[0], 32);
    EXPECT_EQ(tb->ne[1], 2);
    EXPECT_EQ(tb->offset_bytes % align, 0u);
    EXPECT_EQ(std::memcmp(tb->data, b.data(), b.size()), 0);
    EXPECT_EQ(std::memcmp(g.FindTensor("a")->data, a.data(), a.size()), 0);
    const GgufTensor* tc = g.FindTensor("c");
    EXPECT_EQ(tc->nbytes, 10u);
    EXPECT_EQ(tc->n_dims, 4u);
    EXPECT_EQ(tc->data[9], 0xA9);
    EXPECT_EQ(g.FindTensor("zzz"), nullptr);
  }
}

TEST(GgufWriterTest, RejectsBadTensors) {
  GgufWriter w;
  EXPECT_TRUE(w.AddTensor("x", GgmlType::kQ8_0, {31}, std::vector<uint8_t>(34)).IsInvalidArgument());
  EXPECT_TRUE(w.AddTensor("x", GgmlType::kF32, {4}, std::vector<uint8_t>(15)).IsInvalidArgument());
  EXPECT_TRUE(w.AddTensor("x", GgmlType::kF32, {}, std::vector<uint8_t>()).IsInvalidArgument());
  EXPECT_TRUE(w.AddTensor(std::string(64, 'n'), GgmlType::kF32, {1}, std::vector<uint8_t>(4))
                  .IsInvalidArgument());
  EXPECT_TRUE(w.AddTensor("x", GgmlType::kF32, {1}, std::vector<uint8_t>(4)).ok());
  EXPECT_TRUE(w.AddTensor("x", GgmlType::kF32, {1}, std::vector<uint8_t>(4)).IsInvalidArgument());
}

TEST(GgufWriterTest, FailedFillLeavesNoFile) {
  GgufWriter w;
  ASSERT_TRUE(w.AddTensor("x", GgmlType::kF32, {4}, [](std::span<uint8_t>) {
                 return Status::IOError("generator failed");
               }).ok());
  testing::TempDir dir;
  Status st = w.WriteFile(dir.File("m.gguf"));
  EXPECT_TRUE(st.IsIOError());
  EXPECT_NE(st.message().find("tensor 'x'"), std::string::npos) << st.ToString();
  EXPECT_FALSE(GgufFile::Open(dir.File("m.gguf")).ok());
  EXPECT_FALSE(GgufFile::Open(dir.File("m.gguf.tmp")).ok());
}

}  // namespace
}  // namespace dualblade
