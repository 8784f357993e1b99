// The RocksDB backend: the shared contract tests, plus what only an embedded
// store on a local disk can be tested for (kill -9, group commit, full disk).
#include "storage/rocksdb/rocksdb_store.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/storage/rocksdb_test_util.h"
#include "tests/storage/store_contract_test.h"
#include "tests/testing/require_root.h"
#include "tests/testing/test_seed.h"

namespace baton::storage {
namespace {

using testing::ForkAndKillAfterFirstAck;
using testing::TempDir;

RocksDbOptions OptionsFor(const std::string& dir) {
  RocksDbOptions options;
  options.path = dir + "/db";
  return options;
}

std::unique_ptr<RocksDbStore> MustOpen(const RocksDbOptions& options) {
  absl::StatusOr<std::unique_ptr<RocksDbStore>> store = OpenRocksDb(options);
  EXPECT_TRUE(store.ok()) << store.status();
  if (!store.ok()) return nullptr;
  return std::move(*store);
}

using baton::testing::TestSeed;

// ---------------------------------------------------------------------------
// The contract, on a fresh directory per test.

testing::StoreOpener NewRocksDbOpener() {
  auto dir = std::make_shared<TempDir>();
  return [dir]() -> absl::StatusOr<std::unique_ptr<StableStore>> {
    return OpenRocksDbStore(OptionsFor(dir->path()));
  };
}

using testing::StoreContractTest;
INSTANTIATE_TEST_SUITE_P(RocksDb, StoreContractTest,
                         ::testing::Values(testing::StoreContractParam{
                             "RocksDb", [] { return NewRocksDbOpener(); }}),
                         testing::StoreContractParamName);

// ---------------------------------------------------------------------------
// Closed store, options, second opener.

TEST(RocksDbStoreTest, ClosedStoreIsUnavailable) {
  TempDir dir;
  std::unique_ptr<RocksDbStore> store = MustOpen(OptionsFor(dir.path()));
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Commit({}, {Write::Put("k", "v")}).ok());
  ASSERT_TRUE(store->Close().ok());

  EXPECT_EQ(store->Get("k").status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store->Scan({}).status().code(), absl::StatusCode::kUnavailable);
  absl::StatusOr<uint64_t> commit = store->Commit({}, {Write::Put("k", "w")});
  EXPECT_EQ(commit.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(commit.status().message(), "closed"))
      << commit.status();
  EXPECT_EQ(store->Ping().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(store->Close().ok()) << "Close is idempotent";

  // Nothing was written after the close.
  store.reset();
  store = MustOpen(OptionsFor(dir.path()));
  ASSERT_NE(store, nullptr);
  absl::StatusOr<Versioned> v = store->Get("k");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->value, "v");
}

TEST(RocksDbStoreTest, CloseWhileCommittingFailsCleanly) {
  TempDir dir;
  std::unique_ptr<RocksDbStore> store = MustOpen(OptionsFor(dir.path()));
  ASSERT_NE(store, nullptr);
  std::atomic<int> unexpected{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        absl::StatusOr<uint64_t> r =
            store->Commit({}, {Write::Put(absl::StrCat(t, "/", i), "v")});
        if (!r.ok() && r.status().code() != absl::StatusCode::kUnavailable) {
          unexpected++;
        }
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_TRUE(store->Close().ok());
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(unexpected.load(), 0);
}

TEST(RocksDbStoreTest, SecondOpenOfSameDirectoryIsUnavailable) {
  TempDir dir;
  std::unique_ptr<RocksDbStore> store = MustOpen(OptionsFor(dir.path()));
  ASSERT_NE(store, nullptr);
  absl::StatusOr<std::unique_ptr<RocksDbStore>> second =
      OpenRocksDb(OptionsFor(dir.path()));
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable)
      << second.status();
}

TEST(RocksDbStoreTest, BadOptionsAndOversizedCallsAreRefused) {
  TempDir dir;
  EXPECT_EQ(OpenRocksDb(RocksDbOptions{}).status().code(),
            absl::StatusCode::kInvalidArgument);
  RocksDbOptions missing = OptionsFor(dir.path());
  missing.create_if_missing = false;
  EXPECT_EQ(OpenRocksDb(missing).status().code(),
            absl::StatusCode::kInvalidArgument);

  RocksDbOptions options = OptionsFor(dir.path());
  options.max_key_bytes = 8;
  options.max_commit_bytes = 100;
  std::unique_ptr<RocksDbStore> store = MustOpen(options);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->Get("123456789").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->Commit({}, {Write::Put("123456789", "")}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->Commit({}, {Write::Put("k", std::string(200, 'x'))})
                .status()
                .code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_FALSE(store->Get("k")->present());
}

// ---------------------------------------------------------------------------
// Group commit: concurrent synced commits share fsyncs.

struct GroupRun {
  uint64_t commits = 0;
  uint64_t batches = 0;
  uint64_t fsyncs = 0;
};

GroupRun RunConcurrentCommits(const RocksDbOptions& options, int threads,
                              int per_thread) {
  std::unique_ptr<RocksDbStore> store = MustOpen(options);
  if (store == nullptr) return {};
  std::atomic<int> failures{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        std::string key = absl::StrCat("g/", t, "/", i);
        if (!store->Commit({{key, 0}}, {Write::Put(key, "v")}).ok()) failures++;
      }
    });
  }
  for (std::thread& w : workers) w.join();
  EXPECT_EQ(failures.load(), 0);
  for (int t = 0; t < threads; ++t) {
    for (int i = 0; i < per_thread; ++i) {
      EXPECT_TRUE(store->Get(absl::StrCat("g/", t, "/", i))->present());
    }
  }
  RocksDbStoreStats stats = store->Stats();
  return GroupRun{stats.commits_ok, stats.batches_written, stats.wal_syncs};
}

