// framework/testing/fault_store.h: each injected fault does what its name
// says to the store underneath (applied or not, answered how), rules pick
// the commits they should, latency holds a commit without blocking an
// asynchronous caller, and the after-durable hook runs after the commit is
// in the store and before the pipeline answers -- the kv server's
// crash-after-commit point.
#include "framework/testing/fault_store.h"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "framework/clock.h"
#include "framework/handler.h"
#include "framework/pipeline.h"
#include "gtest/gtest.h"
#include "storage/memory/memory_store.h"

namespace baton::testing {
namespace {

using storage::Write;

std::unique_ptr<storage::MemoryStore> Memory(bool async_commits) {
  storage::MemoryStoreOptions o;
  o.async_commits = async_commits;
  o.stale_reads_are_cheaper = true;
  return *storage::OpenMemoryStore(o);
}

// Commit through Commit() or CommitAsync(), waiting for the answer.
class FaultStoreTest : public ::testing::TestWithParam<bool> {
 protected:
  bool async() const { return GetParam(); }

  absl::StatusOr<uint64_t> CommitAndWait(
      FaultStore& store, std::vector<storage::Condition> conditions,
      std::vector<Write> writes) {
    if (!async()) return store.Commit(conditions, writes);
    absl::StatusOr<uint64_t> result;
    absl::Notification done;
    store.CommitAsync(std::move(conditions), std::move(writes),
                      [&](absl::StatusOr<uint64_t> r) {
                        result = std::move(r);
                        done.Notify();
                      });
    done.WaitForNotification();
    return result;
  }

  std::unique_ptr<storage::MemoryStore> inner_ = Memory(/*async_commits=*/true);
  FaultStore store_{*inner_};
};

INSTANTIATE_TEST_SUITE_P(SyncAndAsync, FaultStoreTest, ::testing::Bool(),
                         [](const auto& info) {
                           return info.param ? "CommitAsync" : "Commit";
                         });

TEST_P(FaultStoreTest, EachFaultAppliesOrNotAndAnswersAsNamed) {
  std::vector<std::pair<uint64_t, std::string>> durable;
  store_.AddDurableHook([&](const CommitInfo& info, uint64_t revision) {
    durable.emplace_back(revision, info.writes[0].key);
  });

  store_.InjectNext(Fault::UnknownApplied());
  auto r = CommitAndWait(store_, {}, {Write::Put("applied", "1")});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnknown);
  EXPECT_TRUE(inner_->Get("applied")->present()) << "applied despite kUnknown";

  store_.InjectNext(Fault::UnknownNotApplied());
  r = CommitAndWait(store_, {}, {Write::Put("lost", "1")});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnknown);
  EXPECT_FALSE(inner_->Get("lost")->present());

  store_.InjectNext(Fault::Unavailable());
  r = CommitAndWait(store_, {}, {Write::Put("refused", "1")});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(inner_->Get("refused")->present());

  // A conflict names the first condition outside the reserved key space.
  store_.InjectNext(Fault::Conflict());
  r = CommitAndWait(store_, {{"\xff" "fw/c/k/x", 0}, {"read", 0}},
                    {Write::Put("conflicted", "1")});
  EXPECT_TRUE(storage::IsConflict(r.status())) << r.status();
  EXPECT_EQ(storage::ConflictKey(r.status()), std::optional<std::string>("read"));
  store_.InjectNext(Fault::Conflict("named"));
  r = CommitAndWait(store_, {}, {Write::Put("conflicted", "1")});
  EXPECT_EQ(storage::ConflictKey(r.status()), std::optional<std::string>("named"));
  EXPECT_FALSE(inner_->Get("conflicted")->present());

  r = CommitAndWait(store_, {}, {Write::Put("plain", "1")});
  ASSERT_TRUE(r.ok()) << r.status();

  ASSERT_EQ(durable.size(), 2u) << "durable: the applied-but-unknown and the plain one";
  EXPECT_EQ(durable[0].second, "applied");
  EXPECT_EQ(durable[1].second, "plain");
  EXPECT_EQ(durable[1].first, *r);
  const FaultStoreStats stats = store_.Stats();
  EXPECT_EQ(stats.commits, 6u);
  EXPECT_EQ(stats.injected, 5u);
  EXPECT_EQ(stats.durable, 2u);
}

