// The RocksDB store's asynchronous commit path (CommitAsync): it shares the
// group-commit queue with synchronous commits, completes every callback exactly
// once, and never loses or double-applies an update.
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "storage/rocksdb/rocksdb_store.h"

namespace baton::storage {
namespace {

std::string FreshDir(const char* name) {
  std::string dir = absl::StrCat(::testing::TempDir(), "/rocksdb-async-", name,
                                 "-", ::getpid());
  std::filesystem::remove_all(dir);
  return dir;
}

// Compare-and-set increments, half of the threads synchronous and half
// asynchronous: the counter ends equal to the number of successful commits.
TEST(RocksDbAsyncCommit, MixedSyncAndAsyncCasLosesNoUpdate) {
  const std::string dir = FreshDir("cas");
  absl::StatusOr<std::unique_ptr<RocksDbStore>> opened =
      OpenRocksDb({.path = dir});
  ASSERT_TRUE(opened.ok()) << opened.status();
  RocksDbStore& store = **opened;
  ASSERT_TRUE(store.CommitsAsynchronously());
  std::atomic<int> ok{0}, conflict{0}, other{0};
  auto count = [&](const absl::StatusOr<uint64_t>& r) {
    if (r.ok()) {
      ++ok;
    } else if (IsConflict(r.status())) {
      ++conflict;
    } else {
      ++other;
    }
  };
  constexpr int kThreads = 6, kPerThread = 300;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        absl::StatusOr<Versioned> cur = store.Get("ctr");
        ASSERT_TRUE(cur.ok()) << cur.status();
        uint64_t v = 0;
        if (cur->present()) {
          ASSERT_TRUE(absl::SimpleAtoi(cur->value, &v));
        }
        std::vector<Condition> conditions{{"ctr", cur->version}};
        std::vector<Write> writes{Write::Put("ctr", absl::StrCat(v + 1))};
        if (t % 2 == 0) {
          count(store.Commit(conditions, writes));
        } else {
          absl::Notification done;
          store.CommitAsync(conditions, writes,
                            [&](absl::StatusOr<uint64_t> r) {
                              count(r);
                              done.Notify();
                            });
          done.WaitForNotification();
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(ok + conflict, kThreads * kPerThread);
  absl::StatusOr<Versioned> final_value = store.Get("ctr");
  ASSERT_TRUE(final_value.ok());
  EXPECT_EQ(final_value->value, absl::StrCat(ok.load()));
  std::filesystem::remove_all(dir);
}

// Closing with thousands of asynchronous commits queued: every callback runs
// exactly once, each commit either succeeded (and is readable) or failed with
// kUnavailable.
TEST(RocksDbAsyncCommit, CloseWithCommitsQueuedCompletesEveryCallback) {
  const std::string dir = FreshDir("close");
  absl::StatusOr<std::unique_ptr<RocksDbStore>> opened =
      OpenRocksDb({.path = dir});
  ASSERT_TRUE(opened.ok()) << opened.status();
  RocksDbStore& store = **opened;
  constexpr int kCommits = 5000;
  std::vector<std::atomic<int>> calls(kCommits);
  std::vector<std::atomic<bool>> succeeded(kCommits);
  std::atomic<int> other{0};
  absl::BlockingCounter pending(kCommits);
  for (int i = 0; i < kCommits; ++i) {
    store.CommitAsync({}, {Write::Put(absl::StrCat("k", i), "v")},
                      [&, i](absl::StatusOr<uint64_t> r) {
                        ++calls[i];
                        if (r.ok()) {
                          succeeded[i] = true;
                        } else if (r.status().code() !=
                                   absl::StatusCode::kUnavailable) {
                          ++other;
                        }
                        pending.DecrementCount();
                      });
    if (i == kCommits / 2) {
      ASSERT_TRUE(store.Close().ok());
    }
  }
  pending.Wait();
  EXPECT_EQ(other.load(), 0);
  int ok = 0;
  for (int i = 0; i < kCommits; ++i) {
    EXPECT_EQ(calls[i].load(), 1) << "commit " << i;
    ok += succeeded[i] ? 1 : 0;
  }
  EXPECT_LE(ok, kCommits / 2 + 1) << "commits queued after Close() succeeded";
  opened->reset();
  // Every commit reported OK is durable and readable after reopening.
  absl::StatusOr<std::unique_ptr<RocksDbStore>> reopened =
      OpenRocksDb({.path = dir});
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  for (int i = 0; i < kCommits; ++i) {
    if (!succeeded[i]) continue;
    absl::StatusOr<Versioned> v = (*reopened)->Get(absl::StrCat("k", i));
    ASSERT_TRUE(v.ok());
    EXPECT_TRUE(v->present()) << "acknowledged commit k" << i << " lost";
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace baton::storage
