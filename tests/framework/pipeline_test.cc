// Unit tests of the request pipeline against an in-memory store: the
// exactly-once promises (replay byte for byte, no second execution under
// concurrent retries, kUnknown resolved by reading), bounded conflict
// re-runs, read-only requests, garbage collection with an injected clock,
// and the reserved key space.
#include "framework/pipeline.h"

#include <atomic>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
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

class PipelineTest : public ::testing::Test {
 protected:
  MemoryStore store_;
  SimulatedClock clock_;
};

TEST_F(PipelineTest, ReplayIsByteForByteAndFlagged) {
  RequestPipeline p(store_, clock_);
  CounterHandler h;
  auto first = p.Execute(RequestId::Key("k1"), MakeRequest("+1"), h);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(first->replayed);
  auto again = p.Execute(RequestId::Key("k1"), MakeRequest("+1"), h);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->replayed);
  EXPECT_EQ(again->reply, first->reply);
  EXPECT_EQ(h.calls.load(), 1);
  EXPECT_EQ(ReadInt(store_, "n"), 1);

  // A different key is a different request.
  auto other = p.Execute(RequestId::Key("k2"), MakeRequest("+1"), h);
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(other->replayed);
  EXPECT_EQ(ReadInt(store_, "n"), 2);
}

TEST_F(PipelineTest, ClientSeqIdsAreDeduplicatedPerClient) {
  RequestPipeline p(store_, clock_);
  CounterHandler h;
  ASSERT_TRUE(p.Execute(RequestId::ClientSeq("a", 1), MakeRequest("x"), h).ok());
  ASSERT_TRUE(p.Execute(RequestId::ClientSeq("b", 1), MakeRequest("x"), h).ok());
  auto r = p.Execute(RequestId::ClientSeq("a", 1), MakeRequest("x"), h);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->replayed);
  EXPECT_EQ(ReadInt(store_, "n"), 2);
}

TEST_F(PipelineTest, SameKeyDifferentBodyIsRejectedAndChangesNothing) {
  RequestPipeline p(store_, clock_);
  CounterHandler h;
  ASSERT_TRUE(p.Execute(RequestId::Key("k"), MakeRequest("a"), h).ok());
  for (const Request& other :
       {MakeRequest("b"), MakeRequest("a", "/other/path")}) {
    auto r = p.Execute(RequestId::Key("k"), other, h);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(GetPipelineError(r.status()), PipelineError::kKeyReused);
  }
  EXPECT_EQ(h.calls.load(), 1);
  EXPECT_EQ(ReadInt(store_, "n"), 1);
}

TEST_F(PipelineTest, ConcurrentDuplicatesExecuteOnce) {
  RequestPipeline p1(store_, clock_);
  // A second pipeline on the same store plays a second server process: the
  // in-process wait does not cover it, the commit condition must.
  RequestPipeline p2(store_, clock_);
  CounterHandler h;
  h.delay = [] { std::this_thread::sleep_for(std::chrono::milliseconds(5)); };
  constexpr int kThreads = 16;
  std::vector<absl::StatusOr<PipelineResult>> results(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      results[i] = (i % 2 ? p1 : p2)
                       .Execute(RequestId::Key("dup"), MakeRequest("+1"), h);
    });
  }
  for (auto& t : threads) t.join();
  int fresh = 0;
  for (const auto& r : results) {
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->reply, results[0]->reply);
    fresh += !r->replayed;
  }
  EXPECT_EQ(fresh, 1);
  EXPECT_EQ(ReadInt(store_, "n"), 1);
}

