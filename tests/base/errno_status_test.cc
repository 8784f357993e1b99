// base/errno_status.h: one errno -> Status conversion for every module.
#include "base/errno_status.h"

#include <cerrno>
#include <cstring>
#include <string>

#include <gtest/gtest.h>

namespace baton {
namespace {

TEST(ErrnoStatusTest, CodesAreAbseilsForTheErrnosItNames) {
  EXPECT_EQ(ErrnoToStatus(ENOENT, "x").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ErrnoToStatus(ENODEV, "x").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ErrnoToStatus(EACCES, "x").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(ErrnoToStatus(EPERM, "x").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(ErrnoToStatus(EROFS, "x").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(ErrnoToStatus(EEXIST, "x").code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ErrnoToStatus(EINVAL, "x").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ErrnoToStatus(ENOSPC, "x").code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ErrnoToStatus(EAGAIN, "x").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ErrnoToStatus(ECONNREFUSED, "x").code(), absl::StatusCode::kUnavailable);
}

// kUnknown means "commit outcome unknown" in the store contract; a failed system call is retryable.
TEST(ErrnoStatusTest, AnErrnoAbseilDoesNotNameIsUnavailableNotUnknown) {
  EXPECT_EQ(absl::ErrnoToStatusCode(EIO), absl::StatusCode::kUnknown);  // why the rule exists
  EXPECT_EQ(ErrnoToStatus(EIO, "x").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ErrnoToStatus(EMSGSIZE, "x").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ErrnoToStatus(99999, "x").code(), absl::StatusCode::kUnavailable);
}

TEST(ErrnoStatusTest, MessageNamesWhatFailedAndTheSystemsText) {
  const absl::Status s = ErrnoToStatus(ENOENT, "opening /nonexistent");
  EXPECT_EQ(std::string(s.message()),
            std::string("opening /nonexistent: ") + std::strerror(ENOENT));
}

TEST(ErrnoStatusTest, ZeroIsOk) { EXPECT_TRUE(ErrnoToStatus(0, "nothing failed").ok()); }

}  // namespace
}  // namespace baton
