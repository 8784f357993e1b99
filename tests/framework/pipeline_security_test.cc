// What one client (or principal) must not be able to do to another through
// the pipeline, and the bounds on what it keeps: acknowledgements that
// retire a client's future requests (the watermark hijack), acks of requests
// that did not pass dedup, unbounded pending acks, watermark keys that live
// forever, unbounded values and stored replies, and ids shared across
// principals. Every test runs through Execute() and ExecuteAsync().
#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "framework/fence.h"
#include "framework/pipeline.h"
#include "gtest/gtest.h"
#include "tests/framework/pipeline_test_util.h"

namespace baton::framework {
namespace {

using baton::testing::Fault;
using testing_util::MemoryStore;
using testing_util::CounterHandler;
using testing_util::LaggingStore;
using testing_util::MakeRequest;
using testing_util::ReadInt;
using testing_util::Started;

const std::string kFw = std::string(storage::kReservedPrefix) + "fw/";

Request As(std::string principal, std::string body = "+1") {
  Request r = MakeRequest(std::move(body));
  r.principal = std::move(principal);
  return r;
}

class PipelineSecurityTest : public testing_util::SyncAndAsyncTest {
 protected:
  MemoryStore store_;
  SimulatedClock clock_;
};

// --- Acknowledgements -------------------------------------------------------

TEST_P(PipelineSecurityTest, AckAtOrAboveItsOwnSeqDoesNotRetireTheClient) {
  RequestPipeline p(store_, clock_);
  CounterHandler h;
  for (uint64_t seq = 1; seq <= 3; ++seq) {
    ASSERT_TRUE(Run(p, RequestId::ClientSeq("victim", seq), MakeRequest("+1"), h).ok());
  }
  // Baton-Client-Id: victim, Baton-Seq: 999, Baton-Ack: 2^64-1 (and an ack
  // equal to its seq).
  ASSERT_TRUE(Run(p,
                  RequestId::ClientSeq("victim", 999,
                                       std::numeric_limits<uint64_t>::max()),
                  MakeRequest("+1"), h)
                  .ok());
  ASSERT_TRUE(Run(p, RequestId::ClientSeq("victim", 1000, 1000),
                  MakeRequest("+1"), h)
                  .ok());
  EXPECT_EQ(p.Stats().acks_refused, 2u);
  auto n = p.CollectGarbage();
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 0u);
  EXPECT_EQ(store_.CountWithPrefix(kFw + "w/"), 0u);
  // The victim carries on: its next request runs, its retries replay.
  auto next = Run(p, RequestId::ClientSeq("victim", 4), MakeRequest("+1"), h);
  ASSERT_TRUE(next.ok()) << next.status() << " (the victim was retired)";
  EXPECT_FALSE(next->replayed);
  auto retry = Run(p, RequestId::ClientSeq("victim", 2), MakeRequest("+1"), h);
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_TRUE(retry->replayed);
}

TEST_P(PipelineSecurityTest, AckOfARequestThatDidNotPassDedupIsNotNoted) {
  RequestPipeline p(store_, clock_);
  FenceTable fences;
  fences.Held(1, "10.0.0.1", 5);  // establishing: writes there are refused
  p.SetFenceTable(&fences);
  CounterHandler h;
  for (uint64_t seq = 1; seq <= 3; ++seq) {
    ASSERT_TRUE(Run(p, RequestId::ClientSeq("c", seq), MakeRequest("+1"), h).ok());
  }
  // Each carries acked = 2, and each ends without a reply.
  // Reused id (422).
  auto reused = Run(p, RequestId::ClientSeq("c", 3, 2), MakeRequest("other"), h);
  EXPECT_EQ(GetPipelineError(reused.status()), PipelineError::kKeyReused);
  // Handler error.
  auto failing = MakeHandler(
      [](const Request&, Transaction&) -> absl::StatusOr<Reply> {
        return absl::InvalidArgumentError("no");
      });
  EXPECT_FALSE(Run(p, RequestId::ClientSeq("c", 4, 2), MakeRequest("+1"), *failing).ok());
  // Refused by the fence.
  Request fenced = MakeRequest("+1");
  fenced.local_address = "10.0.0.1";
  auto refused = Run(p, RequestId::ClientSeq("c", 5, 2), fenced, h);
  EXPECT_EQ(GetPipelineError(refused.status()), PipelineError::kFenceNotReady);
  // Conflicted max_attempts times.
  PipelineOptions o;
  o.max_attempts = 2;
  RequestPipeline q(store_, clock_, o);
  store_.SetBeforeCommit([&] { store_.ForcePut("n", "100"); });
  auto conflicted = Run(q, RequestId::ClientSeq("c", 6, 2), MakeRequest("+1"), h);
  store_.SetBeforeCommit(nullptr);
  EXPECT_EQ(conflicted.status().code(), absl::StatusCode::kAborted);
  // Invalid (principal too long).
  auto invalid = Run(p, RequestId::ClientSeq("c", 7, 2),
                     As(std::string(RequestPipeline::kMaxPrincipalBytes + 1, 'p')), h);
  EXPECT_EQ(invalid.status().code(), absl::StatusCode::kInvalidArgument);

  for (RequestPipeline* pipeline : {&p, &q}) {
    auto n = pipeline->CollectGarbage();
    ASSERT_TRUE(n.ok()) << n.status();
    EXPECT_EQ(*n, 0u) << "an ack of a request that did not pass dedup was used";
  }
  auto one = Run(p, RequestId::ClientSeq("c", 1), MakeRequest("+1"), h);
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_TRUE(one->replayed);

  // A replay of its own record passes dedup: its ack counts.
  auto replay = Run(p, RequestId::ClientSeq("c", 3, 2), MakeRequest("+1"), h);
  ASSERT_TRUE(replay.ok()) << replay.status();
  EXPECT_TRUE(replay->replayed);
  auto n = p.CollectGarbage();
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 2u);
  auto gone = Run(p, RequestId::ClientSeq("c", 1), MakeRequest("+1"), h);
  EXPECT_EQ(GetPipelineError(gone.status()), PipelineError::kAlreadyAcknowledged);
}

