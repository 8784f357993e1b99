// The RocksDB store's overlapped group commit (storage/rocksdb/rocksdb_store.h):
// a group is checked and written to the WAL while the previous group's fsync
// runs. Whatever the timing, these must hold:
//   - a commit's conditions see every commit written before it, also one
//     whose fsync has not finished;
//   - nothing is answered, or visible to reads, before its own fsync, and
//     groups are answered in order: a commit is never acknowledged before an
//     earlier one it depends on;
//   - a failed fsync fails its group and every group written after it (they
//     were checked against its writes), and the store recovers by itself;
//   - a crash loses nothing acknowledged, also when the WAL's unsynced tail is
//     lost with it (a power loss, simulated after kill -9 of a child that
//     commits through dependent chains), and what survives of each chain is
//     a prefix of it.
// WAL fsyncs are held, failed and recorded through a file-system wrapper
// (tests/storage/rocksdb_test_util.h).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "storage/rocksdb/internal/rocksdb_env.h"
#include "storage/rocksdb/rocksdb_store.h"
#include "tests/storage/rocksdb_test_util.h"
#include "tests/testing/test_seed.h"

namespace baton::storage {
namespace {

using rocksdb_internal::OpenRocksDbOnEnv;
using testing::NewHookedEnv;
using testing::ForkAndKillAfterFirstAck;
using testing::TempDir;
using testing::WalHooks;

// Holds WAL fsyncs until released and fails the next one on demand.
class SyncGate : public WalHooks {
 public:
  // From now on a WAL fsync waits (in the store's thread that does it)
  // until Release().
  void Hold() {
    absl::MutexLock lock(&mu_);
    held_ = true;
  }
  void Release() {
    absl::MutexLock lock(&mu_);
    held_ = false;
  }
  // The next WAL fsync fails (once released) without syncing.
  void FailNext() {
    absl::MutexLock lock(&mu_);
    fail_next_ = true;
  }
  int started() {
    absl::MutexLock lock(&mu_);
    return started_;
  }
  // Waits until `n` WAL fsyncs have started; false after 30 s.
  bool WaitForSyncs(int n) {
    absl::MutexLock lock(&mu_);
    SyncsArgs args{this, n};
    return mu_.AwaitWithTimeout(absl::Condition(&SyncsStarted, &args),
                                absl::Seconds(30));
  }

  rocksdb::IOStatus BeforeSync(int) override {
    absl::MutexLock lock(&mu_);
    ++started_;
    mu_.Await(absl::Condition(&NotHeld, this));
    if (fail_next_) {
      fail_next_ = false;
      return rocksdb::IOStatus::IOError("injected WAL fsync failure");
    }
    return rocksdb::IOStatus::OK();
  }

 private:
  struct SyncsArgs {
    SyncGate* gate;
    int n;
  };
  static bool SyncsStarted(SyncsArgs* a) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return a->gate->started_ >= a->n;
  }
  static bool NotHeld(SyncGate* g) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return !g->held_;
  }

  absl::Mutex mu_;
  bool held_ ABSL_GUARDED_BY(mu_) = false;
  bool fail_next_ ABSL_GUARDED_BY(mu_) = false;
  int started_ ABSL_GUARDED_BY(mu_) = 0;
};

// The answers of named commits, in the order they came.
class Answers {
 public:
  StableStore::CommitCallback For(std::string name) {
    return [this, name](absl::StatusOr<uint64_t> r) { Add(name, std::move(r)); };
  }
  void Add(const std::string& name, absl::StatusOr<uint64_t> r) {
    absl::MutexLock lock(&mu_);
    order_.push_back(name);
    results_.emplace(name, std::move(r));
  }
  // Waits until `n` answers came; false after 30 s.
  bool WaitFor(size_t n) {
    absl::MutexLock lock(&mu_);
    Args args{this, n};
    return mu_.AwaitWithTimeout(absl::Condition(&Reached, &args),
                                absl::Seconds(30));
  }
  size_t size() {
    absl::MutexLock lock(&mu_);
    return order_.size();
  }
  std::vector<std::string> order() {
    absl::MutexLock lock(&mu_);
    return order_;
  }
  absl::StatusOr<uint64_t> result(const std::string& name) {
    absl::MutexLock lock(&mu_);
    auto it = results_.find(name);
    if (it == results_.end()) return absl::NotFoundError("no answer");
    return it->second;
  }

