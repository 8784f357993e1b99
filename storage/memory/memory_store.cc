#include "storage/memory/memory_store.h"

#include <atomic>
#include <deque>
#include <map>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace baton::storage {

using Map = std::map<std::string, Versioned, std::less<>>;

class MemoryStoreData {
 public:
  absl::Mutex mu;
  Map entries ABSL_GUARDED_BY(mu);
  uint64_t revision ABSL_GUARDED_BY(mu) = 0;
};

std::shared_ptr<MemoryStoreData> NewMemoryStoreData() {
  return std::make_shared<MemoryStoreData>();
}

namespace {

absl::Status Closed() { return absl::UnavailableError("memory store closed"); }

// Present keys of `map` per `o`, in key order.
std::vector<KeyValue> ScanMap(const Map& map, const ScanOptions& o) {
  std::vector<KeyValue> out;
  auto it = map.lower_bound(o.prefix);
  if (!o.start_after.empty() && o.start_after >= o.prefix) {
    it = map.upper_bound(o.start_after);
  }
  for (; it != map.end() && out.size() < o.limit; ++it) {
    if (std::string_view(it->first).substr(0, o.prefix.size()) != o.prefix) break;
    out.push_back({it->first, it->second.value, it->second.version});
  }
  return out;
}

Versioned Lookup(const Map& map, std::string_view key) {
  auto it = map.find(key);
  return it == map.end() ? Versioned{} : it->second;
}

class MemoryStoreImpl : public MemoryStore {
 public:
  explicit MemoryStoreImpl(const MemoryStoreOptions& options)
      : options_(options),
        data_(options.data ? options.data : NewMemoryStoreData()) {}

  // Not from a commit callback of this store.
  ~MemoryStoreImpl() override {
    Close();
    if (committer_.joinable()) committer_.join();
  }

  absl::StatusOr<Versioned> Get(std::string_view key) override {
    if (closed_.load()) return Closed();
    if (absl::Status s = CheckKey(key); !s.ok()) return s;
    absl::MutexLock lock(&data_->mu);
    return Lookup(data_->entries, key);
  }

  absl::StatusOr<std::vector<Versioned>> GetMany(
      const std::vector<std::string>& keys,
      const ReadOptions& options) override {
    if (closed_.load()) return Closed();
    for (const std::string& key : keys) {
      if (absl::Status s = CheckKey(key); !s.ok()) return s;
    }
    std::vector<Versioned> out;
    out.reserve(keys.size());
    if (options.consistency == ReadConsistency::kMayBeStale &&
        options_.stale_reads_are_cheaper) {
      stats_.stale_reads.fetch_add(keys.size(), std::memory_order_relaxed);
      std::shared_ptr<const Map> replica;
      {
        absl::MutexLock lock(&replica_mu_);
        replica = replica_;
      }
      if (replica != nullptr) {
        for (const std::string& key : keys) out.push_back(Lookup(*replica, key));
        return out;
      }
    }
    absl::MutexLock lock(&data_->mu);
    for (const std::string& key : keys) out.push_back(Lookup(data_->entries, key));
    return out;
  }

  absl::StatusOr<std::vector<KeyValue>> Scan(const ScanOptions& o) override {
    if (closed_.load()) return Closed();
    if (absl::Status s = CheckKey(o.prefix); !s.ok()) return s;
    if (absl::Status s = CheckKey(o.start_after); !s.ok()) return s;
    absl::MutexLock lock(&data_->mu);
    return ScanMap(data_->entries, o);
  }

  absl::StatusOr<uint64_t> Commit(const std::vector<Condition>& conditions,
                                  const std::vector<Write>& writes) override {
    absl::StatusOr<uint64_t> r = Apply(conditions, writes);
    Count(r.status());
    return r;
  }

  void CommitAsync(std::vector<Condition> conditions, std::vector<Write> writes,
                   CommitCallback done) override {
    stats_.async_commits.fetch_add(1, std::memory_order_relaxed);
    if (!options_.async_commits) return done(Commit(conditions, writes));
    {
      absl::MutexLock lock(&queue_mu_);
      if (!stopping_) {
        queue_.push_back(
            Job{std::move(conditions), std::move(writes), std::move(done)});
        if (!committer_.joinable()) {
          committer_ = std::thread([this] { CommitterLoop(); });
        }
        return;
      }
    }
    Count(Closed());
    done(Closed());
  }

  bool CommitsAsynchronously() const override { return options_.async_commits; }
  bool StaleReadsAreCheaper() const override {
    return options_.stale_reads_are_cheaper;
  }

  absl::Status Ping() override {
    return closed_.load() ? Closed() : absl::OkStatus();
  }

  void Close() override {
    if (closed_.exchange(true)) return;
    {
      absl::MutexLock lock(&queue_mu_);
      stopping_ = true;
    }
    // From a commit callback the committer answers the rest itself, after
    // that callback returns; it is joined by the destructor.
    if (committer_.joinable() &&
        committer_.get_id() != std::this_thread::get_id()) {
      committer_.join();
    }
  }

  void FreezeReplica() override {
    auto copy = std::make_shared<Map>();
    {
      absl::MutexLock lock(&data_->mu);
      *copy = data_->entries;
    }
    absl::MutexLock lock(&replica_mu_);
    replica_ = std::move(copy);
  }

