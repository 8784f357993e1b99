// framework/testing/harness.h: the test kit runs requests through the real
// pipeline and reports what a handler author must know -- same reply bytes
// for every retry and duplicate, how often the handler ran, how many runs
// were committed. Tested with a bank whose double execution is visible
// (balances, a total that must stay constant, a random receipt number in
// every reply), in both execution modes, and with cases where the kit must
// report a double execution (no request id; a retry after the retention).
#include "framework/testing/harness.h"

#include <random>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "framework/testing/assertions.h"
#include "gtest/gtest.h"

namespace baton::testing {
namespace {

using framework::Reply;
using framework::Request;
using framework::Transaction;

absl::StatusOr<int64_t> Balance(Transaction& txn, std::string_view account) {
  auto v = txn.Get(absl::StrCat("acct/", std::string(account)));
  if (!v.ok()) return v.status();
  int64_t n = 0;
  if (v->present() && !absl::SimpleAtoi(v->value, &n)) {
    return absl::DataLossError("bad balance");
  }
  return n;
}

// A random receipt number: a re-execution would show in the reply bytes.
std::string Receipt() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return absl::StrCat(rng());
}

// POST /accounts/{id}/deposit, body: amount.
absl::StatusOr<Reply> Deposit(const Request& req, Transaction& txn) {
  int64_t amount = 0;
  if (!absl::SimpleAtoi(req.body, &amount) || amount <= 0) {
    return Reply::Json(absl::StatusCode::kInvalidArgument, R"({"error":"amount"})");
  }
  auto balance = Balance(txn, req.Param("id"));
  if (!balance.ok()) return balance.status();
  const int64_t now = *balance + amount;
  if (auto s = txn.Put(absl::StrCat("acct/", std::string(req.Param("id"))), absl::StrCat(now));
      !s.ok()) {
    return s;
  }
  return Reply::Json(absl::StatusCode::kOk,
                     absl::StrCat(R"({"balance":)", now, R"(,"receipt":)", Receipt(), "}"));
}

// POST /transfers, body: "<from> <to> <amount>".
absl::StatusOr<Reply> Transfer(const Request& req, Transaction& txn) {
  std::vector<std::string> f = absl::StrSplit(req.body, ' ');
  int64_t amount = 0;
  if (f.size() != 3 || !absl::SimpleAtoi(f[2], &amount) || amount <= 0) {
    return Reply::Json(absl::StatusCode::kInvalidArgument, R"({"error":"body"})");
  }
  auto from = Balance(txn, f[0]);
  if (!from.ok()) return from.status();
  auto to = Balance(txn, f[1]);
  if (!to.ok()) return to.status();
  if (*from < amount) {
    return Reply::Json(absl::StatusCode::kFailedPrecondition, R"({"error":"funds"})");
  }
  if (auto s = txn.Put(absl::StrCat("acct/", f[0]), absl::StrCat(*from - amount)); !s.ok()) {
    return s;
  }
  if (auto s = txn.Put(absl::StrCat("acct/", f[1]), absl::StrCat(*to + amount)); !s.ok()) {
    return s;
  }
  return Reply::Json(absl::StatusCode::kOk, absl::StrCat(R"({"receipt":)", Receipt(), "}"));
}

// GET /accounts/{id}: read-only.
absl::StatusOr<Reply> Show(const Request& req, Transaction& txn) {
  auto balance = Balance(txn, req.Param("id"));
  if (!balance.ok()) return balance.status();
  return Reply::Json(absl::StatusCode::kOk, absl::StrCat(R"({"balance":)", *balance, "}"));
}

struct Mode {
  const char* name;
  HarnessOptions::Execution execution;
  bool etcd_like_reads;
};

class HarnessTest : public ::testing::TestWithParam<Mode> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(h_.Route("POST", "/accounts/{id}/deposit", Deposit).ok());
    ASSERT_TRUE(h_.Route("POST", "/transfers", Transfer).ok());
    ASSERT_TRUE(h_.Route("GET", "/accounts/{id}", Show).ok());
    ASSERT_TRUE(h_.Put("acct/a", "100").ok());
    ASSERT_TRUE(h_.Put("acct/b", "100").ok());
  }

  static HarnessOptions Options() {
    HarnessOptions o;
    o.execution = GetParam().execution;
    o.etcd_like_reads = GetParam().etcd_like_reads;
    return o;
  }

  int64_t BalanceOf(const std::string& account) {
    int64_t n = 0;
    std::optional<std::string> v = h_.Value("acct/" + account);
    EXPECT_TRUE(v && absl::SimpleAtoi(*v, &n)) << account;
    return n;
  }

  Harness h_{Options()};
};

