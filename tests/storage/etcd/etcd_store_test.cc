// The etcd backend against real etcd processes that the test starts on
// loopback (ephemeral ports, temp data dir, killed by PID at the end and when
// the test process dies): the shared StableStore contract on one member and
// on a three-member cluster, plus what only a replicated, networked store can
// be tested for (a member killed mid-run, limits, a store that is down,
// outcome-unknown commits, key prefixes, auth tokens).
//
// No etcd binary: every test fails under CI=true and is skipped otherwise.
#include "storage/etcd/etcd_store.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "spdlog/sinks/ringbuffer_sink.h"
#include "spdlog/spdlog.h"
#include "storage/etcd/etcd_client.h"
#include "storage/etcd/testing/etcd_launcher.h"
#include "tests/storage/store_contract_test.h"
#include "tests/testing/test_seed.h"

namespace baton::storage {
namespace {

using testing::EtcdCluster;
using testing::EtcdLaunchOptions;
using testing::StoreContractParam;
using testing::StoreContractParamName;
using testing::StoreContractTest;
using testing::StoreOpener;

using std::chrono::milliseconds;

// Fails under CI=true, skips otherwise, when no etcd binary is installed.
class RequireEtcd : public ::testing::Environment {
 public:
  void SetUp() override {
    absl::StatusOr<std::string> binary = EtcdCluster::FindBinary();
    if (binary.ok()) return;
    const char* ci = std::getenv("CI");
    if (ci != nullptr && std::string(ci) == "true") {
      FAIL() << binary.status() << " (required under CI=true)";
    }
    GTEST_SKIP() << binary.status();
  }
};

// Timeouts short enough that fail-over tests finish quickly, long enough for
// a loaded two-core machine.
EtcdOptions TestOptions(const EtcdCluster& cluster, std::string prefix) {
  EtcdOptions o;
  o.endpoints = cluster.ClientEndpoints();
  o.key_prefix = std::move(prefix);
  o.dial_timeout = milliseconds(500);
  o.request_timeout = milliseconds(3000);
  return o;
}

// One cluster per size per test process (ctest runs every test in a process
// of its own), started on first use and killed when the process exits.
EtcdCluster* SharedCluster(int members, absl::Status* error) {
  static std::map<int, std::unique_ptr<EtcdCluster>>* clusters =
      new std::map<int, std::unique_ptr<EtcdCluster>>();
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  auto it = clusters->find(members);
  if (it != clusters->end()) return it->second.get();
  EtcdLaunchOptions options;
  options.members = members;
  absl::StatusOr<std::unique_ptr<EtcdCluster>> c = EtcdCluster::Start(options);
  if (!c.ok()) {
    *error = c.status();
    return nullptr;
  }
  EtcdCluster* raw = c->get();
  (*clusters)[members] = std::move(*c);
  // Kill at exit, also after a failed assertion (PDEATHSIG covers crashes).
  static bool registered = [] {
    std::atexit([] { delete clusters; });
    return true;
  }();
  (void)registered;
  return raw;
}

std::string UniquePrefix() {
  static std::atomic<int> n{0};
  return absl::StrCat("test-", ::getpid(), "-", n++, "/");
}

StoreContractParam EtcdParam(std::string name, int members) {
  return StoreContractParam{
      std::move(name), [members]() -> StoreOpener {
        absl::Status error;
        EtcdCluster* cluster = SharedCluster(members, &error);
        const std::string prefix = UniquePrefix();
        return [cluster, error, prefix]() -> absl::StatusOr<std::unique_ptr<StableStore>> {
          if (cluster == nullptr) return error;
          return OpenEtcdStore(TestOptions(*cluster, prefix));
        };
      }};
}

INSTANTIATE_TEST_SUITE_P(Etcd, StoreContractTest,
                         ::testing::Values(EtcdParam("EtcdSingleNode", 1),
                                           EtcdParam("EtcdThreeMembers", 3)),
                         StoreContractParamName);

// ---------------------------------------------------------------------------
// etcd-specific tests; each starts the cluster it needs.

class EtcdStoreTest : public ::testing::Test {
 protected:
  void Start(int members, std::vector<std::string> extra_args = {}) {
    EtcdLaunchOptions options;
    options.members = members;
    options.extra_args = std::move(extra_args);
    absl::StatusOr<std::unique_ptr<EtcdCluster>> c = EtcdCluster::Start(options);
    ASSERT_TRUE(c.ok()) << c.status();
    cluster_ = std::move(*c);
  }

  std::unique_ptr<EtcdStore> Open(EtcdOptions options) {
    absl::StatusOr<std::unique_ptr<EtcdStore>> s = OpenEtcd(options);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(*s) : nullptr;
  }

  std::unique_ptr<EtcdCluster> cluster_;
};

using baton::testing::TestSeed;

// Threads increment counters by read-modify-write commits while the member
// the client talks to is SIGKILLed. Each attempt also writes its own record
// key in the same commit, so afterwards every attempt's fate can be read:
// acknowledged → applied; conflict or unavailable → not applied; unknown →
// resolved by reading. The counter must equal the number of applied records
// (every increment present exactly once), and commits must succeed after the
// kill (the client failed over).
void KillMemberDuringIncrements(EtcdCluster& cluster, bool kill_leader);

// The member the client talks to is the raft leader: the kill also costs an
// election, during which commits may time out (kUnknown).
TEST_F(EtcdStoreTest, LeaderKilledDuringConflictingIncrementsLosesNothing) {
  ASSERT_NO_FATAL_FAILURE(Start(3));
  KillMemberDuringIncrements(*cluster_, /*kill_leader=*/true);
}

// The member the client talks to is a follower: the cluster keeps its leader
// and the client only has to move.
TEST_F(EtcdStoreTest, FollowerKilledDuringConflictingIncrementsLosesNothing) {
  ASSERT_NO_FATAL_FAILURE(Start(3));
  KillMemberDuringIncrements(*cluster_, /*kill_leader=*/false);
}

void KillMemberDuringIncrements(EtcdCluster& cluster, bool kill_leader) {
  const uint32_t seed = TestSeed();
  SCOPED_TRACE(absl::StrCat("seed=", seed, " (BATON_TEST_SEED replays the key choice)"));
  absl::StatusOr<int> leader = cluster.Leader(0);
  ASSERT_TRUE(leader.ok()) << leader.status();
  const int victim = kill_leader ? *leader : (*leader + 1) % cluster.size();
  // The victim first in the endpoint list: the client starts on it.
  EtcdOptions options = TestOptions(cluster, "failover/");
  std::rotate(options.endpoints.begin(), options.endpoints.begin() + victim,
              options.endpoints.end());
  absl::StatusOr<std::unique_ptr<EtcdStore>> opened = OpenEtcd(options);
  ASSERT_TRUE(opened.ok()) << opened.status();
  std::unique_ptr<EtcdStore> store = std::move(*opened);
  ASSERT_TRUE(store->Ping().ok());
  const std::string first = store->CurrentEndpoint();
  ASSERT_EQ(first, cluster.ClientEndpoint(victim));

  constexpr int kThreads = 6;
  constexpr int kAttempts = 40;
  constexpr int kCounters = 2;
  enum Outcome { kNone, kOk, kConflict, kUnavailable, kUnknown, kOther };
  std::vector<std::vector<Outcome>> outcome(kThreads, std::vector<Outcome>(kAttempts, kNone));
  std::vector<std::vector<int>> counter_of(kThreads, std::vector<int>(kAttempts, 0));
  std::atomic<int> acked{0};
  std::atomic<bool> killed{false};
  std::atomic<int> acked_after_kill{0};
  std::mutex errors_mu;
  std::vector<std::string> other_errors;

  auto record_key = [](int t, int i) { return absl::StrCat("rec/", t, "/", i); };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(seed + static_cast<uint32_t>(t));
      for (int i = 0; i < kAttempts; ++i) {
        const int c = static_cast<int>(rng() % kCounters);
        counter_of[t][i] = c;
        const std::string key = absl::StrCat("counter/", c);
        absl::StatusOr<Versioned> cur = store->Get(key);
        if (!cur.ok()) {
          outcome[t][i] = absl::IsUnavailable(cur.status()) ? kUnavailable : kOther;
          if (outcome[t][i] == kOther) {
            std::lock_guard<std::mutex> l(errors_mu);
            other_errors.push_back(cur.status().ToString());
          }
          continue;
        }
        const int64_t n = cur->present() ? std::stoll(cur->value) : 0;
        const bool after_kill = killed.load();
        absl::StatusOr<uint64_t> r = store->Commit(
            {{key, cur->version}, {record_key(t, i), 0}},
            {Write::Put(key, std::to_string(n + 1)), Write::Put(record_key(t, i), "1")});
        if (r.ok()) {
          outcome[t][i] = kOk;
          acked++;
          if (after_kill) acked_after_kill++;
        } else if (IsConflict(r.status())) {
          outcome[t][i] = kConflict;
        } else if (absl::IsUnavailable(r.status())) {
          outcome[t][i] = kUnavailable;
        } else if (absl::IsUnknown(r.status())) {
          outcome[t][i] = kUnknown;
        } else {
          outcome[t][i] = kOther;
          std::lock_guard<std::mutex> l(errors_mu);
          other_errors.push_back(r.status().ToString());
        }
      }
    });
  }
  // Kill the member in use once a few increments are in.
  for (int waited = 0; acked.load() < 20 && waited < 400; ++waited) {
    std::this_thread::sleep_for(milliseconds(25));
  }
  EXPECT_TRUE(cluster.Kill(victim).ok());  // no ASSERT: threads must be joined
  killed = true;
  for (std::thread& th : threads) th.join();

  EXPECT_TRUE(other_errors.empty()) << (other_errors.empty() ? "" : other_errors.front());
  EXPECT_GT(acked_after_kill.load(), 0) << "no commit succeeded after the kill: no fail-over";
  EXPECT_NE(store->CurrentEndpoint(), first);
  EXPECT_GE(store->Stats().failovers, 1u);

  // Resolve every attempt by reading (from the surviving members).
  int64_t applied[kCounters] = {};
  int unknown = 0;
  int unknown_applied = 0;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kAttempts; ++i) {
      absl::StatusOr<Versioned> rec = store->Get(record_key(t, i));
      ASSERT_TRUE(rec.ok()) << rec.status();
      switch (outcome[t][i]) {
        case kOk:
          EXPECT_TRUE(rec->present()) << "acknowledged increment " << t << "/" << i << " lost";
          break;
        case kConflict:
        case kUnavailable:
        case kNone:
          EXPECT_FALSE(rec->present()) << "failed attempt " << t << "/" << i << " applied";
          break;
        case kUnknown:
          ++unknown;
          if (rec->present()) ++unknown_applied;
          break;
        case kOther:
          break;
      }
      if (rec->present()) applied[counter_of[t][i]]++;
    }
  }
  for (int c = 0; c < kCounters; ++c) {
    absl::StatusOr<Versioned> v = store->Get(absl::StrCat("counter/", c));
    ASSERT_TRUE(v.ok()) << v.status();
    const int64_t stored = v->present() ? std::stoll(v->value) : 0;
    EXPECT_EQ(stored, applied[c]) << "counter " << c << ": every applied increment once";
  }
  std::printf("fail-over run (%s killed): %d acknowledged (%d after the kill), %d unknown (%d of them applied), %llu failovers\n",
              kill_leader ? "leader" : "follower", acked.load(), acked_after_kill.load(), unknown, unknown_applied,
              static_cast<unsigned long long>(store->Stats().failovers));
}