TEST_F(PipelineTest, ConflictReRunsAreBounded) {
  PipelineOptions o;
  o.max_attempts = 4;
  RequestPipeline p(store_, clock_, o);
  CounterHandler h;
  // Another writer changes "n" between every read and commit.
  store_.SetBeforeCommit([&] { store_.ForcePut("n", "100"); });
  auto r = p.Execute(RequestId::Key("c"), MakeRequest("+1"), h);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(h.calls.load(), 4);
  EXPECT_EQ(p.Stats().reruns, 3u);
  // Nothing recorded: a later retry runs normally.
  store_.SetBeforeCommit(nullptr);
  auto ok = p.Execute(RequestId::Key("c"), MakeRequest("+1"), h);
  ASSERT_TRUE(ok.ok());
  EXPECT_FALSE(ok->replayed);
  EXPECT_EQ(ReadInt(store_, "n"), 101);
}

TEST_F(PipelineTest, ConflictOnceThenCommitsOnFreshState) {
  RequestPipeline p(store_, clock_);
  CounterHandler h;
  std::atomic<int> hits{0};
  store_.SetBeforeCommit([&] {
    if (hits.fetch_add(1) == 0) store_.ForcePut("n", "10");
  });
  auto r = p.Execute(RequestId::Key("c"), MakeRequest("+1"), h);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(h.calls.load(), 2);
  EXPECT_EQ(ReadInt(store_, "n"), 11);  // The re-run saw the concurrent write.
}

TEST_F(PipelineTest, UnknownOutcomeThatHappenedIsNotExecutedAgain) {
  RequestPipeline p(store_, clock_);
  CounterHandler h;
  store_.InjectNext(Fault::UnknownApplied());
  auto r = p.Execute(RequestId::Key("u"), MakeRequest("+1"), h);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->replayed);  // It was our own commit.
  EXPECT_EQ(h.calls.load(), 1);
  EXPECT_EQ(ReadInt(store_, "n"), 1);
  auto again = p.Execute(RequestId::Key("u"), MakeRequest("+1"), h);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->reply, r->reply);
}

TEST_F(PipelineTest, UnknownOutcomeThatDidNotHappenRunsOnceMore) {
  RequestPipeline p(store_, clock_);
  CounterHandler h;
  store_.InjectNext(Fault::UnknownNotApplied());
  auto r = p.Execute(RequestId::Key("u"), MakeRequest("+1"), h);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(h.calls.load(), 2);
  EXPECT_EQ(ReadInt(store_, "n"), 1);
}

TEST_F(PipelineTest, UnknownOutcomeWithoutIdIsReportedNotRetried) {
  RequestPipeline p(store_, clock_);
  CounterHandler h;
  store_.InjectNext(Fault::UnknownNotApplied());
  auto r = p.Execute(RequestId::None(), MakeRequest("+1"), h);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(GetPipelineError(r.status()), PipelineError::kOutcomeUnknown);
  EXPECT_EQ(h.calls.load(), 1);
}

TEST_F(PipelineTest, RequestsWithoutIdExecuteOncePerArrival) {
  RequestPipeline p(store_, clock_);
  CounterHandler h;
  for (int i = 0; i < 3; ++i) {
    auto r = p.Execute(RequestId::None(), MakeRequest("+1"), h);
    ASSERT_TRUE(r.ok());
    EXPECT_FALSE(r->replayed);
  }
  EXPECT_EQ(ReadInt(store_, "n"), 3);
  EXPECT_EQ(store_.CountWithPrefix(std::string(storage::kReservedPrefix)), 0u);
}

TEST_F(PipelineTest, StoreUnavailableIsReportedAndNothingIsRecorded) {
  RequestPipeline p(store_, clock_);
  CounterHandler h;
  store_.SetDown(true);
  auto r = p.Execute(RequestId::Key("x"), MakeRequest("+1"), h);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  store_.SetDown(false);
  auto ok = p.Execute(RequestId::Key("x"), MakeRequest("+1"), h);
  ASSERT_TRUE(ok.ok());
  EXPECT_FALSE(ok->replayed);
  EXPECT_EQ(ReadInt(store_, "n"), 1);
}