INSTANTIATE_TEST_SUITE_P(
    Modes, HarnessTest,
    ::testing::Values(Mode{"Inline", HarnessOptions::Execution::kInline, false},
                      Mode{"Blocking", HarnessOptions::Execution::kBlocking, false},
                      Mode{"EtcdLikeReads", HarnessOptions::Execution::kBlocking, true}),
    [](const auto& info) { return std::string(info.param.name); });

TEST_P(HarnessTest, SendBuildsTheRequestTheHttpFrontEndWould) {
  std::string seen_operation, seen_param, seen_header;
  ASSERT_TRUE(h_.Route("PUT", "/echo/{name}",
                       [&](const Request& r, Transaction&) -> absl::StatusOr<Reply> {
                         seen_operation = r.operation;
                         seen_param = std::string(r.Param("name"));
                         seen_header = r.metadata.at("x-trace");
                         return Reply::Text(absl::StatusCode::kOk, "hi");
                       })
                  .ok());
  Report r = h_.Send(Put("/echo/a%20b?x=1").Header("X-Trace", "t1"));
  ASSERT_TRUE(r.first().ok()) << r;
  EXPECT_EQ(r.first().http_status, 200);
  EXPECT_EQ(r.first().body(), "hi");
  EXPECT_EQ(seen_operation, "PUT /echo/{name}");
  EXPECT_EQ(seen_param, "a b");
  EXPECT_EQ(seen_header, "t1");
  EXPECT_EQ(r.handler_runs, 1);
  EXPECT_EQ(r.committed_runs, 0) << "read-only: nothing committed";

  // Refused before the pipeline, as the front end refuses them.
  Report none = h_.Send(Get("/nowhere"));
  EXPECT_EQ(none.first().http_status, 404);
  EXPECT_EQ(none.first().error_code, "not_found");
  Report bad = h_.Send(Post("/transfers", "a b 1").Header("Baton-Seq", "1"));
  EXPECT_EQ(bad.first().http_status, 400);
  EXPECT_EQ(bad.first().error_code, "bad_request_id");
  EXPECT_EQ(bad.handler_runs, 0);
}

TEST_P(HarnessTest, RetriesGetTheSameBytesAndRunNothingTwice) {
  Report r = h_.Retry(Post("/accounts/a/deposit", "10").Key("d-1"), RetryOptions().Times(3));
  EXPECT_TRUE(ExactlyOnce(r));
  EXPECT_FALSE(r.first().replayed());
  EXPECT_EQ(r.replays(), 3);
  EXPECT_EQ(r.handler_runs, 1);
  EXPECT_EQ(BalanceOf("a"), 110);
}

TEST_P(HarnessTest, LostReplyAndServerRestartStillReplay) {
  Report r = h_.LoseReplyThenRetry(Post("/accounts/a/deposit", "5").ClientSeq("c1", 1),
                                   RetryOptions().Times(2).Restart());
  EXPECT_TRUE(ExactlyOnce(r));
  EXPECT_TRUE(r.first().reply_lost);
  EXPECT_EQ(r.replays(), 2);
  EXPECT_EQ(BalanceOf("a"), 105);
}

TEST_P(HarnessTest, DuplicatesOnSeparateServersRaceAndOneCommits) {
  Report r = h_.SendConcurrently(Post("/accounts/a/deposit", "7").Key("d-race"), 6);
  EXPECT_TRUE(ExactlyOnce(r));
  EXPECT_TRUE(r.overlapped) << "every copy ran its handler before any committed";
  // Each copy read the old balance and lost on it: with latest reads the
  // five losers run again (then find the winner's record); after a stale
  // lookup a failed condition reads the record first.
  EXPECT_EQ(r.handler_runs, GetParam().etcd_like_reads ? 6 : 11) << r;
  EXPECT_EQ(r.replays(), 5);
  EXPECT_EQ(BalanceOf("a"), 107);
}