TEST(RocksDbStoreTest, ConcurrentSyncedCommitsShareFsyncs) {
  constexpr int kThreads = 16;
  constexpr int kPerThread = 40;
  TempDir dir;
  RocksDbOptions options = OptionsFor(dir.path());
  options.sync = true;
  GroupRun grouped = RunConcurrentCommits(options, kThreads, kPerThread);
  ASSERT_EQ(grouped.commits, uint64_t{kThreads * kPerThread});
  std::cout << "group commit: " << grouped.commits << " commits in "
            << grouped.batches << " batches, " << grouped.fsyncs
            << " fsyncs\n";
  EXPECT_LE(grouped.batches, grouped.commits / 3)
      << "concurrent commits should share batches";
  EXPECT_LE(grouped.fsyncs, grouped.commits / 3)
      << "concurrent commits should share fsyncs";

  // The counters measure what they claim: with groups of one commit, one
  // batch each (an fsync may still cover several of them).
  TempDir dir2;
  RocksDbOptions single = OptionsFor(dir2.path());
  single.max_group_commits = 1;
  GroupRun ungrouped = RunConcurrentCommits(single, 4, 10);
  EXPECT_EQ(ungrouped.batches, ungrouped.commits);
  EXPECT_LE(ungrouped.fsyncs, ungrouped.commits);
  EXPECT_GE(ungrouped.fsyncs, 1u);
}

// ---------------------------------------------------------------------------
// kill -9: every acknowledged commit survives.

// One acknowledged commit, sent by the child over a pipe (atomic: < PIPE_BUF).
struct Ack {
  uint32_t thread;
  uint32_t seq;
  uint64_t revision;
};

std::string AckKey(int round, uint32_t thread, uint32_t seq) {
  return absl::StrCat("kill/", round, "/", thread, "/", seq);
}

std::string AckValue(uint32_t thread, uint32_t seq) {
  return absl::StrCat("value-", thread, "-", seq, std::string(100, 'x'));
}