TEST_F(PipelineTest, ReadOnlyRequestsStoreNoRecord) {
  RequestPipeline p(store_, clock_);
  store_.ForcePut("a", "1");
  store_.ForcePut("b", "2");
  auto reader = MakeHandler([](const Request&, Transaction& txn)
                                -> absl::StatusOr<Reply> {
    auto a = txn.Get("a");
    auto b = txn.Get("b");
    if (!a.ok() || !b.ok()) return absl::InternalError("read failed");
    return Reply::Text(absl::StatusCode::kOk, a->value + b->value);
  });
  auto r = p.Execute(RequestId::Key("ro"), MakeRequest(""), *reader);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->reply.body, "12");
  EXPECT_EQ(store_.CountWithPrefix(std::string(storage::kReservedPrefix)), 0u);
  EXPECT_EQ(p.Stats().read_only, 1u);
}

TEST_F(PipelineTest, HandlerErrorDiscardsWrites) {
  RequestPipeline p(store_, clock_);
  auto h = MakeHandler([](const Request&, Transaction& txn)
                           -> absl::StatusOr<Reply> {
    if (!txn.Put("x", "1").ok()) return absl::InternalError("put");
    return absl::InvalidArgumentError("bad input");
  });
  auto r = p.Execute(RequestId::Key("e"), MakeRequest(""), *h);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(store_.Get("x")->present());
  EXPECT_EQ(store_.CountWithPrefix(std::string(storage::kReservedPrefix)), 0u);
}

TEST_F(PipelineTest, ReservedKeysAreRefused) {
  RequestPipeline p(store_, clock_);
  const std::string reserved = std::string(storage::kReservedPrefix) + "fw/x";
  auto h = MakeHandler([&](const Request&, Transaction& txn)
                           -> absl::StatusOr<Reply> {
    EXPECT_EQ(txn.Get(reserved).status().code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(txn.Scan(reserved).status().code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(txn.Delete(reserved).code(), absl::StatusCode::kInvalidArgument);
    if (absl::Status s = txn.Put(reserved, "evil"); !s.ok()) return s;
    return Reply::Text(absl::StatusCode::kOk, "wrote");
  });
  auto r = p.Execute(RequestId::Key("r"), MakeRequest(""), *h);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(store_.Get(reserved)->present());
}

TEST_F(PipelineTest, TransactionReadsItsOwnWritesAndMergesScans) {
  RequestPipeline p(store_, clock_);
  store_.ForcePut("p/a", "1");
  store_.ForcePut("p/b", "2");
  auto h = MakeHandler([](const Request&, Transaction& txn)
                           -> absl::StatusOr<Reply> {
    if (!txn.Put("p/c", "3").ok() || !txn.Delete("p/a").ok()) {
      return absl::InternalError("write");
    }
    auto c = txn.Get("p/c");
    EXPECT_EQ(c->value, "3");
    EXPECT_EQ(c->version, kUncommittedVersion);
    EXPECT_FALSE(txn.Get("p/a")->present());
    auto scan = txn.Scan("p/");
    if (!scan.ok()) return scan.status();
    std::string keys;
    for (const auto& kv : *scan) keys += kv.key + "=" + kv.value + ";";
    return Reply::Text(absl::StatusCode::kOk, keys);
  });
  auto r = p.Execute(RequestId::None(), MakeRequest(""), *h);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->reply.body, "p/b=2;p/c=3;");
  EXPECT_FALSE(store_.Get("p/a")->present());
  EXPECT_EQ(store_.Get("p/c")->value, "3");
}

TEST_F(PipelineTest, GcByWatermarkCollectsAcknowledgedAndRefusesTheirRetries) {
  RequestPipeline p(store_, clock_);
  CounterHandler h;
  for (uint64_t seq = 1; seq <= 5; ++seq) {
    ASSERT_TRUE(
        p.Execute(RequestId::ClientSeq("c", seq), MakeRequest("+1"), h).ok());
  }
  // Another client's records must survive c's watermark.
  ASSERT_TRUE(
      p.Execute(RequestId::ClientSeq("d", 1), MakeRequest("+1"), h).ok());
  ASSERT_TRUE(p.Execute(RequestId::ClientSeq("c", 6, /*acked=*/3),
                        MakeRequest("+1"), h)
                  .ok());
  auto n = p.CollectGarbage();
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 3u);
  EXPECT_EQ(ReadInt(store_, "n"), 7);

  auto late = p.Execute(RequestId::ClientSeq("c", 2), MakeRequest("+1"), h);
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(GetPipelineError(late.status()),
            PipelineError::kAlreadyAcknowledged);
  for (auto id : {RequestId::ClientSeq("c", 4), RequestId::ClientSeq("d", 1)}) {
    auto kept = p.Execute(id, MakeRequest("+1"), h);
    ASSERT_TRUE(kept.ok());
    EXPECT_TRUE(kept->replayed);
  }
  EXPECT_EQ(ReadInt(store_, "n"), 7);  // Nothing ran twice.
}