// A handler that refuses once its own write is there (a seat, a unique
// name): the duplicates that lose the race must not answer that refusal --
// their request was executed by the winner, and its stored reply is theirs.
// (Before the fix the losers' re-runs, seeing the winner's write, answered
// 409 without checking for the record.)
TEST_P(HarnessTest, DuplicatesThatLoseTheRaceReplayInsteadOfRefusing) {
  ASSERT_TRUE(h_.Route("POST", "/claims/{id}",
                       [](const baton::framework::Request& req,
                          baton::framework::Transaction& txn)
                           -> absl::StatusOr<baton::framework::Reply> {
                         const std::string key =
                             "claim/" + std::string(req.Param("id"));
                         auto v = txn.Get(key);
                         if (!v.ok()) return v.status();
                         if (v->present()) {
                           return baton::framework::Reply::Json(
                               absl::StatusCode::kAlreadyExists,
                               "{\"error\":\"taken\"}");
                         }
                         if (auto s = txn.Put(key, req.body); !s.ok()) return s;
                         return baton::framework::Reply::Json(
                             absl::StatusCode::kOk, "{\"claimed\":true}");
                       })
                  .ok());
  Report r = h_.SendConcurrently(Post("/claims/c1", "x").Key("claim-race"), 6);
  EXPECT_TRUE(ExactlyOnce(r)) << r;
  EXPECT_EQ(r.replays(), 5) << r;
  // A different request for the same claim is refused, as it should be.
  Report other = h_.Send(Post("/claims/c1", "y").Key("claim-other"));
  EXPECT_EQ(other.last().http_status, 409) << other;
}

TEST_P(HarnessTest, DuplicatesOnOneServerRunTheHandlerOnce) {
  Report r = h_.SendConcurrently(Post("/accounts/b/deposit", "3").Key("d-same"), 6,
                                 /*same_server=*/true);
  EXPECT_TRUE(ExactlyOnce(r));
  EXPECT_EQ(r.handler_runs, 1) << r;
  EXPECT_EQ(BalanceOf("b"), 103);
}

TEST_P(HarnessTest, ConflictsReRunTheHandlerAndCommitOnce) {
  Report r = h_.SendWithConflicts(Post("/transfers", "a b 30").Key("t-1"), 3);
  EXPECT_TRUE(ExactlyOnce(r));
  EXPECT_EQ(r.handler_runs, 4);
  EXPECT_EQ(BalanceOf("a"), 70);
  EXPECT_EQ(BalanceOf("b"), 130);
}

TEST_P(HarnessTest, UnknownOutcomesAreResolvedWithoutASecondCommit) {
  Report applied = h_.SendWithFaults(Post("/transfers", "a b 1").Key("t-u1"),
                                     {Fault::UnknownApplied()});
  EXPECT_TRUE(ExactlyOnce(applied));
  EXPECT_EQ(applied.handler_runs, 1) << "the record answers: no re-run";

  Report lost = h_.SendWithFaults(Post("/transfers", "a b 1").Key("t-u2"),
                                  {Fault::UnknownNotApplied()});
  EXPECT_TRUE(ExactlyOnce(lost));
  EXPECT_EQ(lost.handler_runs, 2) << "no record: the handler runs again";

  EXPECT_EQ(BalanceOf("a") + BalanceOf("b"), 200);
  EXPECT_EQ(BalanceOf("a"), 98);
}

TEST_P(HarnessTest, RefusedCommitIsRetriedByTheClient) {
  Report r = h_.SendWithFaults(Post("/accounts/a/deposit", "1").Key("d-503"),
                               {Fault::Unavailable(), Fault::Unavailable()});
  ASSERT_EQ(r.attempts.size(), 3u) << r;
  EXPECT_EQ(r.attempts[0].http_status, 503);
  EXPECT_EQ(r.attempts[0].error_code, "unavailable");
  EXPECT_TRUE(r.last().ok());
  EXPECT_FALSE(r.ExactlyOnce()) << "two attempts failed";
  EXPECT_TRUE(AtMostOnce(r));
  EXPECT_EQ(r.committed_runs, 1);
  EXPECT_EQ(BalanceOf("a"), 101);
}

