// The in-memory store (storage/memory/memory_store.h): the shared contract
// suite in each of its modes, and what it adds (asynchronous commits on a
// committer thread, restarts on shared data, a frozen replica for
// stale-allowed reads, limits).
#include "storage/memory/memory_store.h"

#include <atomic>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "tests/storage/store_contract_test.h"

namespace baton::storage {
namespace {

MemoryStoreOptions Mode(bool async_commits, bool stale_reads_are_cheaper) {
  MemoryStoreOptions o;
  o.async_commits = async_commits;
  o.stale_reads_are_cheaper = stale_reads_are_cheaper;
  return o;
}

// A fresh data set; every open is a restart on it.
testing::StoreOpener NewMemoryOpener(MemoryStoreOptions options) {
  options.data = NewMemoryStoreData();
  return [options]() -> absl::StatusOr<std::unique_ptr<StableStore>> {
    absl::StatusOr<std::unique_ptr<MemoryStore>> s = OpenMemoryStore(options);
    if (!s.ok()) return s.status();
    return std::unique_ptr<StableStore>(*std::move(s));
  };
}

using testing::StoreContractTest;
INSTANTIATE_TEST_SUITE_P(
    Memory, StoreContractTest,
    ::testing::Values(
        testing::StoreContractParam{
            "MemoryAsync", [] { return NewMemoryOpener(Mode(true, false)); }},
        testing::StoreContractParam{
            "MemorySync",
            [] { return NewMemoryOpener(Mode(false, false)); }},
        testing::StoreContractParam{
            "MemoryStaleReads",
            [] { return NewMemoryOpener(Mode(true, true)); }}),
    testing::StoreContractParamName);

std::unique_ptr<MemoryStore> MustOpen(MemoryStoreOptions options = {}) {
  absl::StatusOr<std::unique_ptr<MemoryStore>> s = OpenMemoryStore(options);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *std::move(s) : nullptr;
}

TEST(MemoryStoreTest, AsyncCommitsRunOnTheCommitterThreadInOrder) {
  std::unique_ptr<MemoryStore> store = MustOpen();
  ASSERT_TRUE(store->CommitsAsynchronously());
  const std::thread::id caller = std::this_thread::get_id();
  constexpr int kCommits = 50;
  std::vector<uint64_t> revisions;
  std::atomic<int> on_caller{0};
  absl::Notification all_done;
  for (int i = 0; i < kCommits; ++i) {
    store->CommitAsync({}, {Write::Put("k", std::to_string(i))},
                       [&, i](absl::StatusOr<uint64_t> r) {
                         ASSERT_TRUE(r.ok()) << r.status();
                         if (std::this_thread::get_id() == caller) on_caller++;
                         revisions.push_back(*r);  // One callback at a time.
                         if (i == kCommits - 1) all_done.Notify();
                       });
  }
  all_done.WaitForNotification();
  EXPECT_EQ(on_caller.load(), 0) << "callbacks run on the committer thread";
  ASSERT_EQ(revisions.size(), size_t{kCommits});
  for (size_t i = 1; i < revisions.size(); ++i) {
    EXPECT_GT(revisions[i], revisions[i - 1]) << "queued commits apply in order";
  }
  EXPECT_EQ(store->Get("k")->value, std::to_string(kCommits - 1));
  EXPECT_EQ(store->Stats().async_commits, uint64_t{kCommits});
}

TEST(MemoryStoreTest, SyncModeCommitsAsyncOnTheCallingThread) {
  std::unique_ptr<MemoryStore> store = MustOpen(Mode(false, false));
  EXPECT_FALSE(store->CommitsAsynchronously());
  bool called = false;
  store->CommitAsync({}, {Write::Put("a", "1")}, [&](absl::StatusOr<uint64_t> r) {
    EXPECT_TRUE(r.ok());
    called = true;
  });
  EXPECT_TRUE(called) << "answered before CommitAsync returned";
}

TEST(MemoryStoreTest, CloseAnswersEveryQueuedCommitAndRefusesLaterCalls) {
  std::unique_ptr<MemoryStore> store = MustOpen();
  // Hold the committer in the first callback while more commits queue.
  absl::Notification in_first, release;
  std::atomic<int> answered{0}, unavailable{0};
  auto count = [&](absl::StatusOr<uint64_t> r) {
    if (r.status().code() == absl::StatusCode::kUnavailable) unavailable++;
    answered++;
  };
  store->CommitAsync({}, {Write::Put("first", "1")},
                     [&](absl::StatusOr<uint64_t> r) {
                       in_first.Notify();
                       release.WaitForNotification();
                       count(std::move(r));
                     });
  in_first.WaitForNotification();
  for (int i = 0; i < 5; ++i) store->CommitAsync({}, {Write::Put("later", "x")}, count);
  std::thread closer([&] { store->Close(); });
  // Close() has begun (it then waits for the committer, held above).
  while (store->Ping().ok()) std::this_thread::yield();
  release.Notify();
  closer.join();
  EXPECT_EQ(answered.load(), 6) << "every callback ran exactly once";
  EXPECT_EQ(unavailable.load(), 5) << "commits queued at Close are refused";
  EXPECT_EQ(store->Get("later").status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store->Ping().code(), absl::StatusCode::kUnavailable);
  store->CommitAsync({}, {Write::Put("after", "x")}, count);
  EXPECT_EQ(unavailable.load(), 6);
}

TEST(MemoryStoreTest, CloseFromACommitCallbackDoesNotDeadlock) {
  std::unique_ptr<MemoryStore> store = MustOpen();
  absl::Notification done;
  store->CommitAsync({}, {Write::Put("a", "1")}, [&](absl::StatusOr<uint64_t> r) {
    EXPECT_TRUE(r.ok());
    store->Close();
    done.Notify();
  });
  done.WaitForNotification();
  EXPECT_FALSE(store->Ping().ok());
  store.reset();  // Joins the committer.
}

TEST(MemoryStoreTest, ReopenOnTheSameDataIsARestart) {
  MemoryStoreOptions options;
  options.data = NewMemoryStoreData();
  uint64_t r1 = 0;
  {
    std::unique_ptr<MemoryStore> first = MustOpen(options);
    r1 = *first->Commit({}, {Write::Put("a", "1")});
    // A second handle on the same data sees the first one's commits at once.
    std::unique_ptr<MemoryStore> second = MustOpen(options);
    EXPECT_EQ(second->Get("a")->version, r1);
    EXPECT_TRUE(IsConflict(second->Commit({{"a", 0}}, {}).status()));
  }
  std::unique_ptr<MemoryStore> again = MustOpen(options);
  EXPECT_EQ(again->Get("a")->value, "1");
  EXPECT_EQ(again->CurrentRevision(), r1);
}

TEST(MemoryStoreTest, FrozenReplicaServesOnlyStaleAllowedReads) {
  std::unique_ptr<MemoryStore> store = MustOpen(Mode(true, true));
  ASSERT_TRUE(store->StaleReadsAreCheaper());
  const uint64_t r1 = *store->Commit({}, {Write::Put("k", "old")});
  store->FreezeReplica();
  const uint64_t r2 = *store->Commit({}, {Write::Put("k", "new")});
  auto stale = store->GetMany({"k"}, {ReadConsistency::kMayBeStale});
  ASSERT_TRUE(stale.ok());
  EXPECT_EQ((*stale)[0].value, "old");
  EXPECT_EQ((*stale)[0].version, r1);
  auto latest = store->GetMany({"k"}, {ReadConsistency::kLatest});
  EXPECT_EQ((*latest)[0].version, r2);
  EXPECT_EQ(store->Get("k")->version, r2);
  // The stale version fails a commit condition, as the contract promises.
  EXPECT_TRUE(IsConflict(store->Commit({{"k", r1}}, {}).status()));
  store->ThawReplica();
  stale = store->GetMany({"k"}, {ReadConsistency::kMayBeStale});
  EXPECT_EQ((*stale)[0].version, r2);
  EXPECT_EQ(store->Stats().stale_reads, 2u);

  // Without stale_reads_are_cheaper, kMayBeStale reads are latest.
  std::unique_ptr<MemoryStore> plain = MustOpen();
  (void)*plain->Commit({}, {Write::Put("k", "old")});
  plain->FreezeReplica();
  (void)*plain->Commit({}, {Write::Put("k", "new")});
  EXPECT_EQ((*plain->GetMany({"k"}, {ReadConsistency::kMayBeStale}))[0].value, "new");
}

TEST(MemoryStoreTest, SaysWhatItIsAndCountsForOperators) {
  std::unique_ptr<MemoryStore> store = MustOpen();
  EXPECT_EQ(store->Kind(), "memory");
  (void)*store->Commit({}, {Write::Put("k", "v")});
  (void)store->Commit({{"k", 0}}, {}).status();
  std::map<std::string, double> stats;
  for (const StoreStatistic& s : store->Statistics()) stats[s.name] = s.value;
  EXPECT_EQ(stats["commits"], 1);
  EXPECT_EQ(stats["commit_conflicts"], 1);
}

TEST(MemoryStoreTest, LimitsAreEnforced) {
  MemoryStoreOptions small;
  small.max_key_bytes = 8;
  small.max_commit_bytes = 32;
  std::unique_ptr<MemoryStore> store = MustOpen(small);
  const std::string long_key(9, 'k');
  EXPECT_EQ(store->Get(long_key).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->GetMany({"a", long_key}, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->Scan({.prefix = long_key, .start_after = "", .limit = 10}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->Commit({{long_key, 0}}, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->Commit({}, {Write::Put("k", std::string(40, 'v'))}).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_FALSE(store->Get("k")->present()) << "a refused commit applies nothing";
  EXPECT_EQ(store->Stats().commits_failed, 2u);
  small.max_key_bytes = 0;
  EXPECT_FALSE(OpenMemoryStore(small).ok());
}

}  // namespace
}  // namespace baton::storage