 private:
  struct Args {
    Answers* answers;
    size_t n;
  };
  static bool Reached(Args* a) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return a->answers->order_.size() >= a->n;
  }

  absl::Mutex mu_;
  std::vector<std::string> order_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, absl::StatusOr<uint64_t>> results_ ABSL_GUARDED_BY(mu_);
};

// Polls `done` (the store offers no hook for "a group was written"); false
// after 30 s.
bool Eventually(const std::function<bool()>& done) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

RocksDbOptions OptionsIn(const TempDir& dir) {
  RocksDbOptions options;
  options.path = dir.path() + "/db";
  return options;
}

std::unique_ptr<RocksDbStore> MustOpenOn(const RocksDbOptions& options,
                                         rocksdb::Env* env) {
  absl::StatusOr<std::unique_ptr<RocksDbStore>> store =
      OpenRocksDbOnEnv(options, env);
  EXPECT_TRUE(store.ok()) << store.status();
  if (!store.ok()) return nullptr;
  return std::move(*store);
}

// ---------------------------------------------------------------------------
// Conditions see a write whose fsync is running; answers and reads wait for
// their fsync; answers come in order.

TEST(RocksDbOverlapTest, LaterCommitsCheckAgainstAWriteStillBeingSynced) {
  TempDir dir;
  SyncGate gate;
  std::unique_ptr<rocksdb::Env> env = NewHookedEnv(&gate);
  std::unique_ptr<RocksDbStore> store = MustOpenOn(OptionsIn(dir), env.get());
  ASSERT_NE(store, nullptr);
  const uint64_t r0 = store->CurrentRevision();
  Answers answers;

  gate.Hold();
  const int syncs = gate.started();
  store->CommitAsync({{"k", 0}}, {Write::Put("k", "a")}, answers.For("a"));
  ASSERT_TRUE(gate.WaitForSyncs(syncs + 1)) << "a's fsync never started";
  // a's fsync is running (held). b's condition holds only if b's check sees
  // a's write; c expects the key absent, which a's write makes false.
  store->CommitAsync({{"k", r0 + 1}}, {Write::Put("k", "b")}, answers.For("b"));
  store->CommitAsync({{"k", 0}}, {Write::Put("k", "c")}, answers.For("c"));
  // d, synchronous, depends on b (on a's write through it).
  std::thread d([&] {
    answers.Add("d", store->Commit({{"k", r0 + 2}}, {Write::Put("k", "d")}));
  });
  // b (with c) is checked and written while a's fsync is still held.
  ASSERT_TRUE(Eventually([&] { return store->Stats().batches_written >= 2; }))
      << "no group was written while a's fsync ran";

  EXPECT_EQ(answers.size(), 0u) << "a commit was answered before its fsync";
  absl::StatusOr<Versioned> k = store->Get("k");
  ASSERT_TRUE(k.ok()) << k.status();
  EXPECT_FALSE(k->present()) << "a read saw a commit before its fsync: "
                             << k->value;
  absl::StatusOr<std::vector<KeyValue>> scanned = store->Scan({});
  ASSERT_TRUE(scanned.ok()) << scanned.status();
  EXPECT_TRUE(scanned->empty()) << "a scan saw a commit before its fsync";
  EXPECT_EQ(store->CurrentRevision(), r0);

  gate.Release();
  ASSERT_TRUE(answers.WaitFor(4));
  d.join();
  const std::vector<std::string> order = answers.order();
  ASSERT_EQ(order.front(), "a") << "a commit was answered before the one it "
                                   "depends on";
  EXPECT_EQ(answers.result("a").value_or(0), r0 + 1);
  EXPECT_EQ(answers.result("b").value_or(0), r0 + 2)
      << answers.result("b").status();
  EXPECT_EQ(answers.result("d").value_or(0), r0 + 3)
      << answers.result("d").status();
  absl::StatusOr<uint64_t> c = answers.result("c");
  EXPECT_TRUE(IsConflict(c.status())) << c.status();
  EXPECT_EQ(ConflictKey(c.status()).value_or(""), "k");

  k = store->Get("k");
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(k->value, "d");
  EXPECT_EQ(k->version, r0 + 3);
  EXPECT_EQ(store->CurrentRevision(), r0 + 3);
  EXPECT_GE(store->Stats().wal_syncs, 2u);
}