TEST_F(PipelineTest, GcByAgeUsesTheInjectedClock) {
  PipelineOptions o;
  o.retention = absl::Hours(24);
  o.gc_batch = 2;  // Several batches.
  RequestPipeline p(store_, clock_, o);
  CounterHandler h;
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(p.Execute(RequestId::Key(absl::StrCat("old", i)),
                          MakeRequest("+1"), h)
                    .ok());
  }
  clock_.Advance(absl::Hours(23));
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(p.Execute(RequestId::Key(absl::StrCat("new", i)),
                          MakeRequest("+1"), h)
                    .ok());
  }
  auto none = p.CollectGarbage();
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, 0u);
  clock_.Advance(absl::Hours(2));  // old*: 25 h; new*: 2 h.
  auto n = p.CollectGarbage();
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 5u);
  auto kept = p.Execute(RequestId::Key("new1"), MakeRequest("+1"), h);
  ASSERT_TRUE(kept.ok());
  EXPECT_TRUE(kept->replayed);
  // Records plus index entries: only the 3 new ones remain.
  const std::string fw = std::string(storage::kReservedPrefix) + "fw/";
  EXPECT_EQ(store_.CountWithPrefix(fw + "c/"), 3u);
  EXPECT_EQ(store_.CountWithPrefix(fw + "t/"), 3u);
}

// A store that, like etcd (max_txn_ops), refuses a commit with more than
// `limit` conditions or writes, and says so through MaxCommitOps().
class OpsLimitedStore : public MemoryStore {
 public:
  explicit OpsLimitedStore(size_t limit) : limit_(limit) {}
  absl::StatusOr<uint64_t> Commit(
      const std::vector<storage::Condition>& conditions,
      const std::vector<storage::Write>& writes) override {
    if (conditions.size() > limit_ || writes.size() > limit_) {
      ++refused_;
      return absl::ResourceExhaustedError("over the store's ops per commit");
    }
    return MemoryStore::Commit(conditions, writes);
  }
  size_t MaxCommitOps() const override { return limit_; }
  int refused() const { return refused_; }

 private:
  const size_t limit_;
  int refused_ = 0;
};

// Regression: the default gc_batch (256 records, i.e. 256 conditions and
// 512 deletes per commit) exceeds etcd's default max_txn_ops (128), so on
// etcd every GC commit was refused and nothing was ever collected.
TEST_F(PipelineTest, GcFitsTheStoresLimitOnOpsPerCommit) {
  OpsLimitedStore store(128);
  PipelineOptions o;  // The default gc_batch.
  o.retention = absl::Hours(1);
  RequestPipeline p(store, clock_, o);
  CounterHandler h;
  constexpr int kRequests = 300;
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_TRUE(p.Execute(RequestId::Key(absl::StrCat("k", i)),
                          MakeRequest("+1"), h)
                    .ok());
  }
  clock_.Advance(absl::Hours(2));
  auto n = p.CollectGarbage();
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, static_cast<size_t>(kRequests));
  EXPECT_EQ(store.refused(), 0);
  const std::string fw = std::string(storage::kReservedPrefix) + "fw/";
  EXPECT_EQ(store.CountWithPrefix(fw + "c/"), 0u);
  EXPECT_EQ(store.CountWithPrefix(fw + "t/"), 0u);
}

