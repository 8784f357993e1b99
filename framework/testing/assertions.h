// GoogleTest assertions over a test-kit Report (framework/testing/harness.h):
//
//   EXPECT_TRUE(baton::testing::ExactlyOnce(h.LoseReplyThenRetry(call)));
//
// On failure the message is the whole report: every attempt's answer, how
// often the handler ran and how many runs were committed. Header-only; the
// test links GoogleTest, baton_testing does not.
#ifndef BATON_FRAMEWORK_TESTING_ASSERTIONS_H_
#define BATON_FRAMEWORK_TESTING_ASSERTIONS_H_

#include "framework/testing/harness.h"
#include "gtest/gtest.h"

namespace baton::testing {

// Every attempt got a reply, all byte-identical, and exactly one handler run
// was committed.
inline ::testing::AssertionResult ExactlyOnce(const Report& report) {
  if (report.ExactlyOnce()) return ::testing::AssertionSuccess();
  ::testing::AssertionResult failure = ::testing::AssertionFailure();
  failure << "not exactly once (want: every attempt answered, same reply "
             "bytes, 1 committed run)";
  if (report.committed_runs == 0 && !report.attempts.empty() &&
      report.replays() == static_cast<int>(report.attempts.size())) {
    failure << "; every attempt was a replay: this request id was executed "
               "before the scenario (use a fresh id per scenario)";
  }
  return failure << "\n" << report;
}

// No handler run was committed twice (some attempts may have failed).
inline ::testing::AssertionResult AtMostOnce(const Report& report) {
  if (report.AtMostOnce()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << report.committed_runs << " handler runs committed\n" << report;
}

// Every attempt answered with a reply got the same bytes.
inline ::testing::AssertionResult SameReplies(const Report& report) {
  if (report.SameReplies()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "replies differ\n" << report;
}

}  // namespace baton::testing

#endif  // BATON_FRAMEWORK_TESTING_ASSERTIONS_H_