// A commit with conditions only (a read confirmation) that checks against a
// write still being synced is answered after that write's fsync, not before.
TEST(RocksDbOverlapTest, ConditionsOnlyCommitWaitsForTheWriteItChecked) {
  TempDir dir;
  SyncGate gate;
  std::unique_ptr<rocksdb::Env> env = NewHookedEnv(&gate);
  std::unique_ptr<RocksDbStore> store = MustOpenOn(OptionsIn(dir), env.get());
  ASSERT_NE(store, nullptr);
  const uint64_t r0 = store->CurrentRevision();
  Answers answers;

  gate.Hold();
  const int syncs = gate.started();
  store->CommitAsync({}, {Write::Put("x", "1")}, answers.For("write"));
  ASSERT_TRUE(gate.WaitForSyncs(syncs + 1));
  store->CommitAsync({{"x", r0 + 1}}, {}, answers.For("confirm"));
  // The confirmation was checked (it needs no batch); it must not be
  // answered while the write it saw can still be lost.
  ASSERT_TRUE(Eventually([&] { return store->Stats().groups >= 2; }));
  EXPECT_EQ(answers.size(), 0u);

  gate.Release();
  ASSERT_TRUE(answers.WaitFor(2));
  EXPECT_EQ(answers.order(), (std::vector<std::string>{"write", "confirm"}));
  EXPECT_EQ(answers.result("confirm").value_or(0), r0 + 1)
      << answers.result("confirm").status();
}

// ---------------------------------------------------------------------------
// A failed fsync.

