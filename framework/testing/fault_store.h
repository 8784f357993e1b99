// A StableStore wrapper for tests: injects faults into commits and reports
// every commit that became durable. Wraps any backend (the in-memory store
// of storage/memory/, RocksDB, etcd); reads pass through unchanged.
//
//   auto store = baton::storage::OpenMemoryStore();
//   baton::testing::FaultStore faults(**store);
//   faults.InjectNext(baton::testing::Fault::UnknownApplied());  // one commit
//   faults.AddRule({.fault = baton::testing::Fault::Unavailable(),   // a rule
//                   .matches = baton::testing::WritingKey("acct/a"),
//                   .skip = 1, .times = 2});
//   RequestPipeline pipeline(faults, clock);
//
// Faults (Fault::Kind), per commit:
//   kUnknownApplied     the commit is applied (durable) but answered kUnknown:
//                       a timeout after the store acted.
//   kUnknownNotApplied  not applied, answered kUnknown: a timeout before it.
//   kUnavailable        refused, not applied: kUnavailable.
//   kConflict           not applied, answered kAborted naming a key
//                       (Fault::conflict_key, or the first condition outside
//                       the reserved key space, else the first condition):
//                       what a concurrent writer causes.
//   latency             real time (absl::SleepFor; asynchronous commits wait
//                       on a timer thread, so the caller is not blocked)
//                       before the commit reaches the inner store or gets its
//                       injected answer; combines with any kind. Real time,
//                       not an injected clock: it is there to make commits
//                       overlap and to hold a commit in flight, which a
//                       simulated clock cannot do.
// Which commit gets a fault: InjectNext() for the next one (matching a
// predicate), or rules (AddRule): the first rule in the order added whose
// predicate matches, after skipping its first `skip` matches, for `times`
// matches. SetDown(true) makes every call answer kUnavailable (a store that
// is down).
//
// Hooks (by id, any number):
//   before commit  on the committing thread, before the fault is chosen
//                  (e.g. to race a concurrent write in through the inner
//                  store);
//   after durable  when the inner store acknowledged the commit, before its
//                  caller is answered (also for kUnknownApplied), on the
//                  thread that got the acknowledgement (the store's commit
//                  thread for CommitAsync). OnNthCompletionRecord() builds
//                  the crash-after-commit hook of the kv server's
//                  --test-kill-after-records.
// Hooks run outside the FaultStore's lock (they may use the inner store);
// predicates run under it and must not call the FaultStore. Errors: those
// of the inner store, plus the injected ones (messages say "injected").
//
// Thread safety: thread-safe. `inner` must outlive the FaultStore (or be
// owned by it); the
// FaultStore's destructor forwards delayed asynchronous commits at once, so
// every callback is called exactly once.
#ifndef BATON_FRAMEWORK_TESTING_FAULT_STORE_H_
#define BATON_FRAMEWORK_TESTING_FAULT_STORE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "storage/stable_store.h"

namespace baton::testing {

// One commit as it passes a FaultStore.
struct CommitInfo {
  uint64_t sequence = 0;  // 1, 2, ... in the order commits arrived.
  bool async = false;     // Came through CommitAsync.
  const std::vector<storage::Condition>& conditions;
  const std::vector<storage::Write>& writes;
};

struct Fault {
  enum class Kind {
    kNone,
    kUnknownApplied,
    kUnknownNotApplied,
    kUnavailable,
    kConflict,
  };
  Kind kind = Kind::kNone;
  // Real time before the commit goes on (see the file comment).
  // Default: none.
  absl::Duration latency = absl::ZeroDuration();
  // kConflict: the key the conflict names. Default: empty (a condition's).
  std::string conflict_key;

  static Fault UnknownApplied() { return Of(Kind::kUnknownApplied); }
  static Fault UnknownNotApplied() { return Of(Kind::kUnknownNotApplied); }
  static Fault Unavailable() { return Of(Kind::kUnavailable); }
  static Fault Conflict(std::string key = "") {
    Fault f = Of(Kind::kConflict);
    f.conflict_key = std::move(key);
    return f;
  }
  static Fault Latency(absl::Duration d) {
    Fault f;
    f.latency = d;
    return f;
  }
  // This fault, after `d` of real time.
  Fault After(absl::Duration d) && {
    latency = d;
    return std::move(*this);
  }

