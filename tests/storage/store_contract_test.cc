#include "tests/storage/store_contract_test.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace baton::storage::testing {
namespace {


// Unwraps a StatusOr in a test, failing (fatally) with its status.
#define BATON_ASSERT_OK_AND_ASSIGN(lhs, expr)                    \
  auto BATON_CONCAT_(status_or_, __LINE__) = (expr);             \
  ASSERT_TRUE(BATON_CONCAT_(status_or_, __LINE__).ok())          \
      << BATON_CONCAT_(status_or_, __LINE__).status().ToString(); \
  lhs = std::move(*BATON_CONCAT_(status_or_, __LINE__))
#define BATON_CONCAT_(a, b) BATON_CONCAT_INNER_(a, b)
#define BATON_CONCAT_INNER_(a, b) a##b

std::vector<Write> Puts(std::initializer_list<std::pair<std::string, std::string>> kvs) {
  std::vector<Write> writes;
  for (const auto& [k, v] : kvs) writes.push_back(Write::Put(k, v));
  return writes;
}

}  // namespace

void StoreContractTest::SetUp() {
  opener_ = GetParam().new_store();
  absl::StatusOr<std::unique_ptr<StableStore>> store = opener_();
  ASSERT_TRUE(store.ok()) << store.status();
  store_ = std::move(*store);
}

void StoreContractTest::Reopen() {
  store_.reset();
  absl::StatusOr<std::unique_ptr<StableStore>> store = opener_();
  ASSERT_TRUE(store.ok()) << store.status();
  store_ = std::move(*store);
}