TEST_P(PipelineSecurityTest, PendingAcksAreBounded) {
  RequestPipeline p(store_, clock_);
  // Read-only and without reads: no store work, only the ack to note.
  auto noop = MakeHandler([](const Request&, Transaction&) -> absl::StatusOr<Reply> {
    return Reply::Text(absl::StatusCode::kOk, "");
  });
  constexpr size_t kExtra = 5;
  for (size_t i = 0; i < RequestPipeline::kMaxPendingAcks + kExtra; ++i) {
    ASSERT_TRUE(Run(p, RequestId::ClientSeq(absl::StrCat("c", i), 2, 1),
                    MakeRequest(""), *noop)
                    .ok());
  }
  EXPECT_EQ(p.Stats().pending_acks_dropped, kExtra);
  // A client already waiting still moves its ack up.
  ASSERT_TRUE(Run(p, RequestId::ClientSeq("c0", 5, 4), MakeRequest(""), *noop).ok());
  EXPECT_EQ(p.Stats().pending_acks_dropped, kExtra);
}

// --- Watermark expiry ---------------------------------------------------------

TEST_P(PipelineSecurityTest, WatermarksExpireWithTheRetention) {
  PipelineOptions o;
  o.retention = absl::Hours(24);
  o.gc_batch = 2;  // Several batches.
  RequestPipeline p(store_, clock_, o);
  CounterHandler h;
  auto run = [&](const RequestId& id) { return Run(p, id, MakeRequest("+1"), h); };
  // Runs (client, seq) with ack `acked`, then a GC pass persists the ack.
  auto acknowledge = [&](const std::string& client, uint64_t seq,
                         uint64_t acked) {
    ASSERT_TRUE(run(RequestId::ClientSeq(client, seq, acked)).ok());
    ASSERT_TRUE(p.CollectGarbage().ok());
  };
  // t = 0: "old" and "renewed" acknowledge seq 1.
  acknowledge("old", 2, 1);
  acknowledge("renewed", 2, 1);
  EXPECT_EQ(store_.CountWithPrefix(kFw + "w/"), 2u);
  // t = 20 h: "renewed" acknowledges again (its watermark is touched).
  clock_.Advance(absl::Hours(20));
  acknowledge("renewed", 3, 2);
  ASSERT_TRUE(p.CollectGarbage().ok());
  EXPECT_EQ(store_.CountWithPrefix(kFw + "w/"), 2u);
  // t = 25 h: only "old" was untouched for longer than the retention.
  clock_.Advance(absl::Hours(5));
  ASSERT_TRUE(p.CollectGarbage().ok());
  EXPECT_EQ(p.Stats().watermarks_expired, 1u);
  EXPECT_FALSE(store_.Get(kFw + "w/old")->present());
  EXPECT_TRUE(store_.Get(kFw + "w/renewed")->present());
  // t = 45 h: everything is gone, index entries included.
  clock_.Advance(absl::Hours(20));
  ASSERT_TRUE(p.CollectGarbage().ok());
  EXPECT_EQ(p.Stats().watermarks_expired, 2u);
  EXPECT_EQ(store_.CountWithPrefix(kFw), 0u) << "framework keys left behind";
  // The clients carry on.
  auto next = run(RequestId::ClientSeq("old", 3));
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_FALSE(next->replayed);
}