TEST_P(HarnessTest, ReadOnlyRequestsCommitNothing) {
  Report r = h_.Retry(Get("/accounts/a").Key("read-1"), RetryOptions().Times(2));
  EXPECT_TRUE(SameReplies(r));
  EXPECT_EQ(r.committed_runs, 0);
  EXPECT_EQ(r.handler_runs, 3) << "read-only requests keep no record: each runs";
  EXPECT_EQ(r.first().body(), R"({"balance":100})");
}

TEST_P(HarnessTest, HandlerExceptionIsA500AndCommitsNothing) {
  ASSERT_TRUE(h_.Route("POST", "/throw",
                       [](const Request&, Transaction& txn) -> absl::StatusOr<Reply> {
                         (void)txn.Put("acct/a", "0");
                         throw std::runtime_error("boom");
                       })
                  .ok());
  Report r = h_.Send(Post("/throw").Key("x-1"));
  EXPECT_EQ(r.first().http_status, 500);
  EXPECT_EQ(r.committed_runs, 0);
  EXPECT_EQ(BalanceOf("a"), 100);
}

TEST_P(HarnessTest, DirectCallsSkipRouting) {
  Request req;
  req.operation = "POST /accounts/{id}/deposit";
  req.path = "/accounts/b/deposit";
  req.params = {{"id", "b"}};
  req.body = "2";
  Report r = h_.Retry(Call::Direct(framework::MakeHandler(Deposit), req).Key("direct"),
                      RetryOptions());
  EXPECT_TRUE(ExactlyOnce(r));
  EXPECT_EQ(BalanceOf("b"), 102);
}

TEST_P(HarnessTest, ASecondScenarioWithTheSameIdIsAllReplays) {
  const Call call = Post("/accounts/a/deposit", "1").Key("d-twice");
  ASSERT_TRUE(ExactlyOnce(h_.Send(call)));
  Report again = h_.SendConcurrently(call, 3);
  EXPECT_EQ(again.replays(), 3);
  EXPECT_EQ(again.committed_runs, 0);
  ::testing::AssertionResult result = ExactlyOnce(again);
  EXPECT_FALSE(result);
  EXPECT_NE(std::string(result.message()).find("use a fresh id"), std::string::npos)
      << result.message();
  EXPECT_EQ(BalanceOf("a"), 101);
}

// The kit must show a double execution when there is one.
TEST_P(HarnessTest, ReportsTheDoubleExecutionOfARequestWithoutId) {
  Report r = h_.Retry(Post("/accounts/a/deposit", "10"));
  EXPECT_FALSE(r.AtMostOnce());
  EXPECT_FALSE(AtMostOnce(r));
  EXPECT_EQ(r.committed_runs, 2);
  EXPECT_FALSE(r.SameReplies());
  EXPECT_FALSE(ExactlyOnce(r));
  EXPECT_EQ(BalanceOf("a"), 120);
}

TEST_P(HarnessTest, ReportsTheReExecutionOfARetryAfterTheRetention) {
  // Past the default retention (24 h), after a GC pass.
  Report r = h_.Retry(Post("/accounts/a/deposit", "10").Key("d-old"),
                      RetryOptions().Wait(absl::Hours(25)).CollectGarbage());
  EXPECT_EQ(r.committed_runs, 2) << "the key was forgotten: executed as new";
  EXPECT_FALSE(r.ExactlyOnce());
  EXPECT_EQ(BalanceOf("a"), 120);
}

TEST_P(HarnessTest, AcknowledgedAndCollectedRequestIsRefusedNotReRun) {
  ASSERT_TRUE(ExactlyOnce(h_.Send(Post("/accounts/a/deposit", "1").ClientSeq("c7", 1))));
  // The client's next request acknowledges seq 1; GC collects its record.
  ASSERT_TRUE(h_.Send(Post("/accounts/a/deposit", "1").ClientSeq("c7", 2, 1)).first().ok());
  absl::StatusOr<size_t> collected = h_.CollectGarbage();
  ASSERT_TRUE(collected.ok()) << collected.status();
  EXPECT_EQ(*collected, 1u);
  Report late = h_.Send(Post("/accounts/a/deposit", "1").ClientSeq("c7", 1));
  EXPECT_EQ(late.first().http_status, 410);
  EXPECT_EQ(late.first().error_code, "request_already_acknowledged");
  EXPECT_EQ(late.committed_runs, 0);
  EXPECT_EQ(BalanceOf("a"), 102);
}