TEST_F(PipelineTest, BackgroundGcRunsWithoutBlockingRequests) {
  PipelineOptions o;
  o.retention = absl::Seconds(1);
  o.gc_interval = absl::Milliseconds(10);
  RequestPipeline p(store_, clock_, o);
  CounterHandler h;
  ASSERT_TRUE(p.Execute(RequestId::Key("a"), MakeRequest("+1"), h).ok());
  clock_.Advance(absl::Seconds(5));
  p.StartBackgroundGc();
  const std::string fw = std::string(storage::kReservedPrefix) + "fw/c/";
  for (int i = 0; i < 500 && store_.CountWithPrefix(fw) != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(store_.CountWithPrefix(fw), 0u);
  p.StopBackgroundGc();
}

TEST_F(PipelineTest, MalformedIdsAreRejected) {
  RequestPipeline p(store_, clock_);
  CounterHandler h;
  for (auto id : {RequestId::Key(""), RequestId::Key(std::string(300, 'a')),
                  RequestId::ClientSeq("has space", 1),
                  RequestId::ClientSeq("", 1)}) {
    auto r = p.Execute(id, MakeRequest("+1"), h);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(h.calls.load(), 0);
}

// Each stale test runs through Execute() and ExecuteAsync().
// --- Stale-allowed reads ------------------------------------------------------
//
// The pipeline reads the dedup state and the first handler run's keys with
// ReadConsistency::kMayBeStale. LaggingStore plays a replica that stopped
// applying commits at Freeze(). Whatever the lag, a request must execute at
// most once, a replay must be served, a read-only reply must be current, and
// re-runs must stay bounded. Each test runs through Execute() and
// ExecuteAsync().
class PipelineStaleTest : public testing_util::SyncAndAsyncTest {
 protected:
  MemoryStore live_;
  LaggingStore store_{live_};
  SimulatedClock clock_;
};

TEST_P(PipelineStaleTest, StaleLookupThatMissesTheRecordServesTheReplay) {
  RequestPipeline p(store_, clock_);
  CounterHandler h;
  store_.Freeze();  // The replica never sees the first execution.
  auto first = Run(p, RequestId::ClientSeq("c", 1), MakeRequest("+1"), h);
  ASSERT_TRUE(first.ok()) << first.status();
  auto again = Run(p, RequestId::ClientSeq("c", 1), MakeRequest("+1"), h);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->replayed);
  EXPECT_EQ(again->reply, first->reply);  // Byte for byte, tag included.
  EXPECT_EQ(ReadInt(live_, "n"), 1) << "executed twice";
  EXPECT_EQ(p.Stats().executed, 1u);
  EXPECT_EQ(p.Stats().replayed, 1u);
  EXPECT_GE(p.Stats().revalidations, 1u);
  // Same with an idempotency key, and a reused key is still refused.
  ASSERT_TRUE(Run(p, RequestId::Key("k"), MakeRequest("+1"), h).ok());
  auto reused = Run(p, RequestId::Key("k"), MakeRequest("other"), h);
  ASSERT_FALSE(reused.ok());
  EXPECT_EQ(GetPipelineError(reused.status()), PipelineError::kKeyReused);
  EXPECT_EQ(ReadInt(live_, "n"), 2);
}

TEST_P(PipelineStaleTest, StaleWatermarkStillRefusesACollectedRequest) {
  RequestPipeline p(store_, clock_);
  CounterHandler h;
  store_.Freeze();  // No record, no watermark on the replica, ever.
  for (uint64_t seq = 1; seq <= 3; ++seq) {
    ASSERT_TRUE(Run(p, RequestId::ClientSeq("c", seq), MakeRequest("+1"), h).ok());
  }
  ASSERT_TRUE(Run(p, RequestId::ClientSeq("c", 4, /*acked=*/3),
                  MakeRequest("+1"), h)
                  .ok());
  auto n = p.CollectGarbage();
  ASSERT_TRUE(n.ok()) << n.status();
  ASSERT_EQ(*n, 3u);
  // A late duplicate of seq 2: the stale lookup sees neither its record nor
  // the watermark; the commit's watermark condition must catch it.
  // A blind write, so that no stale read of the handler's fails the commit
  // first.
  auto blind = MakeHandler(
      [](const Request&, Transaction& txn) -> absl::StatusOr<Reply> {
        if (absl::Status s = txn.Put("late", "1"); !s.ok()) return s;
        return Reply::Text(absl::StatusCode::kOk, "ok");
      });
  auto late = Run(p, RequestId::ClientSeq("c", 2), MakeRequest("+1"), *blind);
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(GetPipelineError(late.status()),
            PipelineError::kAlreadyAcknowledged);
  EXPECT_FALSE(live_.Get("late")->present()) << "a collected request ran again";
  auto late2 = Run(p, RequestId::ClientSeq("c", 2), MakeRequest("+1"), h);
  ASSERT_FALSE(late2.ok());
  EXPECT_EQ(GetPipelineError(late2.status()),
            PipelineError::kAlreadyAcknowledged);
  EXPECT_EQ(ReadInt(live_, "n"), 4) << "a collected request ran again";
  // A new request of the same client still runs (one re-run at most).
  auto next = Run(p, RequestId::ClientSeq("c", 5), MakeRequest("+1"), h);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(ReadInt(live_, "n"), 5);
}

TEST_P(PipelineStaleTest, ReadOnlyReplyIsNeverStale) {
  RequestPipeline p(store_, clock_);
  live_.ForcePut("a", "old");
  store_.Freeze();
  live_.ForcePut("a", "new");
  auto reader = MakeHandler(
      [](const Request&, Transaction& txn) -> absl::StatusOr<Reply> {
        auto a = txn.Get("a");
        if (!a.ok()) return a.status();
        return Reply::Text(absl::StatusCode::kOk, a->value);
      });
  for (const RequestId& id :
       {RequestId::None(), RequestId::Key("ro"), RequestId::ClientSeq("r", 1)}) {
    auto r = Run(p, id, MakeRequest(""), *reader);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->reply.body, "new") << "a stale read was answered";
  }
  EXPECT_EQ(p.Stats().read_only, 3u);
  EXPECT_EQ(live_.CountWithPrefix(std::string(storage::kReservedPrefix)), 0u);
}