// Power loss of the whole cluster: every member SIGKILLed at once, then
// restarted on its data. Every acknowledged commit is still there (each was
// fsync'd by a quorum before it was acknowledged) and versions keep growing.
TEST_F(EtcdStoreTest, WholeClusterKilledKeepsEveryAcknowledgedCommit) {
  ASSERT_NO_FATAL_FAILURE(Start(3));
  std::unique_ptr<EtcdStore> store = Open(TestOptions(*cluster_, "powerloss/"));
  ASSERT_NE(store, nullptr);
  constexpr int kKeys = 50;
  std::vector<uint64_t> versions;
  for (int i = 0; i < kKeys; ++i) {
    absl::StatusOr<uint64_t> r =
        store->Commit({{absl::StrCat("k", i), 0}}, {Write::Put(absl::StrCat("k", i), "v")});
    ASSERT_TRUE(r.ok()) << r.status();
    versions.push_back(*r);
  }
  for (int m = 0; m < cluster_->size(); ++m) ASSERT_TRUE(cluster_->Kill(m).ok());
  for (int m = 0; m < cluster_->size(); ++m) ASSERT_TRUE(cluster_->Restart(m).ok());
  for (int m = 0; m < cluster_->size(); ++m) {
    ASSERT_TRUE(cluster_->WaitReady(m, milliseconds(30000)).ok());
  }
  absl::StatusOr<std::vector<KeyValue>> all =
      store->Scan({.prefix = "k", .start_after = "", .limit = 1000});
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), static_cast<size_t>(kKeys));
  for (int i = 0; i < kKeys; ++i) {
    absl::StatusOr<Versioned> v = store->Get(absl::StrCat("k", i));
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(v->version, versions[static_cast<size_t>(i)]) << "k" << i;
  }
  absl::StatusOr<uint64_t> next = store->Commit({}, {Write::Put("after", "restart")});
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_GT(*next, versions.back());
}

TEST_F(EtcdStoreTest, OversizedCommitRefusedBeforeSending) {
  ASSERT_NO_FATAL_FAILURE(Start(1));
  std::unique_ptr<EtcdStore> store = Open(TestOptions(*cluster_, "size/"));
  ASSERT_NE(store, nullptr);

  // Over etcd's default 1.5 MiB: refused by the client.
  absl::StatusOr<uint64_t> big =
      store->Commit({}, {Write::Put("big", std::string(2 << 20, 'x'))});
  ASSERT_EQ(big.status().code(), absl::StatusCode::kResourceExhausted) << big.status();
  EXPECT_TRUE(absl::StrContains(big.status().message(), "max_request_bytes"));
  EXPECT_TRUE(absl::StrContains(big.status().message(), "not sent"));
  // Many values that add up past the limit, too.
  std::vector<Write> many;
  for (int i = 0; i < 20; ++i) many.push_back(Write::Put(absl::StrCat("k", i), std::string(100000, 'y')));
  EXPECT_EQ(store->Commit({}, many).status().code(), absl::StatusCode::kResourceExhausted);

  // Just under it: etcd takes it, so the client's limit is etcd's.
  absl::StatusOr<uint64_t> fits =
      store->Commit({}, {Write::Put("fits", std::string(1400 * 1024, 'z'))});
  ASSERT_TRUE(fits.ok()) << fits.status();

  // A lower configured limit is enforced by the client alone (etcd would
  // accept 4 KiB): proof that the refusal happens before sending.
  EtcdOptions small = TestOptions(*cluster_, "size/");
  small.max_request_bytes = 2048;
  std::unique_ptr<EtcdStore> strict = Open(small);
  absl::StatusOr<uint64_t> refused = strict->Commit({}, {Write::Put("k", std::string(4096, 'a'))});
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  absl::StatusOr<Versioned> k = store->Get("k");
  ASSERT_TRUE(k.ok());
  EXPECT_FALSE(k->present());
}

TEST_F(EtcdStoreTest, TooManyOperationsRefusedBeforeSending) {
  ASSERT_NO_FATAL_FAILURE(Start(1));
  std::unique_ptr<EtcdStore> store = Open(TestOptions(*cluster_, "ops/"));
  ASSERT_NE(store, nullptr);
  std::vector<Write> writes;
  for (int i = 0; i < 128; ++i) writes.push_back(Write::Put(absl::StrCat("k", i), "v"));
  absl::StatusOr<uint64_t> ok = store->Commit({}, writes);
  ASSERT_TRUE(ok.ok()) << "128 operations are etcd's default limit: " << ok.status();

  writes.push_back(Write::Put("k128", "v"));
  absl::StatusOr<uint64_t> over = store->Commit({}, writes);
  ASSERT_EQ(over.status().code(), absl::StatusCode::kResourceExhausted) << over.status();
  EXPECT_TRUE(absl::StrContains(over.status().message(), "max_txn_ops"));
  absl::StatusOr<Versioned> k128 = store->Get("k128");
  ASSERT_TRUE(k128.ok());
  EXPECT_FALSE(k128->present());

  std::vector<Condition> conditions;
  for (int i = 0; i < 129; ++i) conditions.push_back({absl::StrCat("c", i), 0});
  EXPECT_EQ(store->Commit(conditions, {}).status().code(), absl::StatusCode::kResourceExhausted);

  // Writing one key twice counts once and the last write wins (etcd itself
  // refuses duplicate keys in a txn).
  absl::StatusOr<uint64_t> dup =
      store->Commit({}, {Write::Put("d", "first"), Write::Delete("d"), Write::Put("d", "last")});
  ASSERT_TRUE(dup.ok()) << dup.status();
  absl::StatusOr<Versioned> d = store->Get("d");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->value, "last");
}