// The child: commits from several threads until killed (bounded anyway).
[[noreturn]] void RunCommitChild(const RocksDbOptions& options, int round,
                                 int ack_fd) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  absl::StatusOr<std::unique_ptr<StableStore>> store =
      OpenRocksDbStore(options);
  if (!store.ok()) ::_exit(2);
  constexpr uint32_t kThreads = 6;
  std::vector<std::thread> threads;
  for (uint32_t t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (uint32_t seq = 0; seq < 20000; ++seq) {
        std::string key = AckKey(round, t, seq);
        absl::StatusOr<uint64_t> r = (*store)->Commit(
            {{key, 0}}, {Write::Put(key, AckValue(t, seq)),
                         Write::Put(absl::StrCat("kill/last/", t), key)});
        if (!r.ok()) ::_exit(3);
        Ack ack{t, seq, *r};
        if (::write(ack_fd, &ack, sizeof(ack)) != sizeof(ack)) ::_exit(4);
      }
    });
  }
  for (std::thread& th : threads) th.join();
  ::_exit(0);
}

TEST(RocksDbStoreTest, KillNineLosesNoAcknowledgedCommit) {
  const uint32_t seed = TestSeed();
  // Flushed before fork(), or the child would inherit the unwritten text.
  std::cout << "seed=" << seed << " (rerun with BATON_TEST_SEED=" << seed
            << ")" << std::endl;
  SCOPED_TRACE(absl::StrCat("seed=", seed));
  std::mt19937 rng(seed);
  TempDir dir;
  RocksDbOptions options = OptionsFor(dir.path());
  uint64_t last_revision = 0;

  for (int round = 0; round < 5; ++round) {
    // Killed at a random moment after the first acknowledgement.
    std::vector<Ack> acks;
    ASSERT_NO_FATAL_FAILURE(ForkAndKillAfterFirstAck<Ack>(
        [&](int fd) { RunCommitChild(options, round, fd); },
        std::chrono::milliseconds(10 + rng() % 400), &acks));

    std::unique_ptr<RocksDbStore> store = MustOpen(options);
    ASSERT_NE(store, nullptr);
    uint64_t max_acked = 0;
    for (const Ack& ack : acks) {
      absl::StatusOr<Versioned> v = store->Get(AckKey(round, ack.thread, ack.seq));
      ASSERT_TRUE(v.ok()) << v.status();
      ASSERT_TRUE(v->present())
          << "round " << round << ": acknowledged commit lost: thread "
          << ack.thread << " seq " << ack.seq;
      EXPECT_EQ(v->version, ack.revision);
      EXPECT_EQ(v->value, AckValue(ack.thread, ack.seq));
      EXPECT_GT(ack.revision, last_revision) << "revisions grow across rounds";
      max_acked = std::max(max_acked, ack.revision);
    }
    absl::StatusOr<uint64_t> next = store->Commit({}, {Write::Put("kill/after", "x")});
    ASSERT_TRUE(next.ok()) << next.status();
    EXPECT_GT(*next, max_acked) << "revision counter went back after kill -9";
    last_revision = *next;
    std::cout << "round " << round << ": " << acks.size()
              << " acknowledged commits survived kill -9\n";
  }
}

// ---------------------------------------------------------------------------
// Full disk: a small tmpfs in a private mount namespace.