TEST_P(PipelineStaleTest, HandlerErrorFromAStaleReadIsNotAnswered) {
  RequestPipeline p(store_, clock_);
  live_.ForcePut("a", "old");
  store_.Freeze();
  live_.ForcePut("a", "new");
  // Refuses unless it sees the new value; writes when it does.
  auto h = MakeHandler(
      [](const Request&, Transaction& txn) -> absl::StatusOr<Reply> {
        auto a = txn.Get("a");
        if (!a.ok()) return a.status();
        if (a->value != "new") return absl::FailedPreconditionError("old");
        if (absl::Status s = txn.Put("b", "1"); !s.ok()) return s;
        return Reply::Text(absl::StatusCode::kOk, a->value);
      });
  for (const RequestId& id :
       {RequestId::None(), RequestId::Key("e"), RequestId::ClientSeq("r", 1)}) {
    auto r = Run(p, id, MakeRequest(""), *h);
    ASSERT_TRUE(r.ok()) << r.status() << " (an error built on a stale read)";
    EXPECT_EQ(r->reply.body, "new");
  }
}

TEST_P(PipelineStaleTest, ReadOnlyRequestWithAReusedKeyIsRefused) {
  RequestPipeline p(store_, clock_);
  CounterHandler h;
  store_.Freeze();
  ASSERT_TRUE(Run(p, RequestId::Key("k"), MakeRequest("+1"), h).ok());
  auto reader = MakeHandler(
      [](const Request&, Transaction& txn) -> absl::StatusOr<Reply> {
        auto a = txn.Get("n");
        if (!a.ok()) return a.status();
        return Reply::Text(absl::StatusCode::kOk, a->value);
      });
  auto r = Run(p, RequestId::Key("k"), MakeRequest("read"), *reader);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(GetPipelineError(r.status()), PipelineError::kKeyReused);
}