TEST_P(FaultStoreTest, RulesSkipThenFaultTheMatchingCommits) {
  // Commits writing "hot": the first passes, the next two are refused.
  const int rule = store_.AddRule(
      {Fault::Unavailable(), WritingKey("hot"), /*skip=*/1, /*times=*/2});
  std::vector<absl::StatusCode> hot, cold;
  for (int i = 0; i < 4; ++i) {
    hot.push_back(CommitAndWait(store_, {}, {Write::Put("hot", "x")}).status().code());
    cold.push_back(CommitAndWait(store_, {}, {Write::Put("cold", "x")}).status().code());
  }
  using C = absl::StatusCode;
  EXPECT_EQ(hot, (std::vector<C>{C::kOk, C::kUnavailable, C::kUnavailable, C::kOk}));
  EXPECT_EQ(cold, (std::vector<C>(4, C::kOk)));

  // Queued faults go first, in order; kEveryTime lasts until removed.
  store_.RemoveRule(rule);
  const int every = store_.AddRule(
      {Fault::Unavailable(), WithWrites(), 0, FaultRule::kEveryTime});
  store_.InjectNext(Fault::UnknownNotApplied());
  store_.InjectNext(Fault::Conflict("c"));
  EXPECT_EQ(CommitAndWait(store_, {}, {Write::Put("a", "1")}).status().code(),
            C::kUnknown);
  EXPECT_EQ(CommitAndWait(store_, {}, {Write::Put("a", "1")}).status().code(),
            C::kAborted);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(CommitAndWait(store_, {}, {Write::Put("a", "1")}).status().code(),
              C::kUnavailable);
  }
  EXPECT_TRUE(CommitAndWait(store_, {}, {}).ok()) << "a conditions-only commit has no writes";
  store_.RemoveRule(every);
  EXPECT_TRUE(CommitAndWait(store_, {}, {Write::Put("a", "1")}).ok());
}

