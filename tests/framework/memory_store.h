// An in-memory StableStore for fast, deterministic pipeline unit tests. It
// obeys the contract in storage/stable_store.h (versions are store-wide
// revisions, conditional all-or-nothing commits, conflicts name the key) and
// can inject commit outcomes (kUnknown applied or not, kUnavailable).
// Test-only: the server, the crash test and the benchmark use RocksDB.
//
// Thread safety: thread-safe.
#ifndef BATON_TESTS_FRAMEWORK_MEMORY_STORE_H_
#define BATON_TESTS_FRAMEWORK_MEMORY_STORE_H_

#include <deque>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "storage/stable_store.h"

namespace baton::testing {

class MemoryStore : public storage::StableStore {
 public:
  absl::StatusOr<storage::Versioned> Get(std::string_view key) override {
    absl::MutexLock lock(&mu_);
    if (unavailable_) return absl::UnavailableError("store down");
    auto it = data_.find(std::string(key));
    if (it == data_.end()) return storage::Versioned{};
    return it->second;
  }

  absl::StatusOr<std::vector<storage::KeyValue>> Scan(
      const storage::ScanOptions& o) override {
    absl::MutexLock lock(&mu_);
    if (unavailable_) return absl::UnavailableError("store down");
    std::vector<storage::KeyValue> out;
    auto it = o.start_after.empty() ? data_.lower_bound(o.prefix)
                                    : data_.upper_bound(o.start_after);
    for (; it != data_.end() && out.size() < o.limit; ++it) {
      if (it->first.compare(0, o.prefix.size(), o.prefix) != 0) {
        if (it->first > o.prefix) break;
        continue;
      }
      out.push_back({it->first, it->second.value, it->second.version});
    }
    return out;
  }

  absl::StatusOr<uint64_t> Commit(
      const std::vector<storage::Condition>& conditions,
      const std::vector<storage::Write>& writes) override {
    std::function<void()> hook;
    {
      absl::MutexLock lock(&mu_);
      hook = before_commit_;
    }
    if (hook) hook();
    absl::MutexLock lock(&mu_);
    ++commit_calls_;
    if (unavailable_) return absl::UnavailableError("store down");
    std::optional<std::pair<absl::Status, bool>> injected;
    if (!injected_.empty()) {
      injected = injected_.front();
      injected_.pop_front();
      if (!injected->second) return injected->first;
    }
    for (const storage::Condition& c : conditions) {
      auto it = data_.find(c.key);
      uint64_t v = it == data_.end() ? 0 : it->second.version;
      if (v != c.expected_version) return storage::ConflictError(c.key);
    }
    if (writes.empty()) return revision_;
    ++revision_;
    for (const storage::Write& w : writes) {
      if (w.kind == storage::Write::Kind::kPut) {
        data_[w.key] = storage::Versioned{w.value, revision_};
      } else {
        data_.erase(w.key);
      }
    }
    if (injected) return injected->first;
    return revision_;
  }

  absl::Status Ping() override {
    absl::MutexLock lock(&mu_);
    return unavailable_ ? absl::UnavailableError("store down")
                        : absl::OkStatus();
  }

  // The next commit returns `status`; with `apply` it is applied first (an
  // outcome that was unknown to the caller but happened).
  void InjectCommitResult(absl::Status status, bool apply) {
    absl::MutexLock lock(&mu_);
    injected_.emplace_back(std::move(status), apply);
  }
  void SetUnavailable(bool down) {
    absl::MutexLock lock(&mu_);
    unavailable_ = down;
  }
  // Runs before every commit (outside the lock), e.g. to race a write in.
  void SetBeforeCommit(std::function<void()> hook) {
    absl::MutexLock lock(&mu_);
    before_commit_ = std::move(hook);
  }
  // Writes directly, bypassing conditions (a "concurrent" writer).
  void ForcePut(const std::string& key, const std::string& value) {
    absl::MutexLock lock(&mu_);
    data_[key] = storage::Versioned{value, ++revision_};
  }
  size_t CountWithPrefix(const std::string& prefix) {
    absl::MutexLock lock(&mu_);
    size_t n = 0;
    for (const auto& [k, v] : data_) n += k.compare(0, prefix.size(), prefix) == 0;
    return n;
  }
  int commit_calls() {
    absl::MutexLock lock(&mu_);
    return commit_calls_;
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, storage::Versioned> data_ ABSL_GUARDED_BY(mu_);
  uint64_t revision_ ABSL_GUARDED_BY(mu_) = 0;
  int commit_calls_ ABSL_GUARDED_BY(mu_) = 0;
  bool unavailable_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<std::pair<absl::Status, bool>> injected_ ABSL_GUARDED_BY(mu_);
  std::function<void()> before_commit_ ABSL_GUARDED_BY(mu_);
};

}  // namespace baton::testing

#endif  // BATON_TESTS_FRAMEWORK_MEMORY_STORE_H_
