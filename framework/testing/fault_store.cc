#include "framework/testing/fault_store.h"

#include <cstdio>
#include <cstdlib>
#include <map>
#include <thread>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "storage/memory/memory_store.h"

namespace baton::testing {

using storage::Condition;
using storage::Write;

// Runs jobs at their due time on a thread of its own (started on first
// use); the destructor runs the jobs still waiting at once.
class FaultStore::Delayer {
 public:
  ~Delayer() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    if (thread_.joinable()) thread_.join();
  }

  void Schedule(absl::Duration delay, absl::AnyInvocable<void()> job) {
    absl::MutexLock lock(&mu_);
    jobs_.emplace(absl::Now() + delay, std::move(job));
    if (!thread_.joinable()) thread_ = std::thread([this] { Loop(); });
  }

 private:
  void Loop() {
    absl::MutexLock lock(&mu_);
    for (;;) {
      if (jobs_.empty()) {
        if (stopping_) return;
        mu_.Await(absl::Condition(
            +[](Delayer* d) ABSL_EXCLUSIVE_LOCKS_REQUIRED(d->mu_) {
              return d->stopping_ || !d->jobs_.empty();
            },
            this));
        continue;
      }
      auto first = jobs_.begin();
      if (!stopping_ && first->first > absl::Now()) {
        // Woken early by a new job or by stopping_; look again.
        mu_.AwaitWithDeadline(
            absl::Condition(
                +[](Delayer* d) ABSL_EXCLUSIVE_LOCKS_REQUIRED(d->mu_) {
                  return d->stopping_ || d->changed_;
                },
                this),
            first->first);
        changed_ = false;
        continue;
      }
      absl::AnyInvocable<void()> job = std::move(first->second);
      jobs_.erase(first);
      mu_.Unlock();
      job();
      mu_.Lock();
    }
  }