  void ThawReplica() override {
    absl::MutexLock lock(&replica_mu_);
    replica_.reset();
  }

  std::string Kind() const override { return "memory"; }

  std::vector<StoreStatistic> Statistics() const override {
    const MemoryStoreStats st = Stats();
    return {
        {"commits", static_cast<double>(st.commits_ok),
         "Commits that succeeded.", true},
        {"commit_conflicts", static_cast<double>(st.commits_conflict),
         "Commits that failed a condition.", true},
        {"commit_errors", static_cast<double>(st.commits_failed),
         "Commits refused otherwise (limits, closed).", true},
        {"stale_reads", static_cast<double>(st.stale_reads),
         "Keys read with ReadConsistency::kMayBeStale.", true},
    };
  }

  MemoryStoreStats Stats() const override {
    MemoryStoreStats s;
    s.commits_ok = stats_.commits_ok.load();
    s.commits_conflict = stats_.commits_conflict.load();
    s.commits_failed = stats_.commits_failed.load();
    s.async_commits = stats_.async_commits.load();
    s.stale_reads = stats_.stale_reads.load();
    return s;
  }

  uint64_t CurrentRevision() const override {
    absl::MutexLock lock(&data_->mu);
    return data_->revision;
  }

 private:
  struct Job {
    std::vector<Condition> conditions;
    std::vector<Write> writes;
    CommitCallback done;
  };

  absl::Status CheckKey(std::string_view key) const {
    if (key.size() > options_.max_key_bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("key of ", key.size(), " bytes exceeds max_key_bytes (",
                       options_.max_key_bytes, ")"));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<uint64_t> Apply(const std::vector<Condition>& conditions,
                                 const std::vector<Write>& writes) {
    if (closed_.load()) return Closed();
    size_t bytes = 0;
    for (const Condition& c : conditions) {
      if (absl::Status s = CheckKey(c.key); !s.ok()) return s;
      bytes += c.key.size();
    }
    for (const Write& w : writes) {
      if (absl::Status s = CheckKey(w.key); !s.ok()) return s;
      bytes += w.key.size() + w.value.size();
    }
    if (bytes > options_.max_commit_bytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat("commit of ", bytes, " bytes exceeds max_commit_bytes (",
                       options_.max_commit_bytes, ")"));
    }
    absl::MutexLock lock(&data_->mu);
    for (const Condition& c : conditions) {
      if (Lookup(data_->entries, c.key).version != c.expected_version) {
        return ConflictError(c.key);
      }
    }
    if (writes.empty()) return data_->revision;
    const uint64_t revision = ++data_->revision;
    for (const Write& w : writes) {
      if (w.kind == Write::Kind::kPut) {
        data_->entries.insert_or_assign(w.key, Versioned{w.value, revision});
      } else {
        data_->entries.erase(w.key);
      }
    }
    return revision;
  }

  void Count(const absl::Status& s) {
    if (s.ok()) {
      stats_.commits_ok.fetch_add(1, std::memory_order_relaxed);
    } else if (IsConflict(s)) {
      stats_.commits_conflict.fetch_add(1, std::memory_order_relaxed);
    } else {
      stats_.commits_failed.fetch_add(1, std::memory_order_relaxed);
    }
  }

  // Applies queued commits in order and runs their callbacks (outside the
  // queue lock, so a callback may commit again). After Close(), answers what
  // is left with kUnavailable and ends.
  void CommitterLoop() {
    for (;;) {
      std::deque<Job> jobs;
      bool stop = false;
      {
        absl::MutexLock lock(&queue_mu_);
        queue_mu_.Await(absl::Condition(
            +[](MemoryStoreImpl* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->queue_mu_) {
              return s->stopping_ || !s->queue_.empty();
            },
            this));
        jobs.swap(queue_);
        stop = stopping_;
      }
      for (Job& job : jobs) {
        absl::StatusOr<uint64_t> r =
            stop ? absl::StatusOr<uint64_t>(Closed())
                 : Apply(job.conditions, job.writes);
        Count(r.status());
        job.done(std::move(r));
      }
      // Nothing is queued after stopping_ is set.
      if (stop) return;
    }
  }

  const MemoryStoreOptions options_;
  const std::shared_ptr<MemoryStoreData> data_;
  std::atomic<bool> closed_{false};

  absl::Mutex queue_mu_;
  std::deque<Job> queue_ ABSL_GUARDED_BY(queue_mu_);
  bool stopping_ ABSL_GUARDED_BY(queue_mu_) = false;
  std::thread committer_;  // Started by the first CommitAsync (under queue_mu_).

  absl::Mutex replica_mu_;
  std::shared_ptr<const Map> replica_ ABSL_GUARDED_BY(replica_mu_);

  struct {
    std::atomic<uint64_t> commits_ok{0}, commits_conflict{0},
        commits_failed{0}, async_commits{0}, stale_reads{0};
  } stats_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<MemoryStore>> OpenMemoryStore(
    const MemoryStoreOptions& options) {
  if (options.max_key_bytes == 0 || options.max_commit_bytes == 0) {
    return absl::InvalidArgumentError(
        "memory store: max_key_bytes and max_commit_bytes must be > 0");
  }
  return std::unique_ptr<MemoryStore>(new MemoryStoreImpl(options));
}

}  // namespace baton::storage