TEST_P(PipelineSecurityTest, ManyClientsLeaveNoKeysAfterTheRetention) {
  PipelineOptions o;
  o.retention = absl::Hours(1);
  RequestPipeline p(store_, clock_, o);
  CounterHandler h;
  for (int i = 0; i < 300; ++i) {
    const std::string c = absl::StrCat("client-", i);
    ASSERT_TRUE(Run(p, RequestId::ClientSeq(c, 1), MakeRequest("+1"), h).ok());
    ASSERT_TRUE(Run(p, RequestId::ClientSeq(c, 2, 1), MakeRequest("+1"), h).ok());
  }
  ASSERT_TRUE(p.CollectGarbage().ok());
  EXPECT_EQ(store_.CountWithPrefix(kFw + "w/"), 300u);
  clock_.Advance(absl::Hours(2));
  ASSERT_TRUE(p.CollectGarbage().ok());
  EXPECT_EQ(store_.CountWithPrefix(kFw), 0u);
  EXPECT_EQ(p.Stats().watermarks_expired, 300u);
}

TEST_P(PipelineSecurityTest, AnExpiredWatermarkCostsOneRevalidation) {
  // On a store with cheap stale reads the pipeline remembers each client's
  // watermark version; once GC deleted the watermark, the first commit on
  // the remembered version fails, and the latest read must replace it, so
  // later requests of the client skip the lookup again at no extra cost.
  LaggingStore lagging(store_);
  PipelineOptions o;
  o.retention = absl::Hours(1);
  RequestPipeline p(lagging, clock_, o);
  CounterHandler h;
  ASSERT_TRUE(Run(p, RequestId::ClientSeq("c", 1), MakeRequest("+1"), h).ok());
  ASSERT_TRUE(Run(p, RequestId::ClientSeq("c", 2, 1), MakeRequest("+1"), h).ok());
  ASSERT_TRUE(p.CollectGarbage().ok());
  ASSERT_TRUE(Run(p, RequestId::ClientSeq("c", 3), MakeRequest("+1"), h).ok());
  clock_.Advance(absl::Hours(2));
  ASSERT_TRUE(p.CollectGarbage().ok());
  ASSERT_EQ(p.Stats().watermarks_expired, 1u);
  const uint64_t before = p.Stats().revalidations;
  for (uint64_t seq = 4; seq <= 10; ++seq) {
    ASSERT_TRUE(Run(p, RequestId::ClientSeq("c", seq), MakeRequest("+1"), h).ok());
  }
  EXPECT_EQ(p.Stats().revalidations, before + 1);
  EXPECT_EQ(ReadInt(store_, "n"), 10);
}