  absl::Mutex mu_;
  std::multimap<absl::Time, absl::AnyInvocable<void()>> jobs_
      ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool changed_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

namespace {

bool WritesMatching(const CommitInfo& info,
                    const std::function<bool(std::string_view)>& pred) {
  for (const Write& w : info.writes) {
    if (pred(w.key)) return true;
  }
  return false;
}

// The key a kConflict fault names (see Fault::conflict_key).
std::string ConflictKeyFor(const Fault& f, const CommitInfo& info) {
  if (!f.conflict_key.empty()) return f.conflict_key;
  for (const Condition& c : info.conditions) {
    if (!storage::IsReservedKey(c.key)) return c.key;
  }
  return info.conditions.empty() ? std::string() : info.conditions[0].key;
}

// The answer of a fault that keeps the commit from the inner store.
absl::Status RefusedBy(const Fault& f, const CommitInfo& info) {
  switch (f.kind) {
    case Fault::Kind::kUnknownNotApplied:
      return absl::UnknownError("injected fault: commit outcome unknown");
    case Fault::Kind::kUnavailable:
      return absl::UnavailableError("injected fault: store unavailable");
    case Fault::Kind::kConflict:
      return storage::ConflictError(ConflictKeyFor(f, info));
    case Fault::Kind::kNone:
    case Fault::Kind::kUnknownApplied:
      break;
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> Answer(const Fault& f, absl::StatusOr<uint64_t> r) {
  if (f.kind == Fault::Kind::kUnknownApplied && r.ok()) {
    return absl::UnknownError("injected fault: commit outcome unknown");
  }
  return r;
}

}  // namespace

CommitPredicate WithWrites() {
  return [](const CommitInfo& info) { return !info.writes.empty(); };
}

CommitPredicate WritingKey(std::string key) {
  return [key = std::move(key)](const CommitInfo& info) {
    return WritesMatching(info, [&](std::string_view k) { return k == key; });
  };
}

CommitPredicate WritingPrefix(std::string prefix) {
  return [prefix = std::move(prefix)](const CommitInfo& info) {
    return WritesMatching(info, [&](std::string_view k) {
      return k.substr(0, prefix.size()) == prefix;
    });
  };
}

bool IsCompletionRecordKey(std::string_view key) {
  // pipeline.h: "\xff fw/c/..." are completion records.
  static constexpr std::string_view kRecord = "fw/c/";
  return storage::IsReservedKey(key) &&
         key.substr(storage::kReservedPrefix.size(), kRecord.size()) == kRecord;
}

CommitPredicate WritingCompletionRecord() {
  return [](const CommitInfo& info) {
    for (const Write& w : info.writes) {
      if (w.kind == Write::Kind::kPut && IsCompletionRecordKey(w.key)) return true;
    }
    return false;
  };
}

DurableHook OnNthCompletionRecord(int n, std::function<void()> action) {
  auto left = std::make_shared<std::atomic<int>>(n);
  CommitPredicate writes_record = WritingCompletionRecord();
  return [left, writes_record, action = std::move(action)](
             const CommitInfo& info, uint64_t) {
    if (writes_record(info) && left->fetch_sub(1) == 1) action();
  };
}

FaultStore::FaultStore(storage::StableStore& inner)
    : inner_(inner), delayer_(std::make_unique<Delayer>()) {}

FaultStore::FaultStore(std::unique_ptr<storage::StableStore> inner)
    : owned_(std::move(inner)),
      inner_(*owned_),
      delayer_(std::make_unique<Delayer>()) {}

// The delayer goes first: it forwards what it still holds to inner_.
FaultStore::~FaultStore() { delayer_.reset(); }

std::unique_ptr<FaultStore> NewMemoryFaultStore(bool async_commits) {
  storage::MemoryStoreOptions options;
  options.async_commits = async_commits;
  absl::StatusOr<std::unique_ptr<storage::MemoryStore>> memory =
      storage::OpenMemoryStore(options);
  if (!memory.ok()) {  // Only bad limits fail, and these are the defaults.
    std::fprintf(stderr, "NewMemoryFaultStore: %s\n",
                 memory.status().ToString().c_str());
    std::abort();
  }
  return std::make_unique<FaultStore>(*std::move(memory));
}

void FaultStore::InjectNext(Fault fault, CommitPredicate matches) {
  absl::MutexLock lock(&mu_);
  rules_.insert(rules_.begin() + static_cast<std::ptrdiff_t>(queued_),
                Rule{next_id_++, FaultRule{std::move(fault), std::move(matches), 0, 1}});
  ++queued_;
}

int FaultStore::AddRule(FaultRule rule) {
  absl::MutexLock lock(&mu_);
  const int id = next_id_++;
  rules_.push_back(Rule{id, std::move(rule)});
  return id;
}

void FaultStore::RemoveRule(int id) {
  absl::MutexLock lock(&mu_);
  for (size_t i = 0; i < rules_.size(); ++i) {
    if (rules_[i].id != id) continue;
    if (i < queued_) --queued_;
    rules_.erase(rules_.begin() + static_cast<std::ptrdiff_t>(i));
    return;
  }
}

void FaultStore::ClearFaults() {
  absl::MutexLock lock(&mu_);
  rules_.clear();
  queued_ = 0;
}

void FaultStore::SetDown(bool down) { down_.store(down); }

template <typename Fn>
int FaultStore::AddHook(HookList<Fn> FaultStore::*list, Fn hook) {
  absl::MutexLock lock(&mu_);
  const int id = next_id_++;
  (this->*list).emplace_back(id, std::make_shared<const Fn>(std::move(hook)));
  return id;
}

template <typename Fn>
std::vector<std::shared_ptr<const Fn>> FaultStore::Snapshot(
    HookList<Fn> FaultStore::*list) {
  absl::MutexLock lock(&mu_);
  std::vector<std::shared_ptr<const Fn>> out;
  for (const auto& [id, h] : this->*list) out.push_back(h);
  return out;
}

int FaultStore::AddBeforeCommitHook(BeforeCommitHook hook) {
  return AddHook(&FaultStore::before_hooks_, std::move(hook));
}

int FaultStore::AddDurableHook(DurableHook hook) {
  return AddHook(&FaultStore::durable_hooks_, std::move(hook));
}

void FaultStore::RemoveHook(int id) {
  absl::MutexLock lock(&mu_);
  std::erase_if(before_hooks_, [id](const auto& h) { return h.first == id; });
  std::erase_if(durable_hooks_, [id](const auto& h) { return h.first == id; });
}

FaultStoreStats FaultStore::Stats() const {
  return FaultStoreStats{sequence_.load(), injected_.load(), durable_.load()};
}

absl::Status FaultStore::DownError() const {
  return absl::UnavailableError("injected fault: store down");
}

Fault FaultStore::Decide(const CommitInfo& info) {
  for (const auto& h : Snapshot(&FaultStore::before_hooks_)) (*h)(info);

  absl::MutexLock lock(&mu_);
  for (size_t i = 0; i < rules_.size(); ++i) {
    FaultRule& r = rules_[i].rule;
    if (r.times == 0 || (r.matches && !r.matches(info))) continue;
    if (r.skip > 0) {
      --r.skip;
      continue;
    }
    Fault f = r.fault;
    if (r.times > 0 && --r.times == 0) {
      if (i < queued_) --queued_;
      rules_.erase(rules_.begin() + static_cast<std::ptrdiff_t>(i));
    }
    injected_.fetch_add(1, std::memory_order_relaxed);
    return f;
  }
  return Fault{};
}

void FaultStore::RunDurableHooks(const CommitInfo& info, uint64_t revision) {
  durable_.fetch_add(1, std::memory_order_relaxed);
  for (const auto& h : Snapshot(&FaultStore::durable_hooks_)) (*h)(info, revision);
}

absl::StatusOr<storage::Versioned> FaultStore::Get(std::string_view key) {
  if (down_.load()) return DownError();
  return inner_.Get(key);
}

absl::StatusOr<std::vector<storage::Versioned>> FaultStore::GetMany(
    const std::vector<std::string>& keys, const storage::ReadOptions& options) {
  if (down_.load()) return DownError();
  return inner_.GetMany(keys, options);
}

absl::StatusOr<std::vector<storage::KeyValue>> FaultStore::Scan(
    const storage::ScanOptions& options) {
  if (down_.load()) return DownError();
  return inner_.Scan(options);
}

absl::StatusOr<uint64_t> FaultStore::Commit(
    const std::vector<Condition>& conditions, const std::vector<Write>& writes) {
  const CommitInfo info{sequence_.fetch_add(1) + 1, false, conditions, writes};
  if (down_.load()) return DownError();
  const Fault f = Decide(info);
  if (f.latency > absl::ZeroDuration()) absl::SleepFor(f.latency);
  if (absl::Status s = RefusedBy(f, info); !s.ok()) return s;
  absl::StatusOr<uint64_t> r = inner_.Commit(conditions, writes);
  if (r.ok()) RunDurableHooks(info, *r);
  return Answer(f, std::move(r));
}

void FaultStore::CommitAsync(std::vector<Condition> conditions,
                             std::vector<Write> writes, CommitCallback done) {
  // The commit's own copy, for the hooks that run after it was handed on.
  struct Pending {
    std::vector<Condition> conditions;
    std::vector<Write> writes;
    uint64_t sequence;
  };
  auto p = std::make_shared<Pending>(
      Pending{std::move(conditions), std::move(writes), sequence_.fetch_add(1) + 1});
  const CommitInfo info{p->sequence, true, p->conditions, p->writes};
  if (down_.load()) return done(DownError());
  Fault f = Decide(info);
  if (absl::Status s = RefusedBy(f, info); !s.ok()) {
    if (f.latency <= absl::ZeroDuration()) return done(s);
    return delayer_->Schedule(f.latency, [s, done = std::move(done)]() mutable {
      done(s);
    });
  }
  auto forward = [this, p, f, done = std::move(done)]() mutable {
    std::vector<Condition> c = p->conditions;
    std::vector<Write> w = p->writes;
    inner_.CommitAsync(
        std::move(c), std::move(w),
        [this, p, f, done = std::move(done)](absl::StatusOr<uint64_t> r) mutable {
          if (r.ok()) {
            RunDurableHooks(CommitInfo{p->sequence, true, p->conditions, p->writes},
                            *r);
          }
          done(Answer(f, std::move(r)));
        });
  };
  if (f.latency <= absl::ZeroDuration()) return forward();
  delayer_->Schedule(f.latency, std::move(forward));
}

bool FaultStore::CommitsAsynchronously() const {
  return inner_.CommitsAsynchronously();
}

bool FaultStore::StaleReadsAreCheaper() const {
  return inner_.StaleReadsAreCheaper();
}

absl::Status FaultStore::Ping() {
  if (down_.load()) return DownError();
  return inner_.Ping();
}

std::string FaultStore::Kind() const { return inner_.Kind(); }

size_t FaultStore::MaxCommitOps() const { return inner_.MaxCommitOps(); }

std::vector<storage::StoreStatistic> FaultStore::Statistics() const {
  return inner_.Statistics();
}

}  // namespace baton::testing