TEST_P(PipelineStaleTest, StalenessCostsOneReRunOnLatestReads) {
  RequestPipeline p(store_, clock_);
  CounterHandler h;
  live_.ForcePut("n", "10");
  store_.Freeze();
  live_.ForcePut("n", "20");  // The replica keeps n = 10 forever.
  auto r = Run(p, RequestId::Key("x"), MakeRequest("+1"), h);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(ReadInt(live_, "n"), 21);
  EXPECT_EQ(h.calls.load(), 2) << "a lagging replica must not cause more "
                                  "than one re-run";
  auto u = Run(p, RequestId::None(), MakeRequest("+1"), h);
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(ReadInt(live_, "n"), 22);
  EXPECT_EQ(h.calls.load(), 4);
}

TEST_P(PipelineStaleTest, ConflictsUnderStalenessStayBounded) {
  PipelineOptions o;
  o.max_attempts = 3;
  RequestPipeline p(store_, clock_, o);
  CounterHandler h;
  store_.Freeze();
  live_.SetBeforeCommit([&] { live_.ForcePut("n", "100"); });
  auto r = Run(p, RequestId::ClientSeq("c", 1), MakeRequest("+1"), h);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(h.calls.load(), 3);
  live_.SetBeforeCommit(nullptr);
}

TEST_P(PipelineStaleTest, FirstAttemptMakesNoLatestRead) {
  // The fast path: a write costs one stale dedup lookup (keyed), the
  // handler's stale reads and one commit; a blind write without id costs
  // exactly one commit.
  RequestPipeline p(store_, clock_);
  CounterHandler h;
  ASSERT_TRUE(Run(p, RequestId::ClientSeq("c", 1), MakeRequest("+1"), h).ok());
  EXPECT_EQ(store_.latest_reads_.load(), 0);
  EXPECT_EQ(store_.stale_reads_.load(), 2);  // record + watermark, then "n"
  EXPECT_EQ(store_.commits_.load(), 1);
  auto blind = MakeHandler(
      [](const Request&, Transaction& txn) -> absl::StatusOr<Reply> {
        if (absl::Status s = txn.Put("b", "1"); !s.ok()) return s;
        return Reply::Text(absl::StatusCode::kOk, "ok");
      });
  ASSERT_TRUE(Run(p, RequestId::None(), MakeRequest("b"), *blind).ok());
  EXPECT_EQ(store_.latest_reads_.load(), 0);
  EXPECT_EQ(store_.stale_reads_.load(), 2);
  EXPECT_EQ(store_.commits_.load(), 2);
  // The client's next seq skips the lookup (its watermark is known here):
  // one stale read ("n") and one commit; a blind write with a seq: exactly
  // one commit.
  ASSERT_TRUE(Run(p, RequestId::ClientSeq("c", 2), MakeRequest("+1"), h).ok());
  EXPECT_EQ(store_.stale_reads_.load(), 3);
  EXPECT_EQ(store_.commits_.load(), 3);
  ASSERT_TRUE(Run(p, RequestId::ClientSeq("c", 3), MakeRequest("b"), *blind).ok());
  EXPECT_EQ(store_.stale_reads_.load(), 3);
  EXPECT_EQ(store_.commits_.load(), 4);
  EXPECT_EQ(store_.latest_reads_.load(), 0);
  EXPECT_EQ(p.Stats().lookups_skipped, 2u);
  // A retry of a seq this process served is looked up, not re-executed.
  auto again = Run(p, RequestId::ClientSeq("c", 2), MakeRequest("+1"), h);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->replayed);
  EXPECT_EQ(h.calls.load(), 2);
  EXPECT_EQ(p.Stats().lookups_skipped, 2u) << "a retry skipped the lookup";
  // A seq far ahead slides the remembered window past 2 and 3: it is new
  // (skipped), and a retry of 3 is now too old to tell, so it is looked up.
  const uint64_t far = 3 + RequestPipeline::kSeqWindow + 7;
  ASSERT_TRUE(Run(p, RequestId::ClientSeq("c", far), MakeRequest("+1"), h).ok());
  EXPECT_EQ(p.Stats().lookups_skipped, 3u);
  auto old = Run(p, RequestId::ClientSeq("c", 3), MakeRequest("b"), *blind);
  ASSERT_TRUE(old.ok());
  EXPECT_TRUE(old->replayed);
  EXPECT_EQ(p.Stats().lookups_skipped, 3u);
  // Within the window, a retry of the far seq is still recognised.
  auto far_again = Run(p, RequestId::ClientSeq("c", far), MakeRequest("+1"), h);
  ASSERT_TRUE(far_again.ok());
  EXPECT_TRUE(far_again->replayed);
  EXPECT_EQ(p.Stats().lookups_skipped, 3u);
  EXPECT_EQ(h.calls.load(), 3);
}