// --- Values and replies -------------------------------------------------------

TEST_P(PipelineSecurityTest, ValuesOverTheLimitAreRefusedAndNothingCommits) {
  PipelineOptions o;
  o.max_value_bytes = 100;
  RequestPipeline p(store_, clock_, o);
  auto writes = [](size_t bytes, bool ignore_error) {
    return MakeHandler([=](const Request&, Transaction& txn)
                           -> absl::StatusOr<Reply> {
      if (absl::Status s = txn.Put("other", "1"); !s.ok()) return s;
      absl::Status s = txn.Put("v", std::string(bytes, 'x'));
      if (!s.ok() && !ignore_error) return s;
      return Reply::Text(absl::StatusCode::kOk, "stored");
    });
  };
  for (bool ignore : {false, true}) {
    for (const RequestId& id : {RequestId::None(), RequestId::Key("k")}) {
      auto r = Run(p, id, MakeRequest(""), *writes(101, ignore));
      ASSERT_FALSE(r.ok());
      EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
      EXPECT_TRUE(absl::StrContains(r.status().message(), "max_value_bytes"))
          << r.status();
    }
  }
  EXPECT_EQ(p.Stats().values_refused, 4u);
  EXPECT_FALSE(store_.Get("v")->present());
  EXPECT_FALSE(store_.Get("other")->present()) << "a refused request committed";
  EXPECT_EQ(store_.CountWithPrefix(kFw), 0u);
  auto fits = Run(p, RequestId::Key("k"), MakeRequest(""), *writes(100, false));
  ASSERT_TRUE(fits.ok()) << fits.status();
  EXPECT_EQ(store_.Get("v")->value.size(), 100u);
}

TEST_P(PipelineSecurityTest, DefaultLimitsAreOneMebibyte) {
  RequestPipeline p(store_, clock_);
  auto put = [](size_t value_bytes, size_t reply_bytes) {
    return MakeHandler([=](const Request&, Transaction& txn)
                           -> absl::StatusOr<Reply> {
      if (absl::Status s = txn.Put("v", std::string(value_bytes, 'x')); !s.ok()) {
        return s;
      }
      Reply r = Reply::Text(absl::StatusCode::kOk, "");
      r.body.assign(reply_bytes - r.content_type.size(), 'y');
      return r;
    });
  };
  constexpr size_t kMiB = size_t{1} << 20;
  EXPECT_TRUE(Run(p, RequestId::Key("a"), MakeRequest(""), *put(kMiB, kMiB)).ok());
  auto value = Run(p, RequestId::Key("b"), MakeRequest(""), *put(kMiB + 1, 100));
  EXPECT_EQ(value.status().code(), absl::StatusCode::kResourceExhausted);
  auto reply = Run(p, RequestId::Key("c"), MakeRequest(""), *put(1, kMiB + 1));
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kResourceExhausted);
}

