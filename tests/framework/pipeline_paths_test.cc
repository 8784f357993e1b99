// The pipeline's one execution path, through both entry points (Execute and
// ExecuteAsync): a handler that throws is answered kInternal and commits
// nothing; a retry of a running id waits at most in_flight_wait (on the
// injected clock, without a thread on the async path) and then gets
// kInProgress; a store fault on a read is answered as retryable, never as a
// final kUnknown; commit latency is measured on the injected clock.
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
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
using testing_util::WaitUntilParked;

// A store whose reads fail with a given status, a given number of times,
// and run a hook (set before use) inside every read.
class FaultyReads : public storage::StableStore {
 public:
  explicit FaultyReads(MemoryStore& live) : live_(live) {}
  void FailReads(int n, absl::Status status) {
    absl::MutexLock lock(&mu_);
    failures_ = n;
    status_ = std::move(status);
  }
  void OnRead(std::function<void()> hook) { on_read_ = std::move(hook); }
  absl::StatusOr<storage::Versioned> Get(std::string_view key) override {
    if (absl::Status s = Fault(); !s.ok()) return s;
    return live_.Get(key);
  }
  absl::StatusOr<std::vector<storage::Versioned>> GetMany(
      const std::vector<std::string>& keys,
      const storage::ReadOptions& options) override {
    if (absl::Status s = Fault(); !s.ok()) return s;
    return live_.GetMany(keys, options);
  }
  absl::StatusOr<std::vector<storage::KeyValue>> Scan(
      const storage::ScanOptions& o) override {
    if (absl::Status s = Fault(); !s.ok()) return s;
    return live_.Scan(o);
  }
  absl::StatusOr<uint64_t> Commit(
      const std::vector<storage::Condition>& conditions,
      const std::vector<storage::Write>& writes) override {
    return live_.Commit(conditions, writes);
  }
  absl::Status Ping() override { return live_.Ping(); }

 private:
  absl::Status Fault() {
    if (on_read_) on_read_();
    absl::MutexLock lock(&mu_);
    if (failures_ == 0) return absl::OkStatus();
    --failures_;
    return status_;
  }
  MemoryStore& live_;
  std::function<void()> on_read_;
  absl::Mutex mu_;
  int failures_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
};

class PipelinePathTest : public testing_util::SyncAndAsyncTest {
 protected:
  MemoryStore store_;
  SimulatedClock clock_;
};

TEST_P(PipelinePathTest, HandlerThatThrowsIsInternalAndCommitsNothing) {
  RequestPipeline p(store_, clock_);
  auto throws_std = MakeHandler(
      [](const Request&, Transaction& txn) -> absl::StatusOr<Reply> {
        if (absl::Status s = txn.Put("x", "1"); !s.ok()) return s;
        throw std::runtime_error("boom");
      });
  auto throws_int = MakeHandler(
      [](const Request&, Transaction& txn) -> absl::StatusOr<Reply> {
        if (absl::Status s = txn.Put("x", "1"); !s.ok()) return s;
        throw 42;
      });
  int runs = 0;
  for (Handler* h : {throws_std.get(), throws_int.get()}) {
    for (const RequestId& id : {RequestId::None(), RequestId::Key("k"),
                                RequestId::ClientSeq("c", 1)}) {
      auto r = Run(p, id, MakeRequest("+1"), *h);
      ++runs;
      ASSERT_FALSE(r.ok());
      EXPECT_EQ(r.status().code(), absl::StatusCode::kInternal);
      EXPECT_EQ(r.status().message(), "handler failed");
    }
  }
  EXPECT_EQ(p.Stats().handler_exceptions, static_cast<uint64_t>(runs));
  EXPECT_FALSE(store_.Get("x")->present());
  EXPECT_EQ(store_.CountWithPrefix(std::string(storage::kReservedPrefix)), 0u)
      << "a completion record was written for a handler that threw";
  // Nothing was recorded: the same ids run normally afterwards.
  CounterHandler ok;
  for (const RequestId& id :
       {RequestId::Key("k"), RequestId::ClientSeq("c", 1)}) {
    auto r = Run(p, id, MakeRequest("+1"), ok);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_FALSE(r->replayed);
  }
  EXPECT_EQ(ReadInt(store_, "n"), 2);
}