TEST_P(PipelineStaleTest, RetryFirstSeenHereAfterAnotherHostRanItIsReplayed) {
  // p2 has served client c before (it knows c's watermark); p1 executes
  // c's seq 5, then the client's retry of seq 5 reaches p2, for which seq 5
  // is new: p2 skips the lookup, runs the handler, its commit fails on the
  // record, and the record's reply is served. Effects: once.
  RequestPipeline p1(store_, clock_);
  RequestPipeline p2(store_, clock_);
  CounterHandler h;
  ASSERT_TRUE(Run(p2, RequestId::ClientSeq("c", 1), MakeRequest("+1"), h).ok());
  auto first = Run(p1, RequestId::ClientSeq("c", 5), MakeRequest("+1"), h);
  ASSERT_TRUE(first.ok());
  auto retry = Run(p2, RequestId::ClientSeq("c", 5), MakeRequest("+1"), h);
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_TRUE(retry->replayed);
  EXPECT_EQ(retry->reply, first->reply);
  EXPECT_EQ(ReadInt(live_, "n"), 2) << "executed twice";
  EXPECT_EQ(p2.Stats().lookups_skipped, 1u);
  EXPECT_EQ(p2.Stats().replayed, 1u);
  // A watermark that grew behind p2's back (p1's GC) is caught by the
  // commit's watermark condition: a new seq below it gets 410. (An ack is
  // only accepted on a later seq than itself.)
  ASSERT_TRUE(Run(p1, RequestId::ClientSeq("c", 10, /*acked=*/9),
                  MakeRequest("+1"), h)
                  .ok());
  ASSERT_TRUE(p1.CollectGarbage().ok());
  auto below = Run(p2, RequestId::ClientSeq("c", 8), MakeRequest("+1"), h);
  ASSERT_FALSE(below.ok());
  EXPECT_EQ(GetPipelineError(below.status()),
            PipelineError::kAlreadyAcknowledged);
  EXPECT_EQ(ReadInt(live_, "n"), 3);
}

INSTANTIATE_TEST_SUITE_P(SyncAndAsync, PipelineStaleTest,
                         ::testing::Values(false, true),
                         testing_util::SyncOrAsyncName);

}  // namespace
}  // namespace baton::framework