TEST(RocksDbOverlapTest, FailedFsyncFailsTheGroupsWrittenAfterItAndRecovers) {
  TempDir dir;
  SyncGate gate;
  std::unique_ptr<rocksdb::Env> env = NewHookedEnv(&gate);
  const RocksDbOptions options = OptionsIn(dir);
  std::unique_ptr<RocksDbStore> store = MustOpenOn(options, env.get());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Commit({}, {Write::Put("before", "ok")}).ok());
  const uint64_t r0 = store->CurrentRevision();
  Answers answers;

  gate.Hold();
  const int syncs = gate.started();
  store->CommitAsync({}, {Write::Put("x", "1")}, answers.For("a"));
  ASSERT_TRUE(gate.WaitForSyncs(syncs + 1));
  // b depends on a and is written while a's fsync runs.
  const uint64_t batches = store->Stats().batches_written;
  store->CommitAsync({{"x", r0 + 1}}, {Write::Put("x", "2")}, answers.For("b"));
  ASSERT_TRUE(
      Eventually([&] { return store->Stats().batches_written > batches; }));
  gate.FailNext();
  gate.Release();

  ASSERT_TRUE(answers.WaitFor(2));
  EXPECT_EQ(answers.order(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(answers.result("a").status().code(),
            absl::StatusCode::kUnavailable)
      << answers.result("a").status();
  EXPECT_EQ(answers.result("b").status().code(),
            absl::StatusCode::kUnavailable)
      << "b was acknowledged although the write it depends on failed: "
      << answers.result("b").status();

  // The store recovers by itself; versions never repeat.
  absl::StatusOr<uint64_t> after = store->Commit({}, {Write::Put("y", "ok")});
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_GT(*after, r0 + 2);
  EXPECT_TRUE(store->Ping().ok());
  EXPECT_GE(store->Stats().recoveries, 1u);
  // a and b have an unknown outcome: x holds nothing, or one of them whole.
  auto x_is_whole = [&](RocksDbStore& s) {
    absl::StatusOr<Versioned> x = s.Get("x");
    ASSERT_TRUE(x.ok()) << x.status();
    if (!x->present()) return;
    EXPECT_TRUE((x->value == "1" && x->version == r0 + 1) ||
                (x->value == "2" && x->version == r0 + 2))
        << x->value << " at " << x->version;
  };
  x_is_whole(*store);

  store.reset();
  absl::StatusOr<std::unique_ptr<RocksDbStore>> reopened = OpenRocksDb(options);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  absl::StatusOr<Versioned> y = (*reopened)->Get("y");
  ASSERT_TRUE(y.ok());
  EXPECT_EQ(y->version, *after);
  EXPECT_EQ((*reopened)->Get("before")->value, "ok");
  x_is_whole(**reopened);
}

// ---------------------------------------------------------------------------
// kill -9 plus the loss of everything not fsync'd (a power loss).

// How many bytes of each WAL file the child had synced, in memory shared
// with the parent, so that after kill -9 the parent can drop the rest of
// each file, as a power loss would.
struct SyncedWals {
  static constexpr int kMax = 1024;
  struct Wal {
    std::atomic<uint64_t> number;  // <number>.log
    std::atomic<uint64_t> synced;  // Bytes known durable.
  };
  std::atomic<int> count;
  Wal wal[kMax];
};

// In the child: records synced sizes; stretches fsyncs by a random 0-2 ms so
// that a group is often written while the previous one is being synced.
class SyncRecorder : public WalHooks {
 public:
  SyncRecorder(SyncedWals* shared, uint32_t seed)
      : shared_(shared), rng_(seed) {}

  int OnCreate(const std::string& name) override {
    const int id = shared_->count.fetch_add(1);
    if (id >= SyncedWals::kMax) std::abort();
    const std::string base = std::filesystem::path(name).stem().string();
    uint64_t number = 0;
    if (!absl::SimpleAtoi(base, &number)) std::abort();
    shared_->wal[id].synced = 0;
    shared_->wal[id].number = number;
    return id;
  }
  void OnAppend(int id, uint64_t bytes) override {
    appended_[id].fetch_add(bytes);
  }
  rocksdb::IOStatus BeforeSync(int id) override {
    // What this fsync covers: everything handed to the file before it.
    covered_[id] = appended_[id].load();
    uint32_t delay_us;
    {
      absl::MutexLock lock(&mu_);
      delay_us = rng_() % 2000;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(delay_us));
    return rocksdb::IOStatus::OK();
  }
  void AfterSync(int id) override {
    std::atomic<uint64_t>& synced = shared_->wal[id].synced;
    uint64_t now = synced.load();
    while (now < covered_[id] && !synced.compare_exchange_weak(now, covered_[id])) {
    }
  }

 private:
  SyncedWals* const shared_;
  std::atomic<uint64_t> appended_[SyncedWals::kMax] = {};
  uint64_t covered_[SyncedWals::kMax] = {};  // One fsync per file at a time.
  absl::Mutex mu_;
  std::mt19937 rng_ ABSL_GUARDED_BY(mu_);
};

// Drops every WAL file's unsynced tail, as a power loss after the kill.
void DropUnsyncedWalData(const std::string& db, const SyncedWals& shared) {
  const int n = std::min(shared.count.load(), SyncedWals::kMax);
  for (int i = 0; i < n; ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "%06lu.log",
                  static_cast<unsigned long>(shared.wal[i].number.load()));
    const std::string path = db + "/" + name;
    std::error_code ec;
    const uintmax_t size = std::filesystem::file_size(path, ec);
    if (ec) continue;  // Deleted by RocksDB (its data is in an SST file).
    const uint64_t synced = shared.wal[i].synced.load();
    if (size > synced) {
      ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(synced)), 0)
          << path << ": " << std::strerror(errno);
    }
  }
}

// One acknowledged commit, sent by the child over a pipe (< PIPE_BUF: atomic).
struct Ack {
  uint32_t chain;
  uint32_t seq;
  uint64_t revision;
};

