// The code of docs/testing.md, compiled and run. Every ```cpp block of that
// page must appear in this file word for word (DocsTest.EveryCodeBlockIsHere
// checks it), so the guide cannot drift from code that works.
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"

// --- docs/testing.md: the service --------------------------------------------
#include "absl/strings/numbers.h"
#include "framework/handler.h"

// POST /accounts/{id}/deposit, body: the amount. Replies with the new balance.
absl::StatusOr<baton::framework::Reply> Deposit(
    const baton::framework::Request& req, baton::framework::Transaction& txn) {
  int64_t amount = 0;
  if (!absl::SimpleAtoi(req.body, &amount) || amount <= 0) {
    return baton::framework::Reply::Text(absl::StatusCode::kInvalidArgument,
                                         "amount must be a positive integer");
  }
  const std::string key = "balance/" + std::string(req.Param("id"));
  auto balance = txn.Get(key);
  if (!balance.ok()) return balance.status();
  int64_t now = amount;
  if (balance->present() && absl::SimpleAtoi(balance->value, &now)) now += amount;
  if (auto s = txn.Put(key, std::to_string(now)); !s.ok()) return s;
  return baton::framework::Reply::Json(absl::StatusCode::kOk,
                                       "{\"balance\":" + std::to_string(now) + "}");
}
// --- end ----------------------------------------------------------------------

// --- docs/testing.md: the first test ---------------------------------------------
#include "framework/testing/assertions.h"
#include "framework/testing/harness.h"

using baton::testing::ExactlyOnce;
using baton::testing::Harness;
using baton::testing::Post;

TEST(DepositTest, RetriesAndDuplicatesDepositOnce) {
  Harness h;
  ASSERT_TRUE(h.Route("POST", "/accounts/{id}/deposit", Deposit).ok());
  auto deposit = [](std::string id) {  // each scenario a request of its own
    return Post("/accounts/alice/deposit", "10").Key(id);
  };
  EXPECT_TRUE(ExactlyOnce(h.LoseReplyThenRetry(deposit("d-1"))));  // reply lost
  EXPECT_TRUE(ExactlyOnce(h.SendConcurrently(deposit("d-2"), 8)));  // 8 copies race
  EXPECT_TRUE(ExactlyOnce(h.SendWithConflicts(deposit("d-3"), 3)));  // 3 conflicts
  EXPECT_EQ(h.Value("balance/alice"), "30");
}
// --- end ----------------------------------------------------------------------

// --- docs/testing.md: faults ------------------------------------------------------
using baton::testing::Fault;
using baton::testing::Report;

TEST(DepositTest, UnknownOutcomesAndRefusals) {
  Harness h;
  ASSERT_TRUE(h.Route("POST", "/accounts/{id}/deposit", Deposit).ok());

  // The commit happened, but the store answered "unknown": the pipeline
  // reads the completion record instead of running the handler again.
  Report r = h.SendWithFaults(Post("/accounts/bob/deposit", "5").Key("d-1"),
                              {Fault::UnknownApplied()});
  EXPECT_TRUE(ExactlyOnce(r));
  EXPECT_EQ(r.handler_runs, 1);

  // Refused twice (503), then the client's third try goes through.
  r = h.SendWithFaults(Post("/accounts/bob/deposit", "5").Key("d-2"),
                       {Fault::Unavailable(), Fault::Unavailable()});
  EXPECT_EQ(r.attempts[0].http_status, 503);
  EXPECT_TRUE(r.last().ok());
  EXPECT_EQ(r.committed_runs, 1);
  EXPECT_EQ(h.Value("balance/bob"), "10");
}
// --- end ----------------------------------------------------------------------

// --- docs/testing.md: rules -------------------------------------------------------
using baton::testing::FaultRule;
using baton::testing::WritingKey;

TEST(DepositTest, EveryCommitOnBobTimesOut) {
  Harness h;
  ASSERT_TRUE(h.Route("POST", "/accounts/{id}/deposit", Deposit).ok());
  h.faults().AddRule({.fault = Fault::UnknownNotApplied(),
                      .matches = WritingKey("balance/bob"),
                      .skip = 0,
                      .times = FaultRule::kEveryTime});
  Report r = h.Send(Post("/accounts/bob/deposit", "1").Key("d-3"));
  EXPECT_EQ(r.first().http_status, 409);  // max_attempts runs, none committed
  EXPECT_EQ(r.committed_runs, 0);
  EXPECT_EQ(h.Value("balance/bob"), std::nullopt);
}
// --- end ----------------------------------------------------------------------

// --- docs/testing.md: time ----------------------------------------------------------
using baton::testing::RetryOptions;

TEST(DepositTest, ARetryAfterTheRetentionRunsAgain) {
  Harness h;
  ASSERT_TRUE(h.Route("POST", "/accounts/{id}/deposit", Deposit).ok());
  Report r = h.Retry(Post("/accounts/carol/deposit", "7").Key("d-4"),
                     RetryOptions().Wait(absl::Hours(25)).CollectGarbage());
  EXPECT_EQ(r.committed_runs, 2);  // the record was collected after 24 h
  EXPECT_EQ(h.Value("balance/carol"), "14");
}
// --- end ----------------------------------------------------------------------

// --- docs/testing.md: modes -----------------------------------------------------------
using baton::testing::HarnessOptions;

class DepositModesTest
    : public ::testing::TestWithParam<HarnessOptions::Execution> {};

TEST_P(DepositModesTest, DuplicatesDepositOnce) {
  HarnessOptions options;
  options.execution = GetParam();
  Harness h(options);
  ASSERT_TRUE(h.Route("POST", "/accounts/{id}/deposit", Deposit).ok());
  EXPECT_TRUE(ExactlyOnce(h.SendConcurrently(
      Post("/accounts/dave/deposit", "1").ClientSeq("client-1", 1), 4)));
}

INSTANTIATE_TEST_SUITE_P(Both, DepositModesTest,
                         ::testing::Values(HarnessOptions::Execution::kInline,
                                           HarnessOptions::Execution::kBlocking));
// --- end ----------------------------------------------------------------------

namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(DocsTest, EveryCodeBlockIsHere) {
  const std::string doc = ReadFile(BATON_SOURCE_DIR "/docs/testing.md");
  const std::string self =
      ReadFile(BATON_SOURCE_DIR "/tests/framework/testkit_docs_test.cc");
  ASSERT_FALSE(doc.empty());
  ASSERT_FALSE(self.empty());
  int blocks = 0;
  for (size_t at = doc.find("```cpp\n"); at != std::string::npos;
       at = doc.find("```cpp\n", at)) {
    at += 7;
    const size_t end = doc.find("```", at);
    ASSERT_NE(end, std::string::npos);
    const std::string block = doc.substr(at, end - at);
    EXPECT_NE(self.find(block), std::string::npos)
        << "docs/testing.md has code that is not in this test:\n" << block;
    ++blocks;
    at = end + 3;
  }
  EXPECT_GE(blocks, 5);
}

}  // namespace