TEST_P(PipelineSecurityTest, StoredRepliesOverTheLimitAreRefusedAndNothingCommits) {
  PipelineOptions o;
  o.max_reply_bytes = 100;
  RequestPipeline p(store_, clock_, o);
  auto replies = [](size_t body_bytes) {
    return MakeHandler([=](const Request&, Transaction& txn)
                           -> absl::StatusOr<Reply> {
      if (absl::Status s = txn.Put("n", "1"); !s.ok()) return s;
      return Reply::Json(absl::StatusCode::kOk, std::string(body_bytes, 'r'));
    });
  };
  const size_t fits = 100 - std::string("application/json").size();
  for (const RequestId& id :
       {RequestId::Key("k"), RequestId::ClientSeq("c", 1)}) {
    auto r = Run(p, id, MakeRequest(""), *replies(fits + 1));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
    EXPECT_TRUE(absl::StrContains(r.status().message(), "max_reply_bytes"))
        << r.status();
  }
  EXPECT_EQ(p.Stats().replies_refused, 2u);
  EXPECT_FALSE(store_.Get("n")->present()) << "a refused request committed";
  EXPECT_EQ(store_.CountWithPrefix(kFw), 0u);
  auto ok = Run(p, RequestId::Key("k"), MakeRequest(""), *replies(fits));
  ASSERT_TRUE(ok.ok()) << ok.status();
  auto replay = Run(p, RequestId::Key("k"), MakeRequest(""), *replies(fits));
  ASSERT_TRUE(replay.ok());
  EXPECT_TRUE(replay->replayed);
  EXPECT_EQ(replay->reply.body.size(), fits);
}

// --- Principals -------------------------------------------------------------

TEST_P(PipelineSecurityTest, SameIdUnderTwoPrincipalsRunsTwiceWithoutCrossReplay) {
  RequestPipeline p(store_, clock_);
  CounterHandler h;
  for (const RequestId& id :
       {RequestId::Key("k"), RequestId::ClientSeq("c", 1)}) {
    const int64_t n0 = ReadInt(store_, "n");
    auto alice = Run(p, id, As("alice"), h);
    auto bob = Run(p, id, As("bob"), h);
    auto anonymous = Run(p, id, As(""), h);
    for (const auto* r : {&alice, &bob, &anonymous}) {
      ASSERT_TRUE(r->ok()) << r->status();
      EXPECT_FALSE((*r)->replayed) << "a reply crossed principals";
    }
    EXPECT_NE(alice->reply, bob->reply);
    EXPECT_EQ(ReadInt(store_, "n"), n0 + 3);
    auto alice_again = Run(p, id, As("alice"), h);
    auto bob_again = Run(p, id, As("bob"), h);
    ASSERT_TRUE(alice_again.ok() && bob_again.ok());
    EXPECT_TRUE(alice_again->replayed && bob_again->replayed);
    EXPECT_EQ(alice_again->reply, alice->reply);
    EXPECT_EQ(bob_again->reply, bob->reply);
    EXPECT_EQ(ReadInt(store_, "n"), n0 + 3);
  }
}

TEST_P(PipelineSecurityTest, PrincipalsThatEscapeAlikeStayApart) {
  RequestPipeline p(store_, clock_);
  CounterHandler h;
  const std::vector<std::string> principals = {
      "x", std::string("x\0", 2), "x\x01", "x\x01\x01", "x\x01\x02",
      std::string("x\x01\x01\0", 4), std::string("\0", 1), "\x01", "a/x",
      "s/c", std::string(RequestPipeline::kMaxPrincipalBytes, '\0')};
  std::set<std::string> replies;
  for (const std::string& who : principals) {
    auto r = Run(p, RequestId::Key("k"), As(who), h);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_FALSE(r->replayed);
    replies.insert(r->reply.body);
  }
  EXPECT_EQ(replies.size(), principals.size());
  EXPECT_EQ(ReadInt(store_, "n"), static_cast<int64_t>(principals.size()));
  for (const std::string& who : principals) {
    auto r = Run(p, RequestId::Key("k"), As(who), h);
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(r->replayed);
  }
  auto too_long = Run(p, RequestId::Key("k"),
                      As(std::string(RequestPipeline::kMaxPrincipalBytes + 1, 'p')), h);
  EXPECT_EQ(too_long.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadInt(store_, "n"), static_cast<int64_t>(principals.size()));
}