TEST_F(EtcdStoreTest, StoreDownIsUnavailableWithClearMessage) {
  ASSERT_NO_FATAL_FAILURE(Start(1));
  std::unique_ptr<EtcdStore> store = Open(TestOptions(*cluster_, "down/"));
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Commit({}, {Write::Put("k", "v")}).ok());
  ASSERT_TRUE(cluster_->Kill(0).ok());
  const std::string endpoint = cluster_->ClientEndpoint(0);

  absl::Status ping = store->Ping();
  EXPECT_EQ(ping.code(), absl::StatusCode::kUnavailable) << ping;
  EXPECT_TRUE(absl::StrContains(ping.message(), endpoint)) << ping;
  absl::StatusOr<Versioned> get = store->Get("k");
  EXPECT_EQ(get.status().code(), absl::StatusCode::kUnavailable) << get.status();
  absl::StatusOr<uint64_t> commit = store->Commit({}, {Write::Put("k", "w")});
  EXPECT_EQ(commit.status().code(), absl::StatusCode::kUnavailable) << commit.status();
  EXPECT_TRUE(absl::StrContains(commit.status().message(), "nothing was written"))
      << commit.status();

  // The member comes back: the same store object works again, and the
  // refused commit indeed wrote nothing.
  ASSERT_TRUE(cluster_->Restart(0).ok());
  ASSERT_TRUE(cluster_->WaitReady(0, milliseconds(20000)).ok());
  absl::StatusOr<Versioned> again = store->Get("k");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->value, "v");

  // A store whose only endpoint never listened.
  EtcdOptions nowhere = TestOptions(*cluster_, "down/");
  nowhere.endpoints = {"127.0.0.1:1"};
  std::unique_ptr<EtcdStore> lost = Open(nowhere);
  absl::Status p = lost->Ping();
  EXPECT_EQ(p.code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(p.message(), "127.0.0.1:1")) << p;
}

// A member cut off from the majority knows it has no leader and refuses at
// once: a commit there is kUnavailable (nothing written), not a write held
// until the deadline and then kUnknown.
TEST_F(EtcdStoreTest, MemberWithoutQuorumRefusesWithUnavailable) {
  ASSERT_NO_FATAL_FAILURE(Start(3));
  EtcdOptions options = TestOptions(*cluster_, "minority/");
  options.endpoints = {cluster_->ClientEndpoint(2)};
  options.request_timeout = milliseconds(10000);
  std::unique_ptr<EtcdStore> store = Open(options);
  ASSERT_NE(store, nullptr);
  absl::StatusOr<uint64_t> r1 = store->Commit({}, {Write::Put("k", "1")});
  ASSERT_TRUE(r1.ok()) << r1.status();
  ASSERT_TRUE(cluster_->Kill(0).ok());
  ASSERT_TRUE(cluster_->Kill(1).ok());
  // The survivor drops its leader (or steps down, with etcd's CheckQuorum)
  // after an election timeout (500 ms here).
  absl::Status ping;
  for (int i = 0; i < 100; ++i) {
    ping = store->Ping();
    if (!ping.ok()) break;
    std::this_thread::sleep_for(milliseconds(50));
  }
  EXPECT_EQ(ping.code(), absl::StatusCode::kUnavailable) << ping;
  const auto t0 = std::chrono::steady_clock::now();
  absl::StatusOr<uint64_t> r2 = store->Commit({{"k", *r1}}, {Write::Put("k", "2")});
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(r2.status().code(), absl::StatusCode::kUnavailable) << r2.status();
  EXPECT_TRUE(absl::StrContains(r2.status().message(), "no leader")) << r2.status();
  EXPECT_LT(took, milliseconds(5000)) << "refused at once, not at the 10 s deadline";
  absl::StatusOr<Versioned> get = store->Get("k");
  EXPECT_EQ(get.status().code(), absl::StatusCode::kUnavailable) << get.status();
}

// A paused member (SIGSTOP) accepts the request on its open socket and never
// answers: the commit's outcome is unknown, which the caller resolves by
// reading once the member is back.
TEST_F(EtcdStoreTest, UnansweredCommitIsUnknownAndResolvedByReading) {
  ASSERT_NO_FATAL_FAILURE(Start(1));
  EtcdOptions options = TestOptions(*cluster_, "unknown/");
  options.request_timeout = milliseconds(400);
  std::unique_ptr<EtcdStore> store = Open(options);
  ASSERT_NE(store, nullptr);
  absl::StatusOr<uint64_t> r1 = store->Commit({}, {Write::Put("k", "before")});
  ASSERT_TRUE(r1.ok()) << r1.status();

  ASSERT_TRUE(cluster_->Pause(0).ok());
  absl::StatusOr<uint64_t> r2 = store->Commit({{"k", *r1}}, {Write::Put("k", "after")});
  ASSERT_TRUE(cluster_->Resume(0).ok());
  ASSERT_EQ(r2.status().code(), absl::StatusCode::kUnknown) << r2.status();
  EXPECT_TRUE(absl::StrContains(r2.status().message(), "resolve by reading"));
  EXPECT_EQ(store->Stats().unknown_outcomes, 1u);

  // Resolve: either the commit happened (new version) or it did not (old
  // value and version) — never something in between.
  ASSERT_TRUE(cluster_->WaitReady(0, milliseconds(20000)).ok());
  absl::StatusOr<Versioned> v = store->Get("k");
  ASSERT_TRUE(v.ok()) << v.status();
  if (v->value == "after") {
    EXPECT_GT(v->version, *r1);
  } else {
    EXPECT_EQ(v->value, "before");
    EXPECT_EQ(v->version, *r1);
  }
  // And the store carries on, conditioned on what was read.
  EXPECT_TRUE(store->Commit({{"k", v->version}}, {Write::Put("k", "next")}).ok());
}

// Credentials configured for a cluster that has auth off: the store works
// (etcd says auth is not enabled; the store goes on without a token).
TEST_F(EtcdStoreTest, CredentialsWithAuthDisabledStillWork) {
  ASSERT_NO_FATAL_FAILURE(Start(1));
  EtcdOptions options = TestOptions(*cluster_, "noauth/");
  options.username = "root";
  options.password = "whatever";
  std::unique_ptr<EtcdStore> store = Open(options);
  ASSERT_NE(store, nullptr);
  absl::StatusOr<uint64_t> r = store->Commit({}, {Write::Put("k", "v")});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(store->Get("k").ok());
}

TEST_F(EtcdStoreTest, KeyPrefixIsolatesTwoStores) {
  ASSERT_NO_FATAL_FAILURE(Start(1));
  std::unique_ptr<EtcdStore> a = Open(TestOptions(*cluster_, "svc-a/"));
  std::unique_ptr<EtcdStore> b = Open(TestOptions(*cluster_, "svc-b/"));
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  absl::StatusOr<uint64_t> ra = a->Commit({{"k", 0}}, {Write::Put("k", "from a")});
  ASSERT_TRUE(ra.ok()) << ra.status();
  // b's "k" is a different etcd key: absent, and its own commit succeeds.
  absl::StatusOr<Versioned> bk = b->Get("k");
  ASSERT_TRUE(bk.ok());
  EXPECT_FALSE(bk->present());
  absl::StatusOr<uint64_t> rb = b->Commit({{"k", 0}}, {Write::Put("k", "from b")});
  ASSERT_TRUE(rb.ok()) << rb.status();
  absl::StatusOr<Versioned> ak = a->Get("k");
  ASSERT_TRUE(ak.ok());
  EXPECT_EQ(ak->value, "from a");
  EXPECT_EQ(ak->version, *ra);

  absl::StatusOr<std::vector<KeyValue>> all = a->Scan({.prefix = "", .start_after = "", .limit = 100});
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].key, "k");
  EXPECT_EQ((*all)[0].value, "from a");
  // A prefix that is a string prefix of the other's ("svc-a" vs "svc-a/")
  // is the caller's business; "/"-terminated prefixes never overlap.
}