TEST_P(FaultStoreTest, DownRefusesEverything) {
  store_.SetDown(true);
  EXPECT_EQ(store_.Get("k").status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store_.GetMany({"k"}, {}).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store_.Scan({}).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store_.Ping().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(CommitAndWait(store_, {}, {Write::Put("k", "v")}).status().code(),
            absl::StatusCode::kUnavailable);
  store_.SetDown(false);
  EXPECT_TRUE(CommitAndWait(store_, {}, {Write::Put("k", "v")}).ok());
  EXPECT_EQ(inner_->Get("k")->value, "v");
}

TEST_P(FaultStoreTest, LatencyDelaysTheCommit) {
  constexpr absl::Duration kDelay = absl::Milliseconds(60);
  store_.InjectNext(Fault::Latency(kDelay));
  const absl::Time start = absl::Now();
  auto r = CommitAndWait(store_, {}, {Write::Put("slow", "1")});
  EXPECT_TRUE(r.ok());
  EXPECT_GE(absl::Now() - start, kDelay);
  store_.InjectNext(Fault::Unavailable().After(kDelay));
  const absl::Time start2 = absl::Now();
  EXPECT_EQ(CommitAndWait(store_, {}, {Write::Put("slow", "2")}).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_GE(absl::Now() - start2, kDelay);
}

TEST(FaultStoreAsyncTest, LatencyDoesNotBlockTheAsyncCaller) {
  auto inner = Memory(true);
  absl::Notification done;
  {
    FaultStore store(*inner);
    store.InjectNext(Fault::Latency(absl::Seconds(30)));
    const absl::Time start = absl::Now();
    int calls = 0;
    store.CommitAsync({}, {Write::Put("k", "v")}, [&](absl::StatusOr<uint64_t> r) {
      EXPECT_TRUE(r.ok()) << r.status();
      ++calls;
      done.Notify();
    });
    EXPECT_LT(absl::Now() - start, absl::Seconds(5)) << "the caller is not held";
    EXPECT_FALSE(done.HasBeenNotified());
    // Destroying the FaultStore forwards the delayed commit at once.
  }
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(inner->Get("k")->value, "v");
}

TEST(FaultStoreAsyncTest, ForwardsTheInnerStoresCharacter) {
  auto async_inner = Memory(true);
  auto sync_inner = Memory(false);
  FaultStore a(*async_inner), s(*sync_inner);
  EXPECT_TRUE(a.CommitsAsynchronously());
  EXPECT_FALSE(s.CommitsAsynchronously());
  EXPECT_TRUE(a.StaleReadsAreCheaper());
  EXPECT_EQ(a.Kind(), "memory");
  EXPECT_FALSE(a.Statistics().empty());
  // Stale-allowed reads reach the inner store as such.
  (void)*async_inner->Commit({}, {Write::Put("k", "old")});
  async_inner->FreezeReplica();
  (void)*async_inner->Commit({}, {Write::Put("k", "new")});
  EXPECT_EQ((*a.GetMany({"k"}, {storage::ReadConsistency::kMayBeStale}))[0].value, "old");
  EXPECT_EQ((*a.GetMany({"k"}, {storage::ReadConsistency::kLatest}))[0].value, "new");
}

TEST(FaultStoreAsyncTest, BeforeCommitHookCanRaceAWriteIn) {
  auto inner = Memory(false);
  FaultStore store(*inner);
  const uint64_t v1 = *store.Commit({}, {Write::Put("k", "1")});
  store.AddBeforeCommitHook([&](const CommitInfo& info) {
    if (info.sequence == 2) (void)inner->Commit({}, {Write::Put("k", "racer")});
  });
  auto r = store.Commit({{"k", v1}}, {Write::Put("k", "2")});
  EXPECT_EQ(storage::ConflictKey(r.status()), std::optional<std::string>("k"));
  EXPECT_EQ(inner->Get("k")->value, "racer");
}

// The kv server's --test-kill-after-records: the action runs right after the
// Nth completion record is durable, before the pipeline answers that
// request; requests without a record (read-only, no id) do not count.
TEST_P(FaultStoreTest, NthCompletionRecordHookRunsBetweenCommitAndReply) {
  framework::SimulatedClock clock;
  framework::RequestPipeline pipeline(store_, clock);
  auto incr = framework::MakeHandler(
      [](const framework::Request&, framework::Transaction& txn)
          -> absl::StatusOr<framework::Reply> {
        auto v = txn.Get("n");
        if (!v.ok()) return v.status();
        const int n = v->present() ? std::stoi(v->value) : 0;
        if (auto s = txn.Put("n", std::to_string(n + 1)); !s.ok()) return s;
        return framework::Reply::Text(absl::StatusCode::kOk, std::to_string(n + 1));
      });
  std::atomic<int> fired{0};
  std::atomic<bool> answered_before_action{false};
  std::atomic<bool> record_in_store{false};
  std::atomic<bool> second_answered{false};
  store_.AddDurableHook(OnNthCompletionRecord(2, [&] {
    fired++;
    answered_before_action = second_answered.load();
    auto records = inner_->Scan({.prefix = "\xff" "fw/c/", .start_after = "", .limit = 10});
    record_in_store = records.ok() && records->size() == 2;
  }));
  auto run = [&](framework::RequestId id) {
    framework::Request req;
    req.operation = "POST /incr";
    req.path = "/incr";
    req.body = id.idempotency_key;
    if (!async()) return pipeline.Execute(id, req, *incr);
    absl::StatusOr<framework::PipelineResult> result;
    absl::Notification done;
    pipeline.ExecuteAsync(id, req, *incr, [&](absl::StatusOr<framework::PipelineResult> r) {
      result = std::move(r);
      done.Notify();
    });
    done.WaitForNotification();
    return result;
  };
  ASSERT_TRUE(run(framework::RequestId::None()).ok());  // No record.
  ASSERT_TRUE(run(framework::RequestId::Key("k1")).ok());
  EXPECT_EQ(fired.load(), 0);
  ASSERT_TRUE(run(framework::RequestId::Key("k2")).ok());
  second_answered = true;
  ASSERT_TRUE(run(framework::RequestId::Key("k3")).ok());
  EXPECT_EQ(fired.load(), 1) << "once, on the second record";
  EXPECT_TRUE(record_in_store.load()) << "after the record is durable";
  EXPECT_FALSE(answered_before_action.load()) << "before the reply";
}

}  // namespace
}  // namespace baton::testing