constexpr uint32_t kAsyncChains = 12;
constexpr uint32_t kSyncChains = 3;
constexpr uint32_t kMaxSeq = 100000;

std::string ChainKey(int round, uint32_t chain) {
  return absl::StrCat("chain/", round, "/", chain);
}
std::string StepKey(int round, uint32_t chain, uint32_t seq) {
  return absl::StrCat("step/", round, "/", chain, "/", seq);
}
std::string StepValue(uint32_t chain, uint32_t seq) {
  return absl::StrCat("v-", chain, "-", seq, std::string(64, 'x'));
}

// Step `seq` of `chain` depends on step seq-1: it expects the chain key at
// the version step seq-1 gave it, and moves it on.
std::pair<std::vector<Condition>, std::vector<Write>> Step(int round,
                                                           uint32_t chain,
                                                           uint32_t seq,
                                                           uint64_t previous) {
  return {{{ChainKey(round, chain), previous}},
          {Write::Put(ChainKey(round, chain), absl::StrCat(seq)),
           Write::Put(StepKey(round, chain, seq), StepValue(chain, seq))}};
}

// The child's asynchronous chains: each step issued from the previous one's
// callback, as the request pipeline drives the store.
class AsyncChain {
 public:
  AsyncChain(StableStore* store, int round, uint32_t chain, int ack_fd)
      : store_(store), round_(round), chain_(chain), ack_fd_(ack_fd) {}
  void Next(uint32_t seq, uint64_t previous) {
    if (seq >= kMaxSeq) return;
    auto [conditions, writes] = Step(round_, chain_, seq, previous);
    store_->CommitAsync(std::move(conditions), std::move(writes),
                        [this, seq](absl::StatusOr<uint64_t> r) {
                          if (!r.ok()) ::_exit(3);
                          Ack ack{chain_, seq, *r};
                          if (::write(ack_fd_, &ack, sizeof(ack)) !=
                              sizeof(ack)) {
                            ::_exit(4);
                          }
                          Next(seq + 1, *r);
                        });
  }

 private:
  StableStore* const store_;
  const int round_;
  const uint32_t chain_;
  const int ack_fd_;
};