// Makes a throw-away CA, a server certificate for IP 127.0.0.1 and a client
// certificate with the openssl CLI, in `dir`.
bool MakeCertificates(const std::string& dir) {
  const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  const std::string script = absl::StrCat(
      "set -e; cd '", dir, "';",
      "openssl req -x509 ", ec, " -keyout ca.key -out ca.crt -days 1 -subj /CN=baton-test-ca;",
      "printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > server.ext;",
      "printf 'extendedKeyUsage=clientAuth\n' > client.ext;",
      "for who in server client; do",
      "  openssl req ", ec, " -keyout \\$who.key -out \\$who.csr -subj /CN=baton-\\$who;",
      "  openssl x509 -req -in \\$who.csr -CA ca.crt -CAkey ca.key -CAcreateserial",
      "    -out \\$who.crt -days 1 -extfile \\$who.ext;",
      "done");
  const std::string cmd = absl::StrCat("bash -c \"", script, "\" >'", dir, "/openssl.log' 2>&1");
  return std::system(cmd.c_str()) == 0;
}

// TLS with a client certificate: the store talks to an https:// etcd that
// requires one; without the CA, or without a client certificate, it cannot.
TEST_F(EtcdStoreTest, TlsWithClientCertificate) {
  std::string dir = ::testing::TempDir() + "baton-etcd-tls-XXXXXX";
  ASSERT_NE(::mkdtemp(dir.data()), nullptr);
  ASSERT_TRUE(MakeCertificates(dir)) << "openssl failed, see " << dir << "/openssl.log";
  EtcdLaunchOptions launch;
  launch.tls_cert_file = dir + "/server.crt";
  launch.tls_key_file = dir + "/server.key";
  launch.tls_ca_file = dir + "/ca.crt";
  launch.tls_client_ca_file = dir + "/ca.crt";
  launch.tls_client_cert_file = dir + "/client.crt";
  launch.tls_client_key_file = dir + "/client.key";
  absl::StatusOr<std::unique_ptr<EtcdCluster>> c = EtcdCluster::Start(launch);
  ASSERT_TRUE(c.ok()) << c.status();
  cluster_ = std::move(*c);

  EtcdOptions options = TestOptions(*cluster_, "tls/");
  options.tls_ca_file = dir + "/ca.crt";
  options.tls_cert_file = dir + "/client.crt";
  options.tls_key_file = dir + "/client.key";
  std::unique_ptr<EtcdStore> store = Open(options);
  ASSERT_NE(store, nullptr);
  absl::StatusOr<uint64_t> r = store->Commit({{"k", 0}}, {Write::Put("k", "over tls")});
  ASSERT_TRUE(r.ok()) << r.status();
  absl::StatusOr<Versioned> v = store->Get("k");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->value, "over tls");
  EXPECT_TRUE(store->Ping().ok());

  EtcdOptions plain = TestOptions(*cluster_, "tls/");
  EXPECT_EQ(Open(plain)->Get("k").status().code(), absl::StatusCode::kUnavailable);
  EtcdOptions no_client_cert = options;
  no_client_cert.tls_cert_file.clear();
  no_client_cert.tls_key_file.clear();
  EXPECT_EQ(Open(no_client_cert)->Get("k").status().code(), absl::StatusCode::kUnavailable);
  EtcdOptions missing = options;
  missing.tls_ca_file = dir + "/nope.crt";
  EXPECT_EQ(OpenEtcd(missing).status().code(), absl::StatusCode::kInvalidArgument);

  cluster_.reset();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

// With etcd auth on and a 1-second token TTL, the store authenticates, and
// after the token expired re-authenticates without the caller noticing.
TEST_F(EtcdStoreTest, AuthTokenIsRefreshedAfterItExpires) {
  ASSERT_NO_FATAL_FAILURE(Start(1, {"--auth-token=simple", "--auth-token-ttl=1"}));
  ASSERT_TRUE(cluster_->Etcdctl(0, {"user", "add", "root:s3cret"}).ok());
  ASSERT_TRUE(cluster_->Etcdctl(0, {"auth", "enable"}).ok());

  EtcdOptions options = TestOptions(*cluster_, "auth/");
  options.username = "root";
  options.password = "s3cret";
  // The store's own periodic calls (health probe, key count) would keep
  // the simple token alive (etcd extends its TTL on every use): off, so
  // that it expires here.
  options.health_probe_interval = milliseconds(0);
  options.statistics_interval = std::chrono::seconds(0);
  std::unique_ptr<EtcdStore> store = Open(options);
  ASSERT_NE(store, nullptr);
  absl::StatusOr<uint64_t> r1 = store->Commit({}, {Write::Put("k", "1")});
  ASSERT_TRUE(r1.ok()) << r1.status();
  EXPECT_EQ(store->Stats().authentications, 1u);
  EXPECT_TRUE(store->Ping().ok()) << store->Ping();

  std::this_thread::sleep_for(milliseconds(2500));  // > TTL: the token expires
  // Eight callers hit the expired token at once: one of them fetches a new
  // token, the others use it (Authenticate is a raft write plus a bcrypt
  // check in etcd: one per caller would stall them all).
  std::atomic<int> failed{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 8; ++t) {
    callers.emplace_back([&] {
      if (!store->Get("k").ok()) failed++;
    });
  }
  for (std::thread& t : callers) t.join();
  EXPECT_EQ(failed.load(), 0);
  absl::StatusOr<uint64_t> r2 = store->Commit({{"k", *r1}}, {Write::Put("k", "2")});
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_EQ(store->Stats().authentications, 2u)
      << "the expired token is refreshed once, whatever the number of callers";

  EtcdOptions wrong = options;
  wrong.password = "nope";
  std::unique_ptr<EtcdStore> intruder = Open(wrong);
  absl::StatusOr<Versioned> denied = intruder->Get("k");
  EXPECT_EQ(denied.status().code(), absl::StatusCode::kUnauthenticated) << denied.status();
  EtcdOptions anonymous = options;
  anonymous.username.clear();
  std::unique_ptr<EtcdStore> anon = Open(anonymous);
  absl::StatusOr<Versioned> anon_get = anon->Get("k");
  EXPECT_EQ(anon_get.status().code(), absl::StatusCode::kUnauthenticated)
      << "auth is on: an anonymous read must fail: " << anon_get.status();
}


// The client moved off its first endpoint (the host's own member) while that
// member was down; once the member is back, calls go back to it, so that a
// crash of the member it moved to costs no request timeout later.
TEST_F(EtcdStoreTest, ClientGoesBackToTheFirstEndpointOnceItIsUp) {
  ASSERT_NO_FATAL_FAILURE(Start(3));
  std::unique_ptr<EtcdStore> store = Open(TestOptions(*cluster_, "failback/"));
  ASSERT_NE(store, nullptr);
  const std::string first = cluster_->ClientEndpoint(0);
  ASSERT_TRUE(store->Commit({}, {Write::Put("k", "1")}).ok());
  ASSERT_EQ(store->CurrentEndpoint(), first);

  ASSERT_TRUE(cluster_->Kill(0).ok());
  absl::StatusOr<uint64_t> moved = absl::UnavailableError("not tried");
  for (int i = 0; i < 50 && !moved.ok(); ++i) {
    moved = store->Commit({}, {Write::Put("k", "2")});
  }
  ASSERT_TRUE(moved.ok()) << moved.status();
  EXPECT_NE(store->CurrentEndpoint(), first);

  ASSERT_TRUE(cluster_->Restart(0).ok());
  ASSERT_TRUE(cluster_->WaitReady(0, milliseconds(20000)).ok());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (store->CurrentEndpoint() != first && std::chrono::steady_clock::now() < deadline) {
    ASSERT_TRUE(store->Get("k").ok());
    std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_EQ(store->CurrentEndpoint(), first) << "still away from the first endpoint";
  absl::StatusOr<Versioned> v = store->Get("k");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->value, "2");
}

// ------------------------------------------- leaving a failed member ----

