#include "common/status.h"

#include <cerrno>

#include <gtest/gtest.h>

namespace dualblade {
namespace {

TEST(StatusTest, DefaultIsOk) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.ToString(), "OK");
}

TEST(StatusTest, ErrnoMapping) {
  EXPECT_TRUE(ErrnoStatus("open x", ENOENT).IsNotFound());
  EXPECT_TRUE(ErrnoStatus("write x", ENOSPC).IsNoSpace());
  EXPECT_TRUE(ErrnoStatus("ioctl", EINVAL).IsInvalidArgument());
  EXPECT_TRUE(ErrnoStatus("open", EBUSY).IsBusy());
  Status eio = ErrnoStatus("read /dev/x at 4096", EIO);
  EXPECT_TRUE(eio.IsIOError());
  EXPECT_EQ(eio.sys_errno(), EIO);
  EXPECT_EQ(eio.message(), "read /dev/x at 4096: Input/output error");
}

TEST(StatusTest, InjectedIsMarked) {
  Status s = ErrnoStatus("read", EIO);
  EXPECT_FALSE(s.injected());
  s.MarkInjected();
  EXPECT_TRUE(s.injected());
  EXPECT_NE(s.ToString().find("[injected]"), std::string::npos);
}

TEST(StatusTest, AnnotatePrefixesContext) {
  Status s = Status::Corruption("bad checksum").Annotate("superblock");
  EXPECT_EQ(s.message(), "superblock: bad checksum");
  EXPECT_TRUE(s.IsCorruption());
}

Result<int> Half(int v) {
  if (v % 2 != 0) return Status::InvalidArgument("odd");
  return v / 2;
}

Result<int> Quarter(int v) {
  DB_ASSIGN_OR_RETURN(int h, Half(v));
  DB_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

TEST(ResultTest, PropagatesErrors) {
  EXPECT_EQ(*Quarter(8), 2);
  Result<int> r = Quarter(6);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsInvalidArgument());
}

TEST(ResultDeathTest, ValueOfErrorAborts) {
  Result<int> r = Status::NotFound("x");
  EXPECT_DEATH((void)r.value(), "check failed");
}

}  // namespace
}  // namespace dualblade