TEST_P(PipelinePathTest, RetryWhileFirstAttemptRunsGetsInProgressAfterWait) {
  PipelineOptions o;
  o.in_flight_wait = absl::Seconds(5);
  RequestPipeline p(store_, clock_, o);
  absl::Notification entered, release;
  CounterHandler h;
  h.delay = [&] {
    entered.Notify();
    release.WaitForNotification();
  };
  Started first(/*async=*/false, p, RequestId::Key("slow"), MakeRequest("+1"),
                h);
  entered.WaitForNotification();
  Started second(GetParam(), p, RequestId::Key("slow"), MakeRequest("+1"), h);
  const bool parked = WaitUntilParked(p, 1);
  // The clock has not moved: the retry is still waiting (and, on the async
  // path, ExecuteAsync has returned: no thread waits for it).
  const bool answered_early = second.done();
  clock_.Advance(absl::Seconds(5));
  const bool answered = second.WaitFor(absl::Seconds(10));
  const bool first_still_running = !first.done();
  release.Notify();
  ASSERT_TRUE(parked);
  EXPECT_FALSE(answered_early);
  ASSERT_TRUE(answered)
      << "a retry waited past in_flight_wait for a running attempt";
  EXPECT_TRUE(first_still_running);
  ASSERT_FALSE(second.result().ok());
  EXPECT_EQ(GetPipelineError(second.result().status()),
            PipelineError::kInProgress);
  ASSERT_TRUE(first.result().ok());
  auto third = Run(p, RequestId::Key("slow"), MakeRequest("+1"), h);
  ASSERT_TRUE(third.ok());
  EXPECT_TRUE(third->replayed);
  EXPECT_EQ(third->reply, first.result()->reply);
  EXPECT_EQ(h.calls.load(), 1);
}

TEST_P(PipelinePathTest, RetryThatWaitedIsAnsweredFromTheFirstAttemptsRecord) {
  RequestPipeline p(store_, clock_);
  absl::Notification entered, release;
  CounterHandler h;
  h.delay = [&] {
    entered.Notify();
    release.WaitForNotification();
  };
  Started first(/*async=*/false, p, RequestId::ClientSeq("c", 7),
                MakeRequest("+1"), h);
  entered.WaitForNotification();
  Started second(GetParam(), p, RequestId::ClientSeq("c", 7),
                 MakeRequest("+1"), h);
  const bool parked = WaitUntilParked(p, 1);
  release.Notify();
  ASSERT_TRUE(parked);
  ASSERT_TRUE(first.result().ok());
  ASSERT_TRUE(second.result().ok()) << second.result().status();
  EXPECT_TRUE(second.result()->replayed);
  EXPECT_EQ(second.result()->reply, first.result()->reply);
  EXPECT_EQ(h.calls.load(), 1);
  EXPECT_EQ(ReadInt(store_, "n"), 1);
}

// Reads two keys: its reply needs a conditions-only confirmation commit.
std::shared_ptr<Handler> TwoKeyReader() {
  return MakeHandler(
      [](const Request&, Transaction& txn) -> absl::StatusOr<Reply> {
        auto a = txn.Get("a");
        if (!a.ok()) return a.status();
        auto b = txn.Get("b");
        if (!b.ok()) return b.status();
        return Reply::Text(absl::StatusCode::kOk, a->value + b->value);
      });
}

TEST_P(PipelinePathTest, UnknownConfirmationOfAReadIsRetryable) {
  RequestPipeline p(store_, clock_);
  store_.ForcePut("a", "1");
  store_.ForcePut("b", "2");
  auto reader = TwoKeyReader();
  for (const RequestId& id : {RequestId::None(), RequestId::Key("r"),
                              RequestId::ClientSeq("c", 1)}) {
    store_.InjectNext(Fault::UnknownNotApplied());
    auto r = Run(p, id, MakeRequest(""), *reader);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable)
        << r.status() << " (a read answered with a final error)";
    auto again = Run(p, id, MakeRequest(""), *reader);
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(again->reply.body, "12");
  }
}

TEST_P(PipelinePathTest, UnknownConfirmationOfAStaleHandlerErrorIsRetryable) {
  LaggingStore lagging(store_);
  RequestPipeline p(lagging, clock_);
  store_.ForcePut("a", "old");
  lagging.Freeze();
  auto refuses = MakeHandler(
      [](const Request&, Transaction& txn) -> absl::StatusOr<Reply> {
        auto a = txn.Get("a");
        if (!a.ok()) return a.status();
        return absl::FailedPreconditionError("refused");
      });
  store_.InjectNext(Fault::UnknownNotApplied());
  auto r = Run(p, RequestId::Key("e"), MakeRequest(""), *refuses);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
}