using SteadyClock = std::chrono::steady_clock;

double SecondsSince(SteadyClock::time_point t0) {
  return std::chrono::duration<double>(SteadyClock::now() - t0).count();
}

// A member that stops answering without closing its connections (a host
// that crashed or froze: SIGSTOP here). The commit sent to it is answered
// kUnknown once the health probe finds the member silent -- well before the
// 10 s request deadline -- and the commits after it go to another member.
// The unknown one is resolved by reading: applied or not, never half.
TEST_F(EtcdStoreTest, SilentMemberIsLeftWithinTheProbeBound) {
  ASSERT_NO_FATAL_FAILURE(Start(3));
  EtcdOptions options = TestOptions(*cluster_, "silent/");
  options.request_timeout = milliseconds(10000);
  options.health_probe_interval = milliseconds(100);
  options.health_probe_timeout = milliseconds(300);
  std::unique_ptr<EtcdStore> store = Open(options);
  ASSERT_NE(store, nullptr);
  absl::StatusOr<uint64_t> r1 = store->Commit({}, {Write::Put("k", "before")});
  ASSERT_TRUE(r1.ok()) << r1.status();
  ASSERT_EQ(store->CurrentEndpoint(), cluster_->ClientEndpoint(0));

  ASSERT_TRUE(cluster_->Pause(0).ok());
  const auto t0 = SteadyClock::now();
  absl::StatusOr<uint64_t> r2 = store->Commit({{"k", *r1}}, {Write::Put("k", "during")});
  const double unknown_after = SecondsSince(t0);
  EXPECT_EQ(r2.status().code(), absl::StatusCode::kUnknown) << r2.status();
  EXPECT_LT(unknown_after, 2.0) << "the probe (100 ms, 300 ms timeout) should end the wait";
  // The next commits go elsewhere (the survivors elect a leader if the
  // paused member led). The first one may still find no leader.
  absl::StatusOr<uint64_t> r3 = absl::UnavailableError("not tried");
  while (!r3.ok() && SecondsSince(t0) < 8) {
    absl::StatusOr<Versioned> cur = store->Get("k");
    if (!cur.ok()) continue;
    r3 = store->Commit({{"k", cur->version}}, {Write::Put("k", "after")});
  }
  ASSERT_TRUE(r3.ok()) << r3.status();
  EXPECT_LT(SecondsSince(t0), 4.0) << "commits resumed on another member";
  EXPECT_NE(store->CurrentEndpoint(), cluster_->ClientEndpoint(0));
  EXPECT_GE(store->Stats().probe_failures, 1u);
  EXPECT_GE(store->Stats().cancelled_calls, 1u);
  ASSERT_TRUE(cluster_->Resume(0).ok());
}

// The etcd-leader host crash, on loopback: the member in use dies (killed
// here: its connection is refused) and the next member in the endpoint list
// is a crashed host's (SIGSTOP: its connection stays up, nothing answers).
// The call must leave the member in use and go to a member that answers,
// skipping the silent one that the probes found silent, instead of waiting
// out its request deadline there (the old walk went on in list order and a
// commit waited 3 s for the dead member's connection, then 3 s for the
// silent one's). Five members so that a quorum survives both.
TEST_F(EtcdStoreTest, CallSkipsASilentMemberWhenTheOneInUseDies) {
  ASSERT_NO_FATAL_FAILURE(Start(5));
  absl::StatusOr<int> leader = cluster_->Leader(0);
  ASSERT_TRUE(leader.ok()) << leader.status();
  // Two followers first (no election in the test), then the others.
  std::vector<int> order;
  for (int m = 0; m < cluster_->size(); ++m) {
    if (m != *leader) order.push_back(m);
  }
  order.push_back(*leader);
  const int in_use = order[0], silent = order[1];
  EtcdOptions options = TestOptions(*cluster_, "skipsilent/");
  options.endpoints.clear();
  for (int m : order) options.endpoints.push_back(cluster_->ClientEndpoint(m));
  // Long deadlines: waiting out either on a dead member shows.
  options.dial_timeout = milliseconds(3000);
  options.request_timeout = milliseconds(10000);
  options.health_probe_interval = milliseconds(100);
  std::unique_ptr<EtcdStore> store = Open(options);
  ASSERT_NE(store, nullptr);
  absl::StatusOr<uint64_t> r1 = store->Commit({}, {Write::Put("k", "before")});
  ASSERT_TRUE(r1.ok()) << r1.status();
  ASSERT_EQ(store->CurrentEndpoint(), cluster_->ClientEndpoint(in_use));

  ASSERT_TRUE(cluster_->Pause(silent).ok());
  // Long enough for a probe of it to go unanswered for silent_after
  // (150 ms) on a loaded machine.
  std::this_thread::sleep_for(milliseconds(1000));
  ASSERT_TRUE(cluster_->Kill(in_use).ok());
  // A read first: a commit sent in the instant before the client saw the
  // connection close would rightly be kUnknown; a read moves on.
  const auto t0 = SteadyClock::now();
  absl::StatusOr<Versioned> v0 = store->Get("k");
  ASSERT_TRUE(v0.ok()) << v0.status();
  absl::StatusOr<uint64_t> r2 = store->Commit({{"k", v0->version}}, {Write::Put("k", "after")});
  const double took = SecondsSince(t0);
  std::printf("the read and commit after the kill took %.3f s\n", took);
  EXPECT_TRUE(r2.ok()) << r2.status() << " after " << took << " s";
  EXPECT_LT(took, 2.5) << "waited on the dead or the silent member (dial deadline 3 s)";
  const std::string served_by = store->CurrentEndpoint();
  EXPECT_NE(served_by, cluster_->ClientEndpoint(in_use));
  EXPECT_NE(served_by, cluster_->ClientEndpoint(silent));
  // Reads and the commits after it go straight there.
  const auto t1 = SteadyClock::now();
  for (int i = 0; i < 5; ++i) {
    absl::StatusOr<Versioned> v = store->Get("k");
    ASSERT_TRUE(v.ok()) << v.status();
    absl::StatusOr<uint64_t> r = store->Commit({{"k", v->version}}, {Write::Put("k", "x")});
    ASSERT_TRUE(r.ok()) << r.status();
  }
  EXPECT_LT(SecondsSince(t1), 5.0);
  EXPECT_EQ(store->CurrentEndpoint(), served_by);
  EXPECT_EQ(store->Stats().unknown_outcomes, 0u) << "nothing was sent to the silent member";
  ASSERT_TRUE(cluster_->Resume(silent).ok());
}

struct StrandedCase {
  const char* name;
  bool probe;        // health probe on (cancels after the leader change)
  bool stuck_batch;  // a stuck batch stops holding the queue
};

void PrintTo(const StrandedCase& c, std::ostream* os) { *os << c.name; }

class StrandedCommitsTest : public EtcdStoreTest,
                            public ::testing::WithParamInterface<StrandedCase> {};