TEST_P(PipelineSecurityTest, AckUnderOnePrincipalDoesNotMoveAnothersWatermark) {
  RequestPipeline p(store_, clock_);
  CounterHandler h;
  for (const char* who : {"alice", "bob"}) {
    for (uint64_t seq = 1; seq <= 2; ++seq) {
      ASSERT_TRUE(Run(p, RequestId::ClientSeq("c", seq), As(who), h).ok());
    }
  }
  ASSERT_TRUE(Run(p, RequestId::ClientSeq("c", 3, 2), As("alice"), h).ok());
  auto n = p.CollectGarbage();
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 2u);  // alice's 1 and 2
  auto bob = Run(p, RequestId::ClientSeq("c", 1), As("bob"), h);
  ASSERT_TRUE(bob.ok()) << bob.status() << " (alice's ack moved bob's watermark)";
  EXPECT_TRUE(bob->replayed);
  auto anonymous = Run(p, RequestId::ClientSeq("c", 1), As(""), h);
  ASSERT_TRUE(anonymous.ok()) << anonymous.status();
  EXPECT_FALSE(anonymous->replayed);
  auto alice = Run(p, RequestId::ClientSeq("c", 1), As("alice"), h);
  EXPECT_EQ(GetPipelineError(alice.status()), PipelineError::kAlreadyAcknowledged);
}

TEST_P(PipelineSecurityTest, UnauthenticatedRequestsKeepTheKeyLayout) {
  RequestPipeline p(store_, clock_);
  CounterHandler h;
  ASSERT_TRUE(Run(p, RequestId::Key("k1"), As(""), h).ok());
  ASSERT_TRUE(Run(p, RequestId::ClientSeq("c", 1), As(""), h).ok());
  ASSERT_TRUE(Run(p, RequestId::ClientSeq("c", 2, 1), As(""), h).ok());
  ASSERT_TRUE(p.CollectGarbage().ok());
  EXPECT_TRUE(store_.Get(kFw + "c/k/k1")->present());
  EXPECT_TRUE(store_.Get(kFw + "c/s/c" + std::string("\0", 1) +
                         "0000000000000002")
                  ->present());
  EXPECT_EQ(store_.Get(kFw + "w/c")->value, "1");
  // A principal's keys live apart from them.
  ASSERT_TRUE(Run(p, RequestId::Key("k1"), As("alice"), h).ok());
  EXPECT_EQ(store_.CountWithPrefix(kFw + "c/a/alice" + std::string("\0", 1)), 1u);
}

TEST_P(PipelineSecurityTest, RunningAttemptOfOnePrincipalDoesNotHoldAnother) {
  RequestPipeline p(store_, clock_);
  absl::Notification entered, release;
  CounterHandler slow;
  slow.delay = [&] {
    // Bob's commit changes "n" under alice's run: it runs again.
    if (!entered.HasBeenNotified()) entered.Notify();
    release.WaitForNotification();
  };
  Started alice(/*async=*/false, p, RequestId::Key("k"), As("alice"), slow);
  entered.WaitForNotification();
  CounterHandler h;
  Started bob(GetParam(), p, RequestId::Key("k"), As("bob"), h);
  const bool answered = bob.WaitFor(absl::Seconds(10));
  release.Notify();
  ASSERT_TRUE(answered) << "bob waited for alice's attempt";
  ASSERT_TRUE(bob.result().ok()) << bob.result().status();
  EXPECT_FALSE(bob.result()->replayed);
  EXPECT_EQ(p.Stats().waited, 0u) << "bob waited for alice's attempt";
  ASSERT_TRUE(alice.result().ok());
  EXPECT_FALSE(alice.result()->replayed);
}

INSTANTIATE_TEST_SUITE_P(SyncAndAsync, PipelineSecurityTest,
                         ::testing::Values(false, true),
                         testing_util::SyncOrAsyncName);

}  // namespace
}  // namespace baton::framework