// Transfers under a seeded storm of faults, each retried until answered:
// every transfer applied once, the total constant.
TEST_P(HarnessTest, TransfersUnderRandomFaultsKeepTheTotal) {
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE(absl::StrCat("seed=", seed));
  std::mt19937 rng(seed);
  const std::vector<Fault> kinds = {Fault::UnknownApplied(), Fault::UnknownNotApplied(),
                                    Fault::Unavailable(), Fault::Conflict()};
  int64_t moved = 0;
  for (int i = 0; i < 40; ++i) {
    std::vector<Fault> faults;
    for (uint32_t n = rng() % 3; n > 0; --n) faults.push_back(kinds[rng() % kinds.size()]);
    const bool a_to_b = rng() % 2 == 0;
    const Call call = Post("/transfers", a_to_b ? "a b 1" : "b a 1")
                          .ClientSeq("bank", static_cast<uint64_t>(i + 1));
    Report r = h_.SendWithFaults(call, faults, /*retries=*/5);
    ASSERT_TRUE(r.last().ok()) << r;
    EXPECT_TRUE(AtMostOnce(r));
    EXPECT_TRUE(SameReplies(r));
    EXPECT_EQ(r.committed_runs, 1) << r;
    moved += a_to_b ? 1 : -1;
    // A late retry of the same transfer is a replay.
    Report again = h_.Send(call);
    EXPECT_TRUE(again.first().replayed()) << again;
    EXPECT_EQ(again.first().reply(), r.last().reply());
  }
  EXPECT_EQ(BalanceOf("a") + BalanceOf("b"), 200);
  EXPECT_EQ(BalanceOf("a"), 100 - moved);
}

TEST(HarnessAuthTest, TheServicesAuthenticatorRunsAsOnTheFrontEnd) {
  HarnessOptions o;
  o.authenticate = [](const Request& r) -> absl::StatusOr<std::string> {
    if (!r.principal.empty()) return r.principal;  // A client certificate.
    auto it = r.metadata.find("authorization");
    if (it == r.metadata.end()) return absl::UnauthenticatedError("who are you?");
    return it->second;
  };
  Harness h(o);
  std::string seen;
  ASSERT_TRUE(h.Route("GET", "/me",
                      [&](const Request& r, Transaction&) -> absl::StatusOr<Reply> {
                        seen = r.principal;
                        return Reply::Text(absl::StatusCode::kOk, r.principal);
                      })
                  .ok());
  Report anonymous = h.Send(Get("/me"));
  EXPECT_EQ(anonymous.first().http_status, 401);
  EXPECT_EQ(anonymous.first().error_code, "unauthenticated");
  EXPECT_EQ(anonymous.handler_runs, 0);
  EXPECT_EQ(h.Send(Get("/me").Header("Authorization", "token-1")).first().body(), "token-1");
  EXPECT_EQ(h.Send(Get("/me").Principal("CN=client")).first().body(), "CN=client");
  EXPECT_EQ(seen, "CN=client");
}

TEST(HarnessEtcdTest, StaleReplicaMissesTheRecordAndStillReplays) {
  HarnessOptions o;
  o.execution = HarnessOptions::Execution::kBlocking;
  o.etcd_like_reads = true;
  Harness h(o);
  ASSERT_TRUE(h.Route("POST", "/accounts/{id}/deposit", Deposit).ok());
  // The replica stops applying before the first attempt: the retry's
  // stale lookup cannot see the record.
  h.store().FreezeReplica();
  Report r = h.LoseReplyThenRetry(Post("/accounts/z/deposit", "4").ClientSeq("c", 1),
                                  RetryOptions().Restart());
  EXPECT_TRUE(ExactlyOnce(r));
  EXPECT_TRUE(r.last().replayed());
  EXPECT_GE(h.store().Stats().stale_reads, 1u);
  EXPECT_EQ(h.Value("acct/z"), std::optional<std::string>("4"));
}

}  // namespace
}  // namespace baton::testing