// The raft leader is killed while commits flow through a follower. etcd
// 3.4 drops proposals forwarded to a leader that died and holds them until
// the request's deadline (10 s here). With the health probe (cancel what was
// sent before the leader changed) or with the stuck-batch rule (let the
// commits behind a stuck batch go), commits resume within a few election
// timeouts, and no call waits for the deadline. Every outcome is what it
// says: acknowledged ones applied, refused ones not, unknown ones resolved
// by reading.
TEST_P(StrandedCommitsTest, CommitsResumeSoonAfterTheLeaderDies) {
  ASSERT_NO_FATAL_FAILURE(Start(3));
  absl::StatusOr<int> leader = cluster_->Leader(0);
  ASSERT_TRUE(leader.ok()) << leader.status();
  const int follower = (*leader + 1) % cluster_->size();
  EtcdOptions options = TestOptions(*cluster_, "stranded/");
  std::rotate(options.endpoints.begin(), options.endpoints.begin() + follower,
              options.endpoints.end());
  options.request_timeout = milliseconds(10000);
  options.health_probe_interval = milliseconds(GetParam().probe ? 100 : 0);
  options.stuck_batch_after = milliseconds(GetParam().stuck_batch ? 100 : 0);
  std::unique_ptr<EtcdStore> store = Open(options);
  ASSERT_NE(store, nullptr);

  constexpr int kThreads = 6;
  enum Outcome { kOk, kConflict, kUnavailable, kUnknown, kOther };
  auto outcome_of = [](const absl::StatusOr<uint64_t>& r) {
    return r.ok()                            ? kOk
           : IsConflict(r.status())          ? kConflict
           : absl::IsUnavailable(r.status()) ? kUnavailable
           : absl::IsUnknown(r.status())     ? kUnknown
                                             : kOther;
  };
  struct Attempt {
    std::string key;
    Outcome outcome;
    double started, took;  // seconds since the start
  };
  std::mutex mu;
  std::vector<Attempt> attempts;
  std::atomic<bool> stop{false};
  const auto t0 = SteadyClock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; !stop.load(); ++i) {
        const std::string key = absl::StrCat("rec/", t, "/", i);
        const double started = SecondsSince(t0);
        absl::StatusOr<uint64_t> r = store->Commit({{key, 0}}, {Write::Put(key, "1")});
        const Outcome o = outcome_of(r);
        std::lock_guard<std::mutex> l(mu);
        attempts.push_back({key, o, started, SecondsSince(t0) - started});
        if (o == kUnavailable) std::this_thread::sleep_for(milliseconds(20));
      }
    });
  }
  // New requests keep arriving, as on a server with many clients (the
  // callers above may all be waiting in stuck batches): one commit every
  // 20 ms, not waited for.
  std::atomic<int> unanswered{0};
  threads.emplace_back([&] {
    for (int i = 0; !stop.load(); ++i) {
      const std::string key = absl::StrCat("arrival/", i);
      const double started = SecondsSince(t0);
      ++unanswered;
      store->CommitAsync({{key, 0}}, {Write::Put(key, "1")},
                         [&, key, started](absl::StatusOr<uint64_t> r) {
                           std::lock_guard<std::mutex> l(mu);
                           attempts.push_back(
                               {key, outcome_of(r), started, SecondsSince(t0) - started});
                           --unanswered;
                         });
      std::this_thread::sleep_for(milliseconds(20));
    }
  });
  std::this_thread::sleep_for(milliseconds(500));
  const double killed_at = SecondsSince(t0);
  EXPECT_TRUE(cluster_->Kill(*leader).ok());
  // Long enough for a quick resumption and short of the 10 s deadline.
  std::this_thread::sleep_for(milliseconds(4500));
  stop = true;
  for (std::thread& th : threads) th.join();
  // Every commit is answered by its request deadline (10 s).
  while (unanswered.load() > 0 && SecondsSince(t0) < 30) {
    std::this_thread::sleep_for(milliseconds(50));
  }
  ASSERT_EQ(unanswered.load(), 0);
  std::lock_guard<std::mutex> done(mu);

  double first_ok_after_kill = -1, longest = 0;
  int unknown = 0;
  for (const Attempt& a : attempts) {
    longest = std::max(longest, a.took);
    if (a.outcome == kOk && a.started > killed_at &&
        (first_ok_after_kill < 0 || a.started + a.took < first_ok_after_kill)) {
      first_ok_after_kill = a.started + a.took;
    }
    if (a.outcome == kUnknown) ++unknown;
    EXPECT_NE(a.outcome, kOther) << a.key;
  }
  std::printf("%s: %zu commits, first success %.2f s after the kill, longest call %.2f s, "
              "%d unknown, %llu stuck batches, %llu cancelled calls\n",
              GetParam().name, attempts.size(), first_ok_after_kill - killed_at, longest,
              unknown,
              static_cast<unsigned long long>(store->Stats().stuck_batches),
              static_cast<unsigned long long>(store->Stats().cancelled_calls));
  ASSERT_GT(first_ok_after_kill, 0) << "no commit succeeded after the kill";
  EXPECT_LT(first_ok_after_kill - killed_at, 3.0)
      << "commits should resume a few election timeouts (500 ms) after the kill";
  if (GetParam().probe) {
    // The stranded calls themselves are cancelled (the rule alone only
    // stops them from holding the others: etcd answers them after its own
    // timeout, about 6 s here).
    EXPECT_LT(longest, 4.0) << "a call waited for (most of) its 10 s deadline";
  }

  // Every outcome is what it says.
  int unknown_applied = 0;
  for (const Attempt& a : attempts) {
    absl::StatusOr<Versioned> v = store->Get(a.key);
    ASSERT_TRUE(v.ok()) << v.status();
    if (a.outcome == kOk) {
      EXPECT_TRUE(v->present()) << a.key << " acknowledged but lost";
    }
    if (a.outcome == kUnavailable || a.outcome == kConflict) {
      EXPECT_FALSE(v->present()) << a.key << " refused but applied";
    }
    if (a.outcome == kUnknown && v->present()) ++unknown_applied;
  }
  std::printf("%s: %d of the %d unknown outcomes were applied\n", GetParam().name,
              unknown_applied, unknown);
}

INSTANTIATE_TEST_SUITE_P(
    Etcd, StrandedCommitsTest,
    ::testing::Values(StrandedCase{"HealthProbe", true, false},
                      StrandedCase{"StuckBatchRule", false, true}),
    [](const ::testing::TestParamInfo<StrandedCase>& i) { return std::string(i.param.name); });

// A restored host's server opens its store while its own member (the first
// endpoint) is still down: Open waits until that member serves, so the
// server listens and campaigns only then, on its own member.
TEST_F(EtcdStoreTest, OpenWaitsForTheFirstEndpoint) {
  ASSERT_NO_FATAL_FAILURE(Start(3));
  ASSERT_TRUE(cluster_->Kill(0).ok());
  EtcdOptions options = TestOptions(*cluster_, "wait/");
  options.wait_for_first_endpoint = milliseconds(20000);
  // Open on another thread: the member is restarted from this one (the
  // launcher's children die with the thread that started them).
  std::unique_ptr<EtcdStore> store;
  double waited = 0;
  std::thread opener([&] {
    const auto t0 = SteadyClock::now();
    store = Open(options);
    waited = SecondsSince(t0);
  });
  std::this_thread::sleep_for(milliseconds(1000));
  EXPECT_TRUE(cluster_->Restart(0).ok());
  EXPECT_TRUE(cluster_->WaitReady(0, milliseconds(20000)).ok());
  opener.join();
  ASSERT_NE(store, nullptr);
  EXPECT_GE(waited, 1.0) << "opened before its own member was back";
  EXPECT_LT(waited, 19.0);
  EXPECT_EQ(store->CurrentEndpoint(), cluster_->ClientEndpoint(0));
  EXPECT_TRUE(store->Commit({}, {Write::Put("k", "v")}).ok());

  // A member that does not come back: the wait ends, the store works on the
  // others.
  ASSERT_TRUE(cluster_->Kill(0).ok());
  options.wait_for_first_endpoint = milliseconds(500);
  const auto t1 = SteadyClock::now();
  std::unique_ptr<EtcdStore> other = Open(options);
  ASSERT_NE(other, nullptr);
  EXPECT_LT(SecondsSince(t1), 3.0);
  absl::StatusOr<Versioned> v = other->Get("k");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->value, "v");
}

// -------------------------------------------------- records that fit ----

// The value of statistic `name` (-1: none).
double Statistic(const EtcdStore& store, const std::string& name) {
  for (const StoreStatistic& s : store.Statistics()) {
    if (s.name == name) return s.value;
  }
  return -1;
}

// A Range of `key` at `revision`, raw: the status etcd gives.
absl::Status ReadAtRevision(EtcdStore& store, const std::string& key, int64_t revision) {
  etcdserverpb::RangeRequest req;
  req.set_key(key);
  req.set_revision(revision);
  etcdserverpb::RangeResponse resp;
  return store.client().Call(
      etcd_internal::CallKind::kRead,
      [&](etcd_internal::Endpoint& ep, grpc::ClientContext& ctx) {
        return ep.kv->Range(&ctx, req, &resp);
      });
}