namespace {

TEST_P(StoreContractTest, AbsentKeyHasVersionZero) {
  BATON_ASSERT_OK_AND_ASSIGN(Versioned v, store_->Get("never-written"));
  EXPECT_EQ(v.version, 0u);
  EXPECT_FALSE(v.present());
  EXPECT_EQ(v.value, "");
  ASSERT_TRUE(store_->Ping().ok());
}

TEST_P(StoreContractTest, CommitAssignsItsRevisionToEveryWrittenKey) {
  BATON_ASSERT_OK_AND_ASSIGN(uint64_t r1,
                             store_->Commit({}, Puts({{"a", "1"}, {"b", "2"}})));
  EXPECT_GT(r1, 0u);
  BATON_ASSERT_OK_AND_ASSIGN(Versioned a, store_->Get("a"));
  BATON_ASSERT_OK_AND_ASSIGN(Versioned b, store_->Get("b"));
  EXPECT_EQ(a.value, "1");
  EXPECT_EQ(a.version, r1);
  EXPECT_EQ(b.value, "2");
  EXPECT_EQ(b.version, r1);

  BATON_ASSERT_OK_AND_ASSIGN(uint64_t r2, store_->Commit({}, Puts({{"a", "3"}})));
  EXPECT_GT(r2, r1);
  BATON_ASSERT_OK_AND_ASSIGN(a, store_->Get("a"));
  BATON_ASSERT_OK_AND_ASSIGN(b, store_->Get("b"));
  EXPECT_EQ(a.value, "3");
  EXPECT_EQ(a.version, r2);
  EXPECT_EQ(b.version, r1) << "an unwritten key keeps its version";

  // A commit without writes checks its conditions and returns the current
  // revision, which is at least that of the last commit with writes.
  BATON_ASSERT_OK_AND_ASSIGN(uint64_t r3, store_->Commit({{"a", r2}}, {}));
  EXPECT_GE(r3, r2);
}

TEST_P(StoreContractTest, DeletedAndRecreatedKeyGetsLargerVersion) {
  BATON_ASSERT_OK_AND_ASSIGN(uint64_t r1, store_->Commit({}, Puts({{"k", "v1"}})));
  BATON_ASSERT_OK_AND_ASSIGN(uint64_t r2,
                             store_->Commit({{"k", r1}}, {Write::Delete("k")}));
  EXPECT_GT(r2, r1);
  BATON_ASSERT_OK_AND_ASSIGN(Versioned v, store_->Get("k"));
  EXPECT_FALSE(v.present());
  EXPECT_EQ(v.value, "");

  BATON_ASSERT_OK_AND_ASSIGN(uint64_t r3, store_->Commit({{"k", 0}}, Puts({{"k", "v2"}})));
  EXPECT_GT(r3, r2);
  BATON_ASSERT_OK_AND_ASSIGN(v, store_->Get("k"));
  EXPECT_EQ(v.value, "v2");
  EXPECT_EQ(v.version, r3);
  EXPECT_GT(v.version, r1) << "versions only grow, also across a delete";
}

TEST_P(StoreContractTest, DeleteOfAbsentKeySucceeds) {
  BATON_ASSERT_OK_AND_ASSIGN(uint64_t r, store_->Commit({}, {Write::Delete("nope")}));
  (void)r;
  BATON_ASSERT_OK_AND_ASSIGN(Versioned v, store_->Get("nope"));
  EXPECT_FALSE(v.present());
}

TEST_P(StoreContractTest, VersionsKeepGrowingAfterReopen) {
  BATON_ASSERT_OK_AND_ASSIGN(uint64_t r1, store_->Commit({}, Puts({{"x", "before"}})));
  BATON_ASSERT_OK_AND_ASSIGN(uint64_t r2, store_->Commit({}, Puts({{"y", "gone"}})));
  BATON_ASSERT_OK_AND_ASSIGN(uint64_t r3, store_->Commit({}, {Write::Delete("y")}));
  ASSERT_GT(r3, r2);
  ASSERT_NO_FATAL_FAILURE(Reopen());

  BATON_ASSERT_OK_AND_ASSIGN(Versioned x, store_->Get("x"));
  EXPECT_EQ(x.value, "before");
  EXPECT_EQ(x.version, r1);
  BATON_ASSERT_OK_AND_ASSIGN(Versioned y, store_->Get("y"));
  EXPECT_FALSE(y.present());

  BATON_ASSERT_OK_AND_ASSIGN(uint64_t r4, store_->Commit({{"x", r1}}, Puts({{"y", "again"}})));
  EXPECT_GT(r4, r3) << "the revision counter must survive a restart, also "
                       "when the last commit was a delete";
}

TEST_P(StoreContractTest, GetManyReadsEveryKeyInOrderAtBothConsistencies) {
  BATON_ASSERT_OK_AND_ASSIGN(uint64_t r1, store_->Commit({}, Puts({{"m1", "one"}})));
  BATON_ASSERT_OK_AND_ASSIGN(uint64_t r2, store_->Commit({}, Puts({{"m2", "two"}})));
  for (ReadConsistency c : {ReadConsistency::kLatest, ReadConsistency::kMayBeStale}) {
    SCOPED_TRACE(c == ReadConsistency::kLatest ? "kLatest" : "kMayBeStale");
    BATON_ASSERT_OK_AND_ASSIGN(
        std::vector<Versioned> got,
        store_->GetMany({"m2", "absent", "m1", std::string("\xff\x00k", 3)},
                        ReadOptions{c}));
    ASSERT_EQ(got.size(), 4u);
    EXPECT_EQ(got[0].value, "two");
    EXPECT_EQ(got[1].version, 0u);
    EXPECT_EQ(got[1].value, "");
    EXPECT_EQ(got[2].value, "one");
    EXPECT_FALSE(got[3].present());
    if (c == ReadConsistency::kLatest) {
      // Linearizable: the versions the commits returned.
      EXPECT_EQ(got[0].version, r2);
      EXPECT_EQ(got[2].version, r1);
    } else {
      // Possibly older, never invented: a version the key really had.
      EXPECT_TRUE(got[0].version == r2 || got[0].version == 0u) << got[0].version;
      EXPECT_TRUE(got[2].version == r1 || got[2].version == 0u) << got[2].version;
    }
    BATON_ASSERT_OK_AND_ASSIGN(std::vector<Versioned> one,
                               store_->GetMany({"m1"}, ReadOptions{c}));
    ASSERT_EQ(one.size(), 1u);
    BATON_ASSERT_OK_AND_ASSIGN(std::vector<Versioned> none,
                               store_->GetMany({}, ReadOptions{c}));
    EXPECT_TRUE(none.empty());
  }
}

TEST_P(StoreContractTest, StaleReadVersionIsCheckedByTheCommitCondition) {
  // The pattern the request pipeline relies on: read stale-allowed, commit
  // on the version read. Whether or not the read was stale, the commit
  // succeeds exactly when the version read is still current.
  BATON_ASSERT_OK_AND_ASSIGN(uint64_t r1, store_->Commit({}, Puts({{"s", "1"}})));
  (void)r1;
  for (int i = 0; i < 20; ++i) {
    BATON_ASSERT_OK_AND_ASSIGN(
        std::vector<Versioned> got,
        store_->GetMany({"s"}, ReadOptions{ReadConsistency::kMayBeStale}));
    BATON_ASSERT_OK_AND_ASSIGN(Versioned latest, store_->Get("s"));
    absl::StatusOr<uint64_t> c =
        store_->Commit({{"s", got[0].version}}, Puts({{"s", absl::StrCat(i)}}));
    if (got[0].version == latest.version) {
      EXPECT_TRUE(c.ok()) << c.status();
    } else {
      EXPECT_TRUE(IsConflict(c.status())) << c.status();
    }
  }
  // More keys than etcd's default --max-txn-ops (128) in one call.
  std::vector<std::string> many;
  for (int i = 0; i < 300; ++i) many.push_back(absl::StrCat("many/", i));
  BATON_ASSERT_OK_AND_ASSIGN(
      std::vector<Versioned> got,
      store_->GetMany(many, ReadOptions{ReadConsistency::kLatest}));
  EXPECT_EQ(got.size(), many.size());
}

TEST_P(StoreContractTest, ConditionalCommitSucceedsOnExpectedVersions) {
  BATON_ASSERT_OK_AND_ASSIGN(uint64_t r1, store_->Commit({{"c", 0}}, Puts({{"c", "1"}})));
  BATON_ASSERT_OK_AND_ASSIGN(uint64_t r2, store_->Commit({{"c", r1}, {"absent", 0}},
                                                         Puts({{"c", "2"}})));
  BATON_ASSERT_OK_AND_ASSIGN(Versioned c, store_->Get("c"));
  EXPECT_EQ(c.value, "2");
  EXPECT_EQ(c.version, r2);
}

TEST_P(StoreContractTest, ConflictNamesTheKeyThatFailed) {
  BATON_ASSERT_OK_AND_ASSIGN(uint64_t r1, store_->Commit({}, Puts({{"c", "1"}})));

  // Stale version.
  absl::StatusOr<uint64_t> stale = store_->Commit({{"c", r1 + 1000}}, Puts({{"c", "x"}}));
  ASSERT_FALSE(stale.ok());
  EXPECT_TRUE(IsConflict(stale.status())) << stale.status();
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(ConflictKey(stale.status()), std::optional<std::string>("c"));

  // Expected absent, but present.
  absl::StatusOr<uint64_t> present = store_->Commit({{"c", 0}}, Puts({{"c", "x"}}));
  ASSERT_FALSE(present.ok());
  EXPECT_EQ(ConflictKey(present.status()), std::optional<std::string>("c"));

  // Expected present, but absent; the second condition is the one that fails.
  absl::StatusOr<uint64_t> absent =
      store_->Commit({{"c", r1}, {"missing", 7}}, Puts({{"c", "x"}}));
  ASSERT_FALSE(absent.ok());
  EXPECT_EQ(ConflictKey(absent.status()), std::optional<std::string>("missing"));

  // A conditions-only commit conflicts the same way.
  absl::StatusOr<uint64_t> check = store_->Commit({{"c", 0}}, {});
  EXPECT_TRUE(IsConflict(check.status())) << check.status();

  BATON_ASSERT_OK_AND_ASSIGN(Versioned c, store_->Get("c"));
  EXPECT_EQ(c.value, "1");
  EXPECT_EQ(c.version, r1);
}

TEST_P(StoreContractTest, FailedConditionAppliesNoWrite) {
  BATON_ASSERT_OK_AND_ASSIGN(uint64_t r1,
                             store_->Commit({}, Puts({{"keep", "k0"}, {"del", "d0"}})));
  std::vector<Write> writes = Puts({{"keep", "k1"}, {"new", "n1"}});
  writes.push_back(Write::Delete("del"));
  absl::StatusOr<uint64_t> r =
      store_->Commit({{"keep", r1}, {"del", r1}, {"new", 5}}, writes);
  ASSERT_TRUE(IsConflict(r.status())) << r.status();
  EXPECT_EQ(ConflictKey(r.status()), std::optional<std::string>("new"));

  BATON_ASSERT_OK_AND_ASSIGN(Versioned keep, store_->Get("keep"));
  BATON_ASSERT_OK_AND_ASSIGN(Versioned del, store_->Get("del"));
  BATON_ASSERT_OK_AND_ASSIGN(Versioned fresh, store_->Get("new"));
  EXPECT_EQ(keep.value, "k0");
  EXPECT_EQ(keep.version, r1);
  EXPECT_EQ(del.value, "d0");
  EXPECT_EQ(del.version, r1);
  EXPECT_FALSE(fresh.present());
}

TEST_P(StoreContractTest, ScanReturnsPrefixInKeyOrderAndPages) {
  // Written out of order, with neighbours just outside the prefix.
  std::vector<std::string> inside = {"p/c", "p/a", "p/b/1", "p/", "p/b", "p/z"};
  std::vector<Write> writes;
  for (const std::string& k : inside) writes.push_back(Write::Put(k, "v" + k));
  for (const char* k : {"p", "o/z", "q", "p0", "P/a"}) {
    writes.push_back(Write::Put(k, "outside"));
  }
  BATON_ASSERT_OK_AND_ASSIGN(uint64_t r, store_->Commit({}, writes));
  BATON_ASSERT_OK_AND_ASSIGN(uint64_t r_del,
                             store_->Commit({}, {Write::Delete("p/b/1")}));
  std::vector<std::string> expected = {"p/", "p/a", "p/b", "p/c", "p/z"};

  BATON_ASSERT_OK_AND_ASSIGN(std::vector<KeyValue> all,
                             store_->Scan({.prefix = "p/", .start_after = "", .limit = 100}));
  std::vector<std::string> keys;
  for (const KeyValue& kv : all) {
    keys.push_back(kv.key);
    EXPECT_EQ(kv.value, "v" + kv.key);
    EXPECT_EQ(kv.version, r);
  }
  EXPECT_EQ(keys, expected) << "deleted keys and keys outside the prefix are skipped";
  EXPECT_GT(r_del, r);

  // Pages of two, each resuming after the last key of the one before.
  std::vector<std::string> paged;
  std::string after;
  for (int page = 0; page < 10; ++page) {
    BATON_ASSERT_OK_AND_ASSIGN(std::vector<KeyValue> part,
                               store_->Scan({.prefix = "p/", .start_after = after, .limit = 2}));
    ASSERT_LE(part.size(), 2u);
    if (part.empty()) break;
    for (const KeyValue& kv : part) paged.push_back(kv.key);
    after = part.back().key;
  }
  EXPECT_EQ(paged, expected);

  // start_after need not be a present key.
  BATON_ASSERT_OK_AND_ASSIGN(std::vector<KeyValue> tail,
                             store_->Scan({.prefix = "p/", .start_after = "p/b0", .limit = 10}));
  ASSERT_EQ(tail.size(), 2u);
  EXPECT_EQ(tail[0].key, "p/c");

  // Empty prefix: everything, in key order (bytewise).
  BATON_ASSERT_OK_AND_ASSIGN(std::vector<KeyValue> everything,
                             store_->Scan({.prefix = "", .start_after = "", .limit = 1000}));
  ASSERT_EQ(everything.size(), expected.size() + 5);
  EXPECT_TRUE(std::is_sorted(everything.begin(), everything.end(),
                             [](const KeyValue& a, const KeyValue& b) { return a.key < b.key; }));
  EXPECT_EQ(everything.front().key, "P/a");

  BATON_ASSERT_OK_AND_ASSIGN(std::vector<KeyValue> none,
                             store_->Scan({.prefix = "nothing/", .start_after = "", .limit = 10}));
  EXPECT_TRUE(none.empty());
}

TEST_P(StoreContractTest, BinaryKeysAndValuesRoundTrip) {
  const std::string nul_key("a\0b", 3);
  const std::string nul_key2("a\0", 2);
  const std::string ff_key("\xff\xfe\xff", 3);
  const std::string ff_key2("\xff\xff", 2);
  const std::string value("\0\xff\x01\0", 4);
  std::vector<Write> writes = {Write::Put("", "empty-key"), Write::Put(nul_key, value),
                               Write::Put(nul_key2, ""), Write::Put(ff_key, value),
                               Write::Put(ff_key2, std::string(1, '\0'))};
  BATON_ASSERT_OK_AND_ASSIGN(uint64_t r, store_->Commit({{"", 0}, {nul_key, 0}}, writes));

  BATON_ASSERT_OK_AND_ASSIGN(Versioned empty, store_->Get(""));
  EXPECT_EQ(empty.value, "empty-key");
  EXPECT_EQ(empty.version, r);
  BATON_ASSERT_OK_AND_ASSIGN(Versioned nul, store_->Get(nul_key));
  EXPECT_EQ(nul.value, value);
  BATON_ASSERT_OK_AND_ASSIGN(Versioned nul2, store_->Get(nul_key2));
  EXPECT_TRUE(nul2.present()) << "an empty value is present";
  EXPECT_EQ(nul2.value, "");
  BATON_ASSERT_OK_AND_ASSIGN(Versioned ff, store_->Get(ff_key));
  EXPECT_EQ(ff.value, value);
  BATON_ASSERT_OK_AND_ASSIGN(Versioned a, store_->Get("a"));
  EXPECT_FALSE(a.present()) << "keys are not cut at NUL";

  // Prefix scans over binary prefixes, including the reserved 0xff space.
  BATON_ASSERT_OK_AND_ASSIGN(std::vector<KeyValue> a_scan,
                             store_->Scan({.prefix = std::string("a\0", 2), .start_after = "", .limit = 10}));
  ASSERT_EQ(a_scan.size(), 2u);
  EXPECT_EQ(a_scan[0].key, nul_key2);
  EXPECT_EQ(a_scan[1].key, nul_key);
  BATON_ASSERT_OK_AND_ASSIGN(std::vector<KeyValue> ff_scan,
                             store_->Scan({.prefix = std::string(kReservedPrefix), .start_after = "", .limit = 10}));
  ASSERT_EQ(ff_scan.size(), 2u);
  EXPECT_EQ(ff_scan[0].key, ff_key);
  EXPECT_EQ(ff_scan[1].key, ff_key2);
  EXPECT_EQ(ff_scan[1].value, std::string(1, '\0'));

  absl::StatusOr<uint64_t> conflict = store_->Commit({{nul_key, r + 1}}, {});
  EXPECT_EQ(ConflictKey(conflict.status()), std::optional<std::string>(nul_key))
      << "the conflict key keeps its NUL byte";
}

// Fencing as docs/storage.md describes it: a holder's commits condition on the
// version of the slot's epoch key; a take-over rewrites the key, after which
// every commit of the old holder conflicts on that key.
TEST_P(StoreContractTest, FencingEpochKeyRejectsTheOldHolder) {
  const std::string fence = std::string(kReservedPrefix) + "fence/slot-1";
  // Holder A takes epoch 1.
  BATON_ASSERT_OK_AND_ASSIGN(uint64_t a_fence,
                             store_->Commit({{fence, 0}}, Puts({{fence, "1"}})));
  BATON_ASSERT_OK_AND_ASSIGN(uint64_t a_write,
                             store_->Commit({{fence, a_fence}}, Puts({{"state", "from A"}})));
  EXPECT_GT(a_write, a_fence);

  // Holder B takes over with epoch 2.
  BATON_ASSERT_OK_AND_ASSIGN(Versioned seen, store_->Get(fence));
  BATON_ASSERT_OK_AND_ASSIGN(uint64_t b_fence,
                             store_->Commit({{fence, seen.version}}, Puts({{fence, "2"}})));

  // A, still believing it holds the slot, is fenced off.
  absl::StatusOr<uint64_t> late =
      store_->Commit({{fence, a_fence}}, Puts({{"state", "late write from A"}}));
  ASSERT_TRUE(IsConflict(late.status())) << late.status();
  EXPECT_EQ(ConflictKey(late.status()), std::optional<std::string>(fence));

  BATON_ASSERT_OK_AND_ASSIGN(uint64_t b_write,
                             store_->Commit({{fence, b_fence}}, Puts({{"state", "from B"}})));
  BATON_ASSERT_OK_AND_ASSIGN(Versioned state, store_->Get("state"));
  EXPECT_EQ(state.value, "from B");
  EXPECT_EQ(state.version, b_write);
}

// Many threads increment a few counters by read-modify-write commits that
// condition on the version they read. Every successful commit must count
// exactly once: no lost update, no double apply.
TEST_P(StoreContractTest, ConcurrentReadModifyWriteLosesNoUpdate) {
  constexpr int kThreads = 8;
  constexpr int kCounters = 3;
  constexpr int kAttemptsPerThread = 60;
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE(absl::StrCat("seed=", seed));

  std::atomic<int64_t> successes[kCounters] = {};
  std::atomic<int64_t> conflicts{0};
  std::atomic<int64_t> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(seed + static_cast<uint32_t>(t));
      for (int i = 0; i < kAttemptsPerThread; ++i) {
        const int c = static_cast<int>(rng() % kCounters);
        const std::string key = absl::StrCat("counter/", c);
        absl::StatusOr<Versioned> cur = store_->Get(key);
        if (!cur.ok()) {
          errors++;
          continue;
        }
        int64_t n = cur->present() ? std::stoll(cur->value) : 0;
        absl::StatusOr<uint64_t> r = store_->Commit(
            {{key, cur->version}}, {Write::Put(key, std::to_string(n + 1)),
                                    Write::Put(absl::StrCat("last/", c), std::to_string(t))});
        if (r.ok()) {
          successes[c]++;
        } else if (IsConflict(r.status())) {
          conflicts++;
        } else {
          errors++;
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();

  EXPECT_EQ(errors.load(), 0);
  int64_t total = 0;
  for (int c = 0; c < kCounters; ++c) {
    BATON_ASSERT_OK_AND_ASSIGN(Versioned v, store_->Get(absl::StrCat("counter/", c)));
    const int64_t stored = v.present() ? std::stoll(v.value) : 0;
    EXPECT_EQ(stored, successes[c].load()) << "counter " << c;
    total += successes[c].load();
  }
  EXPECT_EQ(total + conflicts.load(), int64_t{kThreads} * kAttemptsPerThread);
  EXPECT_GT(total, 0);
}

}  // namespace
}  // namespace baton::storage::testing