TEST(RocksDbStoreTest, FullDiskIsUnavailableAndRecovers) {
  BATON_REQUIRE_ROOT();
  // A private mount namespace: the tmpfs is invisible to everyone else and
  // disappears with this process even if the test dies.
  ASSERT_EQ(::unshare(CLONE_NEWNS), 0) << std::strerror(errno);
  ASSERT_EQ(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), 0)
      << std::strerror(errno);
  TempDir mnt;
  ASSERT_EQ(::mount("tmpfs", mnt.path().c_str(), "tmpfs", 0, "size=24m"), 0)
      << std::strerror(errno);

  RocksDbOptions options = OptionsFor(mnt.path());
  options.write_buffer_bytes = 1 << 20;
  std::unique_ptr<RocksDbStore> store = MustOpen(options);
  ASSERT_NE(store, nullptr);

  std::map<std::string, uint64_t> acked;
  const std::string value(32 << 10, 'v');
  for (int i = 0; i < 20; ++i) {
    std::string key = absl::StrCat("before/", i);
    absl::StatusOr<uint64_t> r = store->Commit({}, {Write::Put(key, value)});
    ASSERT_TRUE(r.ok()) << r.status();
    acked[key] = *r;
  }

  // Fill the file system.
  const std::string filler = mnt.path() + "/filler";
  {
    int fd = ::open(filler.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT_GE(fd, 0);
    std::string chunk(1 << 20, 'f');
    for (int i = 0; i < 64; ++i) {
      if (::write(fd, chunk.data(), chunk.size()) < 0) break;
    }
    // Whatever is left in smaller pieces.
    for (int i = 0; i < 1024; ++i) {
      if (::write(fd, chunk.data(), 4096) < 0) break;
    }
    ::close(fd);
  }

  // RocksDB may still use space it preallocated for its log; keep committing
  // until the disk is felt, and a little longer: after a failure the store
  // reopens RocksDB, which frees some space, so commits may succeed and fail
  // again. Every commit is two keys; a failed one must leave neither.
  absl::Status first_failure;
  absl::Status failure;
  int failures = 0;
  for (int i = 0; i < 2000 && failures < 3; ++i) {
    std::string a = absl::StrCat("full/a/", i), b = absl::StrCat("full/b/", i);
    absl::StatusOr<uint64_t> r =
        store->Commit({}, {Write::Put(a, value), Write::Put(b, value)});
    if (r.ok()) {
      acked[a] = acked[b] = *r;
      continue;
    }
    ++failures;
    failure = r.status();
    if (failures == 1) first_failure = failure;
    EXPECT_EQ(failure.code(), absl::StatusCode::kUnavailable) << failure;
    EXPECT_FALSE(store->Get(a).value_or(Versioned{"", 1}).present())
        << "failed commit half-applied: " << failure;
    EXPECT_FALSE(store->Get(b).value_or(Versioned{"", 1}).present())
        << "failed commit half-applied: " << failure;
  }
  ASSERT_GT(failures, 0) << "the disk never filled";
  std::cout << "on a full disk: " << first_failure << "\n";
  // The first failure is the disk filling up; later ones may be RocksDB's
  // background work failing in other ways on the still-full disk.
  EXPECT_TRUE(absl::StrContains(first_failure.message(), "disk full"))
      << first_failure;

  for (const auto& [key, revision] : acked) {
    absl::StatusOr<Versioned> v = store->Get(key);
    ASSERT_TRUE(v.ok()) << key << ": " << v.status();
    EXPECT_EQ(v->version, revision) << key;
  }
  // Free the space: commits succeed again (the store resumes or reopens
  // RocksDB by itself).
  ASSERT_EQ(::unlink(filler.c_str()), 0);
  absl::StatusOr<uint64_t> after = absl::UnavailableError("not tried");
  for (int i = 0; i < 50 && !after.ok(); ++i) {
    after = store->Commit({}, {Write::Put("after", "ok")});
    if (!after.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_TRUE(store->Ping().ok());
  std::cout << "recoveries: " << store->Stats().recoveries << "\n";
  for (const auto& [key, revision] : acked) {
    absl::StatusOr<Versioned> v = store->Get(key);
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(v->version, revision) << key;
    EXPECT_LT(revision, *after);
  }

  // And everything survives a restart.
  store.reset();
  store = MustOpen(options);
  ASSERT_NE(store, nullptr);
  for (const auto& [key, revision] : acked) {
    EXPECT_EQ(store->Get(key)->version, revision) << key;
  }
  EXPECT_EQ(store->Get("after")->version, *after);
  store.reset();
  EXPECT_EQ(::umount2(mnt.path().c_str(), MNT_DETACH), 0) << std::strerror(errno);
}

}  // namespace
}  // namespace baton::storage