TEST_P(PipelinePathTest, UnknownLookupAndHandlerReadsAreRetryable) {
  FaultyReads faulty(store_);
  RequestPipeline p(faulty, clock_);
  CounterHandler h;
  // The dedup lookup.
  faulty.FailReads(1, absl::UnknownError("read timed out"));
  auto lookup = Run(p, RequestId::Key("k"), MakeRequest("+1"), h);
  ASSERT_FALSE(lookup.ok());
  EXPECT_EQ(lookup.status().code(), absl::StatusCode::kUnavailable)
      << lookup.status();
  // The handler's own read (it passes the store's status on).
  auto unkeyed = Run(p, RequestId::None(), MakeRequest("+1"), h);
  ASSERT_TRUE(unkeyed.ok());
  faulty.FailReads(1, absl::UnknownError("read timed out"));
  auto read = Run(p, RequestId::None(), MakeRequest("+1"), h);
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kUnavailable)
      << read.status();
  // A keyed write whose commit outcome is unknown and whose resolving read
  // fails: retryable; the retry finds the record (the commit happened) and
  // replays it, never a second execution.
  store_.InjectNext(Fault::UnknownApplied());
  faulty.FailReads(0, absl::OkStatus());
  auto hook = [&] { faulty.FailReads(1, absl::UnknownError("read timeout")); };
  store_.SetBeforeCommit(hook);
  auto write = Run(p, RequestId::Key("w"), MakeRequest("+1"), h);
  store_.SetBeforeCommit(nullptr);
  ASSERT_FALSE(write.ok());
  EXPECT_EQ(write.status().code(), absl::StatusCode::kUnavailable)
      << write.status();
  const int64_t n = ReadInt(store_, "n");
  auto retry = Run(p, RequestId::Key("w"), MakeRequest("+1"), h);
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_TRUE(retry->replayed);
  EXPECT_EQ(ReadInt(store_, "n"), n) << "executed twice";
}

TEST_P(PipelinePathTest, CommitLatencyIsMeasuredOnTheInjectedClock) {
  RequestPipeline p(store_, clock_);
  CounterHandler h;
  store_.SetBeforeCommit([&] { clock_.Advance(absl::Milliseconds(3)); });
  ASSERT_TRUE(Run(p, RequestId::Key("a"), MakeRequest("+1"), h).ok());
  store_.SetBeforeCommit([&] { clock_.Advance(absl::Seconds(11)); });
  ASSERT_TRUE(Run(p, RequestId::None(), MakeRequest("+1"), h).ok());
  store_.SetBeforeCommit(nullptr);
  ASSERT_TRUE(Run(p, RequestId::None(), MakeRequest("+1"), h).ok());
  const PipelineStats s = p.Stats();
  // 3 ms: the bucket up to 5 ms; 11 s: the last one; 0: the first one.
  ASSERT_EQ(kCommitLatencyBoundsMicros[5], 5000u);
  EXPECT_EQ(s.commit_latency_buckets[0], 1u);
  EXPECT_EQ(s.commit_latency_buckets[5], 1u);
  EXPECT_EQ(s.commit_latency_buckets.back(), 1u);
  uint64_t total = 0;
  for (uint64_t c : s.commit_latency_buckets) total += c;
  EXPECT_EQ(total, 3u);
  EXPECT_EQ(s.commit_latency_sum_micros, 3000u + 11'000'000u);
}

// The take-over agent tells a server waiting on its store from a hung one by
// StoreWaitTime (framework/agent_liveness.h): every read a request makes
// (the dedup lookup, the handler's) counts while it is in flight, and
// nothing counts once the request is done.
TEST_P(PipelinePathTest, StoreWaitTimeCountsTheReadsOfARequestInFlight) {
  FaultyReads reads(store_);
  RequestPipeline p(reads, clock_);
  CounterHandler h;
  std::vector<absl::Duration> seen;
  reads.OnRead([&] {
    clock_.Advance(absl::Milliseconds(40));
    seen.push_back(p.StoreWaitTime());
  });
  EXPECT_EQ(p.StoreWaitTime(), absl::ZeroDuration());
  ASSERT_TRUE(Run(p, RequestId::Key("a"), MakeRequest("+1"), h).ok());
  // The lookup and the handler's Get("n"), each its own wait.
  ASSERT_EQ(seen.size(), 2u);
  for (absl::Duration d : seen) EXPECT_EQ(d, absl::Milliseconds(40));
  EXPECT_EQ(p.StoreWaitTime(), absl::ZeroDuration());
  clock_.Advance(absl::Seconds(5));
  EXPECT_EQ(p.StoreWaitTime(), absl::ZeroDuration());
}

TEST_P(PipelinePathTest, GcPassesAndErrorsAreCounted) {
  RequestPipeline p(store_, clock_);
  ASSERT_TRUE(p.CollectGarbage().ok());
  store_.SetDown(true);
  EXPECT_FALSE(p.CollectGarbage().ok());
  store_.SetDown(false);
  EXPECT_EQ(p.Stats().gc_passes, 2u);
  EXPECT_EQ(p.Stats().gc_errors, 1u);
}

INSTANTIATE_TEST_SUITE_P(SyncAndAsync, PipelinePathTest,
                         ::testing::Values(false, true),
                         testing_util::SyncOrAsyncName);

}  // namespace
}  // namespace baton::framework