// The store compacts etcd's history on its schedule (the first turn notes
// the revision, the next compacts to it): old revisions of a key written
// over and over are gone; current values and versions are untouched. With
// compaction off, the history stays.
TEST_F(EtcdStoreTest, HistoryIsCompactedOnASchedule) {
  ASSERT_NO_FATAL_FAILURE(Start(1));
  EtcdOptions options = TestOptions(*cluster_, "compact/");
  options.compaction_interval = std::chrono::seconds(1);
  std::unique_ptr<EtcdStore> store = Open(options);
  EtcdOptions off = TestOptions(*cluster_, "compact/");
  off.compaction_interval = std::chrono::seconds(0);
  std::unique_ptr<EtcdStore> no_compaction = Open(off);
  ASSERT_NE(store, nullptr);
  ASSERT_NE(no_compaction, nullptr);
  uint64_t first = 0, last = 0;
  for (int i = 0; i < 20; ++i) {
    absl::StatusOr<uint64_t> r = store->Commit({{"k", last}}, {Write::Put("k", absl::StrCat(i))});
    ASSERT_TRUE(r.ok()) << r.status();
    if (i == 0) first = *r;
    last = *r;
  }
  ASSERT_TRUE(ReadAtRevision(*no_compaction, "compact/k", static_cast<int64_t>(first)).ok());
  const auto t0 = SteadyClock::now();
  while (store->Stats().compactions == 0 && SecondsSince(t0) < 15) {
    std::this_thread::sleep_for(milliseconds(100));
  }
  ASSERT_GE(store->Stats().compactions, 1u);
  EXPECT_GE(store->Stats().compacted_revision, last);
  absl::Status old = ReadAtRevision(*store, "compact/k", static_cast<int64_t>(first));
  EXPECT_FALSE(old.ok());
  EXPECT_TRUE(absl::StrContains(old.message(), "compacted")) << old;
  absl::StatusOr<Versioned> v = store->Get("k");
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->value, "19");
  EXPECT_EQ(v->version, last);
  EXPECT_EQ(no_compaction->Stats().compactions, 0u);
  EXPECT_GE(Statistic(*store, "compactions"), 1);
}