[[noreturn]] void RunChainChild(const RocksDbOptions& options, int round,
                                int ack_fd, SyncedWals* shared, uint32_t seed) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  SyncRecorder recorder(shared, seed);
  std::unique_ptr<rocksdb::Env> env = NewHookedEnv(&recorder);
  absl::StatusOr<std::unique_ptr<RocksDbStore>> store =
      OpenRocksDbOnEnv(options, env.get());
  if (!store.ok()) ::_exit(2);
  std::vector<std::unique_ptr<AsyncChain>> chains;
  for (uint32_t c = 0; c < kAsyncChains; ++c) {
    chains.push_back(
        std::make_unique<AsyncChain>(store->get(), round, c, ack_fd));
    chains.back()->Next(0, 0);
  }
  std::vector<std::thread> threads;
  for (uint32_t c = kAsyncChains; c < kAsyncChains + kSyncChains; ++c) {
    threads.emplace_back([&, c] {
      uint64_t previous = 0;
      for (uint32_t seq = 0; seq < kMaxSeq; ++seq) {
        auto [conditions, writes] = Step(round, c, seq, previous);
        absl::StatusOr<uint64_t> r = (*store)->Commit(conditions, writes);
        if (!r.ok()) ::_exit(3);
        Ack ack{c, seq, *r};
        if (::write(ack_fd, &ack, sizeof(ack)) != sizeof(ack)) ::_exit(4);
        previous = *r;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (;;) ::pause();  // Until killed.
}

using baton::testing::TestSeed;

TEST(RocksDbOverlapTest, PowerLossAfterKillNineLosesNothingAcknowledged) {
  const uint32_t seed = TestSeed();
  // Flushed before fork(), or the child would inherit the unwritten text.
  std::cout << "seed=" << seed << " (rerun with BATON_TEST_SEED=" << seed
            << ")" << std::endl;
  SCOPED_TRACE(absl::StrCat("seed=", seed));
  std::mt19937 rng(seed);
  TempDir dir;
  RocksDbOptions options = OptionsIn(dir);
  // Small memtables: WAL files switch and memtables flush during a round.
  options.write_buffer_bytes = 256 << 10;
  void* mapped = ::mmap(nullptr, sizeof(SyncedWals), PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mapped, MAP_FAILED);
  auto* shared = new (mapped) SyncedWals();
  uint64_t last_revision = 0;

  for (int round = 0; round < 5; ++round) {
    shared->count = 0;
    const uint32_t child_seed = rng();
    std::vector<Ack> acks;
    ASSERT_NO_FATAL_FAILURE(ForkAndKillAfterFirstAck<Ack>(
        [&](int fd) { RunChainChild(options, round, fd, shared, child_seed); },
        std::chrono::milliseconds(50 + rng() % 400), &acks));

    DropUnsyncedWalData(options.path, *shared);
    absl::StatusOr<std::unique_ptr<RocksDbStore>> opened = OpenRocksDb(options);
    ASSERT_TRUE(opened.ok()) << opened.status();
    RocksDbStore& store = **opened;

    // Every acknowledged step survived, with its revision.
    std::map<uint32_t, uint32_t> max_acked;
    uint64_t max_revision = 0;
    for (const Ack& ack : acks) {
      absl::StatusOr<Versioned> v = store.Get(StepKey(round, ack.chain, ack.seq));
      ASSERT_TRUE(v.ok()) << v.status();
      ASSERT_TRUE(v->present())
          << "round " << round << ": acknowledged commit lost: chain "
          << ack.chain << " step " << ack.seq;
      EXPECT_EQ(v->version, ack.revision);
      EXPECT_EQ(v->value, StepValue(ack.chain, ack.seq));
      EXPECT_GT(ack.revision, last_revision) << "revisions grow across rounds";
      max_acked[ack.chain] = std::max(max_acked[ack.chain], ack.seq);
      max_revision = std::max(max_revision, ack.revision);
    }
    // What survived of each chain is a prefix: no step without the ones it
    // depends on, and the chain key names the last step.
    for (uint32_t c = 0; c < kAsyncChains + kSyncChains; ++c) {
      absl::StatusOr<Versioned> head = store.Get(ChainKey(round, c));
      ASSERT_TRUE(head.ok()) << head.status();
      if (!head->present()) {
        EXPECT_EQ(max_acked.count(c), 0u) << "chain " << c;
        EXPECT_FALSE(store.Get(StepKey(round, c, 0))->present()) << "chain " << c;
        continue;
      }
      uint32_t last = 0;
      ASSERT_TRUE(absl::SimpleAtoi(head->value, &last)) << head->value;
      if (max_acked.count(c)) {
        EXPECT_GE(last, max_acked[c]) << "chain " << c;
      }
      for (uint32_t s = 0; s <= last; ++s) {
        absl::StatusOr<Versioned> step = store.Get(StepKey(round, c, s));
        ASSERT_TRUE(step.ok() && step->present())
            << "round " << round << ": chain " << c << " step " << s
            << " lost although step " << last << " survived";
        if (s == last) {
          EXPECT_EQ(step->version, head->version);
        }
      }
      EXPECT_FALSE(store.Get(StepKey(round, c, last + 1))->present())
          << "chain " << c << ": a step survived beyond the chain's head";
      max_revision = std::max(max_revision, head->version);
    }
    absl::StatusOr<uint64_t> next =
        store.Commit({}, {Write::Put("after", absl::StrCat(round))});
    ASSERT_TRUE(next.ok()) << next.status();
    EXPECT_GT(*next, max_revision) << "revision counter went back";
    last_revision = *next;
    std::cout << "round " << round << ": " << acks.size()
              << " acknowledged commits survived kill -9 and the loss of "
                 "unsynced WAL data ("
              << shared->count.load() << " WAL files)\n";
  }
  shared->~SyncedWals();
  ::munmap(mapped, sizeof(SyncedWals));
}

}  // namespace
}  // namespace baton::storage