 private:
  static Fault Of(Kind kind) {
    Fault f;
    f.kind = kind;
    return f;
  }
};

// Which commits a rule applies to. Must be cheap, must not block and must
// not call the FaultStore (it runs under its lock).
using CommitPredicate = std::function<bool(const CommitInfo&)>;

struct FaultRule {
  Fault fault;
  // nullptr: every commit. Default: nullptr.
  CommitPredicate matches;
  // The first `skip` matching commits pass unchanged. Default: 0.
  int skip = 0;
  // Then this many matching commits get the fault; kEveryTime: all of them.
  // Default: 1.
  int times = 1;
  static constexpr int kEveryTime = -1;
};

// Commits that write something (not the conditions-only checks the
// pipeline makes for read-only requests).
CommitPredicate WithWrites();
// Commits that put or delete `key`, or any key starting with `prefix`.
CommitPredicate WritingKey(std::string key);
CommitPredicate WritingPrefix(std::string prefix);
// Commits that write a completion record of the request pipeline (the
// commit of a request with an id; see the key layout in pipeline.h).
CommitPredicate WritingCompletionRecord();
bool IsCompletionRecordKey(std::string_view key);

using BeforeCommitHook = std::function<void(const CommitInfo&)>;
using DurableHook = std::function<void(const CommitInfo&, uint64_t revision)>;

// A durable hook that runs `action` once, right after the `n`th durable
// commit that wrote a completion record (n >= 1), before its caller is
// answered. The kv server's crash test:
//   faults.AddDurableHook(OnNthCompletionRecord(n, [] { raise(SIGKILL); }));
DurableHook OnNthCompletionRecord(int n, std::function<void()> action);

struct FaultStoreStats {
  uint64_t commits = 0;    // Commits that arrived.
  uint64_t injected = 0;   // Of those, how many got a fault (latency too).
  uint64_t durable = 0;    // Acknowledged by the inner store.
};

class FaultStore : public storage::StableStore {
 public:
  explicit FaultStore(storage::StableStore& inner);
  // Owns `inner`.
  explicit FaultStore(std::unique_ptr<storage::StableStore> inner);
  ~FaultStore() override;

  FaultStore(const FaultStore&) = delete;
  FaultStore& operator=(const FaultStore&) = delete;

  // The next commit (matching `matches`, if given) gets `fault`; several
  // calls queue up in order, ahead of the rules.
  void InjectNext(Fault fault, CommitPredicate matches = nullptr);
  // Adds a rule; returns its id for RemoveRule.
  int AddRule(FaultRule rule);
  void RemoveRule(int id);
  // Removes every rule and queued fault.
  void ClearFaults();
  // While down, every call answers kUnavailable and nothing is applied.
  void SetDown(bool down);

  int AddBeforeCommitHook(BeforeCommitHook hook);
  int AddDurableHook(DurableHook hook);
  void RemoveHook(int id);

  FaultStoreStats Stats() const;
  storage::StableStore& inner() { return inner_; }

  // StableStore.
  absl::StatusOr<storage::Versioned> Get(std::string_view key) override;
  absl::StatusOr<std::vector<storage::Versioned>> GetMany(
      const std::vector<std::string>& keys,
      const storage::ReadOptions& options) override;
  absl::StatusOr<std::vector<storage::KeyValue>> Scan(
      const storage::ScanOptions& options) override;
  absl::StatusOr<uint64_t> Commit(
      const std::vector<storage::Condition>& conditions,
      const std::vector<storage::Write>& writes) override;
  void CommitAsync(std::vector<storage::Condition> conditions,
                   std::vector<storage::Write> writes,
                   CommitCallback done) override;
  bool CommitsAsynchronously() const override;
  bool StaleReadsAreCheaper() const override;
  absl::Status Ping() override;
  // The inner store's (a FaultStore is invisible on status pages).
  std::string Kind() const override;
  size_t MaxCommitOps() const override;
  std::vector<storage::StoreStatistic> Statistics() const override;

 private:
  class Delayer;
  struct Rule {
    int id;
    FaultRule rule;
  };

  template <typename Fn>
  using HookList = std::vector<std::pair<int, std::shared_ptr<const Fn>>>;
  // `list`: before_hooks_ or durable_hooks_.
  template <typename Fn>
  int AddHook(HookList<Fn> FaultStore::*list, Fn hook);
  // The hooks of `list` now, to run outside mu_.
  template <typename Fn>
  std::vector<std::shared_ptr<const Fn>> Snapshot(HookList<Fn> FaultStore::*list);

  // Runs the before hooks and picks the fault for `info`.
  Fault Decide(const CommitInfo& info);
  void RunDurableHooks(const CommitInfo& info, uint64_t revision);
  absl::Status DownError() const;

  const std::unique_ptr<storage::StableStore> owned_;  // Or nullptr.
  storage::StableStore& inner_;
  std::atomic<bool> down_{false};
  std::atomic<uint64_t> sequence_{0}, injected_{0}, durable_{0};

  mutable absl::Mutex mu_;
  int next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::vector<Rule> rules_ ABSL_GUARDED_BY(mu_);  // InjectNext()s first.
  size_t queued_ ABSL_GUARDED_BY(mu_) = 0;         // How many of them.
  HookList<BeforeCommitHook> before_hooks_ ABSL_GUARDED_BY(mu_);
  HookList<DurableHook> durable_hooks_ ABSL_GUARDED_BY(mu_);

  std::unique_ptr<Delayer> delayer_;
};

// A FaultStore that owns a fresh in-memory store (storage/memory/), whose
// CommitAsync runs on a committer thread (async_commits, as RocksDB) or on
// the caller's thread (as etcd); inner() is that store (writes through it
// bypass the faults).
std::unique_ptr<FaultStore> NewMemoryFaultStore(bool async_commits = true);

}  // namespace baton::testing

#endif  // BATON_FRAMEWORK_TESTING_FAULT_STORE_H_