// The size statistics that /metrics and /baton/stats show: keys under the
// prefix, the member's database size, the quota, the commit rate it holds.
TEST_F(EtcdStoreTest, StatisticsShowKeysAndDatabaseSize) {
  ASSERT_NO_FATAL_FAILURE(Start(1));
  EtcdOptions options = TestOptions(*cluster_, "stats/");
  options.statistics_interval = std::chrono::seconds(1);
  options.quota_backend_bytes = 64u << 20;
  options.record_retention = std::chrono::seconds(3600);
  std::unique_ptr<EtcdStore> store = Open(options);
  ASSERT_NE(store, nullptr);
  for (int i = 0; i < 25; ++i) {
    ASSERT_TRUE(store->Commit({}, {Write::Put(absl::StrCat("k", i), std::string(100, 'v'))}).ok());
  }
  const auto t0 = SteadyClock::now();
  while (Statistic(*store, "keys") != 25 && SecondsSince(t0) < 10) {
    std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_EQ(Statistic(*store, "keys"), 25);
  EXPECT_GT(Statistic(*store, "db_size_bytes"), 0);
  EXPECT_GT(Statistic(*store, "db_size_in_use_bytes"), 0);
  EXPECT_GT(Statistic(*store, "revision"), 0);
  EXPECT_EQ(Statistic(*store, "quota_bytes"), 64u << 20);
  EXPECT_GE(Statistic(*store, "written_bytes"), 25 * 100);
  // 64 MiB, half usable, 1 h + 2 compaction intervals, ~2.1 x 103 B each.
  const double rate = Statistic(*store, "sustainable_commit_rate");
  EXPECT_GT(rate, 30);
  EXPECT_LT(rate, 60);
}

// A configured rate the quota cannot hold for the retention is logged at
// open, naming the quota and what to do.
TEST_F(EtcdStoreTest, QuotaTooSmallForTheRateIsLoggedAtOpen) {
  ASSERT_NO_FATAL_FAILURE(Start(1));
  auto sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(64);
  spdlog::default_logger()->sinks().push_back(sink);
  EtcdOptions options = TestOptions(*cluster_, "quota/");
  options.quota_backend_bytes = 64u << 20;
  options.record_retention = std::chrono::seconds(86400);
  options.expected_commits_per_second = 10;
  std::unique_ptr<EtcdStore> small = Open(options);
  options.quota_backend_bytes = 8ull << 30;
  options.expected_commits_per_second = 1;
  std::unique_ptr<EtcdStore> fits = Open(options);
  spdlog::default_logger()->sinks().pop_back();
  std::vector<std::string> lines = sink->last_formatted();
  int warnings = 0;
  for (const std::string& l : lines) {
    if (absl::StrContains(l, "quota of 64 MiB") && absl::StrContains(l, "NOSPACE")) ++warnings;
    EXPECT_FALSE(absl::StrContains(l, "quota of 8192 MiB")) << l;
  }
  EXPECT_EQ(warnings, 1);
}

// --------------------------------------------------------- group commit ----

// Commits run one after another per thread, many threads at once: each
// writes its own key, half of them with a wrong expected version. Group
// commit must send several in one Txn, and still give each its own outcome:
// the wrong ones fail with a conflict naming their key and write nothing,
// the right ones succeed, and every key holds exactly what its successes
// wrote.
TEST_F(EtcdStoreTest, GroupCommitGivesEachCommitItsOwnOutcome) {
  ASSERT_NO_FATAL_FAILURE(Start(1));
  std::unique_ptr<EtcdStore> store = Open(TestOptions(*cluster_, "group/"));
  ASSERT_NE(store, nullptr);
  constexpr int kThreads = 24;
  constexpr int kRounds = 40;
  std::atomic<int> unexpected{0};
  std::vector<int> successes(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string key = absl::StrCat("k", t);
      uint64_t version = 0;
      for (int i = 0; i < kRounds; ++i) {
        const bool wrong = i % 2 == 1;
        absl::StatusOr<uint64_t> r = store->Commit(
            {{key, wrong ? version + 1000000 : version}},
            {Write::Put(key, absl::StrCat(i)), Write::Put(absl::StrCat(key, "/", i), "x")});
        if (wrong) {
          if (!IsConflict(r.status()) || ConflictKey(r.status()) != key) ++unexpected;
        } else if (r.ok()) {
          version = *r;
          ++successes[t];
        } else {
          ++unexpected;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(unexpected.load(), 0);
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(successes[t], kRounds / 2);
    absl::StatusOr<Versioned> v = store->Get(absl::StrCat("k", t));
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(v->value, absl::StrCat(kRounds - 2)) << "the last correct commit wins";
    for (int i = 0; i < kRounds; ++i) {
      absl::StatusOr<Versioned> r = store->Get(absl::StrCat("k", t, "/", i));
      ASSERT_TRUE(r.ok());
      EXPECT_EQ(r->present(), i % 2 == 0) << "k" << t << "/" << i << ": a failed commit wrote";
    }
  }
  const EtcdStoreStats stats = store->Stats();
  EXPECT_EQ(stats.commits, static_cast<uint64_t>(kThreads * kRounds));
  EXPECT_LT(stats.commit_txns, stats.commits) << "no two commits ever shared a Txn";
}

// Threads increment one shared counter by read-modify-write commits. Two of
// them in one Txn would both pass their compare against the state before the
// Txn and one increment would be lost; group commit must send commits that
// write the same key in different Txns. The counter must equal the number
// of acknowledged increments.
// 16 threads x 25 acknowledged increments of "counter" by read-modify-write
// commits on stale-allowed reads; checks the counter.
void IncrementSharedCounter(EtcdStore& store) {
  constexpr int kThreads = 16;
  constexpr int kIncrements = 25;
  std::atomic<int> acknowledged{0};
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int done = 0, tries = 0; done < kIncrements && tries < 2000; ++tries) {
        // Stale-allowed reads, as the pipeline's first run makes them: the
        // read cache may answer with what this process committed last.
        absl::StatusOr<std::vector<Versioned>> cur =
            store.GetMany({"counter", absl::StrCat("mine", t)},
                          {.consistency = ReadConsistency::kMayBeStale});
        if (!cur.ok()) {
          ++errors;
          return;
        }
        const int64_t n = (*cur)[0].present() ? std::stoll((*cur)[0].value) : 0;
        absl::StatusOr<uint64_t> r =
            store.Commit({{"counter", (*cur)[0].version}},
                         {Write::Put("counter", absl::StrCat(n + 1)),
                          Write::Put(absl::StrCat("mine", t), absl::StrCat(done + 1))});
        if (r.ok()) {
          ++done;
          ++acknowledged;
        } else if (!IsConflict(r.status())) {
          ++errors;
          return;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  ASSERT_EQ(errors.load(), 0);
  EXPECT_EQ(acknowledged.load(), kThreads * kIncrements);
  absl::StatusOr<Versioned> c = store.Get("counter");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->value, absl::StrCat(acknowledged.load()))
      << "an acknowledged increment was lost (two read-modify-writes of one key shared a Txn?)";
}

TEST_F(EtcdStoreTest, GroupCommitNeverLosesAnUpdateToASharedKey) {
  ASSERT_NO_FATAL_FAILURE(Start(1));
  std::unique_ptr<EtcdStore> store = Open(TestOptions(*cluster_, "shared/"));
  ASSERT_NE(store, nullptr);
  IncrementSharedCounter(*store);
}

// The same with three batches in flight at once. Commits of one key never
// share a batch, so here up to three single-commit Txns race for the counter
// and etcd orders them: each is atomic on its own, none may be lost.
TEST_F(EtcdStoreTest, GroupCommitWithSeveralBatchesInFlightLosesNoUpdate) {
  ASSERT_NO_FATAL_FAILURE(Start(1));
  EtcdOptions options = TestOptions(*cluster_, "shared3/");
  options.max_commit_txns_in_flight = 3;
  std::unique_ptr<EtcdStore> store = Open(options);
  ASSERT_NE(store, nullptr);
  IncrementSharedCounter(*store);
}

// A burst of commits while one is in flight fills a batch up to etcd's
// --max-txn-ops (128, the default on both sides). etcd allows a nested Txn
// only max_txn_ops minus the outer Txn's ops, so a batch of 128 one-op
// commits was refused ("too many operations in txn request") and every
// commit in it failed with kResourceExhausted.
TEST_F(EtcdStoreTest, BurstOfCommitsFitsEtcdsTxnOpsLimit) {
  ASSERT_NO_FATAL_FAILURE(Start(1));
  std::unique_ptr<EtcdStore> store = Open(TestOptions(*cluster_, "burst/"));
  ASSERT_NE(store, nullptr);
  constexpr int kCommits = 400;
  std::mutex mu;
  std::condition_variable cv;
  int answered = 0;
  std::vector<absl::Status> failures;
  for (int i = 0; i < kCommits; ++i) {
    const std::string key = absl::StrCat("k", i);
    store->CommitAsync({{key, 0}}, {Write::Put(key, "v")}, [&](absl::StatusOr<uint64_t> r) {
      std::lock_guard<std::mutex> l(mu);
      if (!r.ok()) failures.push_back(r.status());
      ++answered;
      cv.notify_all();
    });
  }
  std::unique_lock<std::mutex> l(mu);
  ASSERT_TRUE(cv.wait_for(l, std::chrono::seconds(30), [&] { return answered == kCommits; }));
  EXPECT_TRUE(failures.empty()) << failures.size() << " failed, e.g. " << failures[0];
  EXPECT_LT(store->Stats().commit_txns, static_cast<uint64_t>(kCommits)) << "no batching happened";
}

// With group commit off, every commit is its own Txn.
TEST_F(EtcdStoreTest, GroupCommitOffSendsOneTxnPerCommit) {
  ASSERT_NO_FATAL_FAILURE(Start(1));
  EtcdOptions options = TestOptions(*cluster_, "nogroup/");
  options.group_commits = false;
  std::unique_ptr<EtcdStore> store = Open(options);
  ASSERT_NE(store, nullptr);
  std::vector<std::thread> threads;
  std::atomic<int> failed{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        if (!store->Commit({}, {Write::Put(absl::StrCat("k", t, "-", i), "v")}).ok()) ++failed;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(store->Stats().commits, 160u);
  EXPECT_EQ(store->Stats().commit_txns, 160u);
}

// ------------------------------------------------------------ read cache ----

// Two servers share the cluster. A's stale-allowed reads come from its cache
// (no round trip) and may miss B's newer write; a commit conditioned on
// such a read fails, names the key, and writes nothing; A's latest read then
// refreshes the cache, and the retried commit succeeds.
TEST_F(EtcdStoreTest, ReadCacheIsStaleOnlyUntilACommitConditionSaysSo) {
  ASSERT_NO_FATAL_FAILURE(Start(1));
  std::unique_ptr<EtcdStore> a = Open(TestOptions(*cluster_, "cache/"));
  std::unique_ptr<EtcdStore> b = Open(TestOptions(*cluster_, "cache/"));
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  const ReadOptions stale{.consistency = ReadConsistency::kMayBeStale};

  // A reads k (absent; now cached), writes it, and reads it back from the
  // cache: its own commit updated the entry.
  absl::StatusOr<std::vector<Versioned>> r = a->GetMany({"k"}, stale);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE((*r)[0].present());
  absl::StatusOr<uint64_t> v1 = a->Commit({{"k", 0}}, {Write::Put("k", "a1")});
  ASSERT_TRUE(v1.ok()) << v1.status();
  const uint64_t hits0 = a->Stats().cache_hits;
  r = a->GetMany({"k"}, stale);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)[0].value, "a1");
  EXPECT_EQ((*r)[0].version, *v1);
  EXPECT_EQ(a->Stats().cache_hits, hits0 + 1) << "A's own commit should answer A's stale read";
  // A key A writes but never read (a completion record, say) is not cached.
  ASSERT_TRUE(a->Commit({}, {Write::Put("written-only", "x")}).ok());
  const uint64_t misses1 = a->Stats().cache_misses;
  r = a->GetMany({"written-only"}, stale);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].value, "x");
  EXPECT_EQ(a->Stats().cache_misses, misses1 + 1);

  absl::StatusOr<uint64_t> v2 = b->Commit({{"k", *v1}}, {Write::Put("k", "b2")});
  ASSERT_TRUE(v2.ok()) << v2.status();
  r = a->GetMany({"k"}, stale);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].value, "a1") << "served from A's cache: stale, but a state k really had";

  absl::StatusOr<uint64_t> lost = a->Commit({{"k", (*r)[0].version}}, {Write::Put("k", "a3")});
  ASSERT_TRUE(IsConflict(lost.status())) << lost.status();
  EXPECT_EQ(ConflictKey(lost.status()), "k");
  absl::StatusOr<Versioned> latest = a->Get("k");
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(latest->value, "b2");
  r = a->GetMany({"k"}, stale);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].value, "b2") << "the latest read refreshes the cache";
  absl::StatusOr<uint64_t> v3 = a->Commit({{"k", (*r)[0].version}}, {Write::Put("k", "a3")});
  ASSERT_TRUE(v3.ok()) << v3.status();

  // A delete is cached as absent; a key never seen is read from etcd.
  ASSERT_TRUE(a->Commit({{"k", *v3}}, {Write::Delete("k")}).ok());
  const uint64_t misses0 = a->Stats().cache_misses;
  r = a->GetMany({"k", "never-seen"}, stale);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE((*r)[0].present());
  EXPECT_FALSE((*r)[1].present());
  EXPECT_EQ(a->Stats().cache_misses, misses0 + 1);
}

// read_cache_bytes = 0: every stale-allowed read goes to etcd.
TEST_F(EtcdStoreTest, ReadCacheOffReadsEveryKeyFromEtcd) {
  ASSERT_NO_FATAL_FAILURE(Start(1));
  EtcdOptions options = TestOptions(*cluster_, "nocache/");
  options.read_cache_bytes = 0;
  std::unique_ptr<EtcdStore> a = Open(options);
  std::unique_ptr<EtcdStore> b = Open(TestOptions(*cluster_, "nocache/"));
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(a->Commit({}, {Write::Put("k", "a1")}).ok());
  ASSERT_TRUE(b->Commit({}, {Write::Put("k", "b2")}).ok());
  absl::StatusOr<std::vector<Versioned>> r =
      a->GetMany({"k"}, {.consistency = ReadConsistency::kMayBeStale});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)[0].value, "b2") << "one member: a serializable read sees every commit";
  EXPECT_EQ(a->Stats().cache_hits, 0u);
  EXPECT_EQ(a->Stats().cache_misses, 1u);
}

}  // namespace
}  // namespace baton::storage

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new baton::storage::RequireEtcd());
  return RUN_ALL_TESTS();
}
