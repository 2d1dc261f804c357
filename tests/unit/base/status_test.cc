// Status and Result: codes that callers test instead of messages.
#include "gateway/base/status.h"

#include <gtest/gtest.h>

namespace airlock {
namespace {

TEST(StatusTest, CodesAreKeptAndAnErrorIsNeverOk) {
  EXPECT_TRUE(Status::Ok().ok());
  EXPECT_EQ(Status::Ok().code(), StatusCode::kOk);
  Status plain = Status::Error("broken");
  EXPECT_FALSE(plain.ok());
  EXPECT_EQ(plain.code(), StatusCode::kError);
  EXPECT_EQ(Status::Error("no such name", StatusCode::kNotFound).code(), StatusCode::kNotFound);
  // An error made with kOk is still an error.
  Status odd = Status::Error("x", StatusCode::kOk);
  EXPECT_FALSE(odd.ok());
  EXPECT_EQ(odd.code(), StatusCode::kError);
  Result<int> r = Status::Error("late", StatusCode::kTimedOut);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kTimedOut);
  EXPECT_EQ(Result<int>(3).status().code(), StatusCode::kOk);
}

}  // namespace
}  // namespace airlock
