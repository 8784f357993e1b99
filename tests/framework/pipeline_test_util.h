// Helpers shared by the request pipeline's unit tests: the test kit's
// in-memory store behind its FaultStore (MemoryStore), requests, a counter
// handler whose replies carry a random tag (so a second execution shows in
// the reply), a store wrapper whose stale-allowed reads lag behind
// (LaggingStore), and a fixture that runs every test through Execute() and
// through ExecuteAsync(), the two entry points of the pipeline's one path.
//
// Thread safety: as each helper says; test-only.
#ifndef BATON_TESTS_FRAMEWORK_PIPELINE_TEST_UTIL_H_
#define BATON_TESTS_FRAMEWORK_PIPELINE_TEST_UTIL_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "framework/pipeline.h"
#include "framework/testing/fault_store.h"
#include "gtest/gtest.h"
#include "storage/memory/memory_store.h"

namespace baton::framework::testing_util {

// The test kit's in-memory store (committing on the caller's thread) behind
// its FaultStore, with the shortcuts these tests use.
class MemoryStore : public baton::testing::FaultStore {
 public:
  MemoryStore() : FaultStore(SyncMemory()) {}
  // Runs before every commit (replacing the previous hook), e.g. to race a
  // write in; nullptr: none.
  void SetBeforeCommit(std::function<void()> hook) {
    if (hook_ != 0) RemoveHook(hook_);
    hook_ = hook ? AddBeforeCommitHook([hook](const baton::testing::CommitInfo&) { hook(); })
                 : 0;
  }
  // Writes directly, bypassing conditions and faults (a concurrent writer).
  void ForcePut(const std::string& key, const std::string& value) {
    ASSERT_TRUE(inner().Commit({}, {storage::Write::Put(key, value)}).ok());
  }
  size_t CountWithPrefix(const std::string& prefix) {
    return inner().Scan({.prefix = prefix, .start_after = "", .limit = 1u << 20})->size();
  }

 private:
  static std::unique_ptr<storage::StableStore> SyncMemory() {
    storage::MemoryStoreOptions o;
    o.async_commits = false;
    absl::StatusOr<std::unique_ptr<storage::MemoryStore>> s = storage::OpenMemoryStore(o);
    return *std::move(s);
  }
  int hook_ = 0;
};

inline Request MakeRequest(std::string body, std::string path = "/counter") {
  Request r;
  r.operation = "POST /counter";
  r.path = std::move(path);
  r.body = std::move(body);
  return r;
}

inline int64_t ReadInt(MemoryStore& store, const std::string& key) {
  auto v = store.Get(key);
  EXPECT_TRUE(v.ok());
  int64_t n = 0;
  if (v->present()) {
    EXPECT_TRUE(absl::SimpleAtoi(v->value, &n));
  }
  return n;
}

// Increments "n" and answers with the new value plus a random tag, so a
// re-execution would be visible in the reply too.
class CounterHandler : public Handler {
 public:
  absl::StatusOr<Reply> Handle(const Request& request,
                               Transaction& txn) override {
    calls.fetch_add(1);
    auto v = txn.Get("n");
    if (!v.ok()) return v.status();
    int64_t n = 0;
    if (v->present() && !absl::SimpleAtoi(v->value, &n)) {
      return absl::InternalError("bad counter");
    }
    if (delay) delay();
    ++n;
    if (absl::Status s = txn.Put("n", absl::StrCat(n)); !s.ok()) return s;
    return Reply::Json(absl::StatusCode::kOk,
                       absl::StrCat("{\"n\":", n, ",\"tag\":", rng(), "}"));
  }
  std::atomic<int> calls{0};
  std::function<void()> delay;
  std::mt19937_64 rng{42};
};


// A replica that stopped applying commits at Freeze(): stale-allowed reads
// see the frozen state, latest reads and commits the live one. Counts reads
// of each kind and commits.

class LaggingStore : public storage::StableStore {
 public:
  explicit LaggingStore(MemoryStore& live) : live_(live) {}

  // From now on stale-allowed reads see the store as it is now.
  void Freeze() {
    auto all = live_.Scan({"", "", std::numeric_limits<size_t>::max()});
    ASSERT_TRUE(all.ok());
    absl::MutexLock lock(&mu_);
    frozen_.emplace();
    for (const storage::KeyValue& kv : *all) {
      (*frozen_)[kv.key] = storage::Versioned{kv.value, kv.version};
    }
  }

  absl::StatusOr<storage::Versioned> Get(std::string_view key) override {
    latest_reads_.fetch_add(1);
    return live_.Get(key);
  }
  absl::StatusOr<std::vector<storage::Versioned>> GetMany(
      const std::vector<std::string>& keys,
      const storage::ReadOptions& options) override {
    if (options.consistency == storage::ReadConsistency::kLatest) {
      latest_reads_.fetch_add(1);
      return live_.GetMany(keys, options);
    }
    stale_reads_.fetch_add(1);
    absl::MutexLock lock(&mu_);
    if (!frozen_) return live_.GetMany(keys, options);
    std::vector<storage::Versioned> out;
    for (const std::string& k : keys) {
      auto it = frozen_->find(k);
      out.push_back(it == frozen_->end() ? storage::Versioned{} : it->second);
    }
    return out;
  }
  absl::StatusOr<std::vector<storage::KeyValue>> Scan(
      const storage::ScanOptions& o) override {
    latest_reads_.fetch_add(1);
    return live_.Scan(o);
  }
  absl::StatusOr<uint64_t> Commit(
      const std::vector<storage::Condition>& conditions,
      const std::vector<storage::Write>& writes) override {
    commits_.fetch_add(1);
    return live_.Commit(conditions, writes);
  }
  absl::Status Ping() override { return live_.Ping(); }
  bool StaleReadsAreCheaper() const override { return true; }

  std::atomic<int> latest_reads_{0}, stale_reads_{0}, commits_{0};

 private:
  MemoryStore& live_;
  absl::Mutex mu_;
  std::optional<std::map<std::string, storage::Versioned>> frozen_
      ABSL_GUARDED_BY(mu_);
};

// Runs ExecuteAsync and waits for its callback.
inline absl::StatusOr<PipelineResult> RunAsync(RequestPipeline& p, const RequestId& id,
                                        const Request& request, Handler& h) {
  absl::Notification done;
  absl::StatusOr<PipelineResult> out = absl::InternalError("no callback");
  p.ExecuteAsync(id, request, h, [&](absl::StatusOr<PipelineResult> r) {
    out = std::move(r);
    done.Notify();
  });
  done.WaitForNotification();
  return out;
}

// A request started without waiting for it: ExecuteAsync (async), or
// Execute on a thread of its own (sync).
class Started {
 public:
  Started(bool async, RequestPipeline& p, const RequestId& id, Request request,
          Handler& h)
      : request_(std::move(request)) {
    if (async) {
      p.ExecuteAsync(id, request_, h, [this](absl::StatusOr<PipelineResult> r) {
        result_ = std::move(r);
        done_.Notify();
      });
    } else {
      thread_ = std::thread([this, &p, id, &h] {
        result_ = p.Execute(id, request_, h);
        done_.Notify();
      });
    }
  }
  // Waits for the result: a test that failed early must not leave a
  // callback behind that writes into a destroyed object.
  ~Started() {
    done_.WaitForNotification();
    if (thread_.joinable()) thread_.join();
  }
  bool done() const { return done_.HasBeenNotified(); }
  // False when no result came within `d` (real time).
  bool WaitFor(absl::Duration d) {
    return done_.WaitForNotificationWithTimeout(d);
  }
  const absl::StatusOr<PipelineResult>& result() {
    done_.WaitForNotification();
    return result_;
  }

 private:
  const Request request_;
  absl::StatusOr<PipelineResult> result_ = absl::InternalError("no result");
  absl::Notification done_;
  std::thread thread_;
};

// Waits (real time, at most 10 s) until `p` has parked `n` retries.
inline bool WaitUntilParked(RequestPipeline& p, uint64_t n) {
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (p.Stats().waited < n) {
    if (absl::Now() > give_up) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// Each test of a fixture derived from this one runs through Execute()
// (parameter false: "Sync") and ExecuteAsync() (true: "Async").
class SyncAndAsyncTest : public ::testing::TestWithParam<bool> {
 protected:
  absl::StatusOr<PipelineResult> Run(RequestPipeline& p, const RequestId& id,
                                     const Request& request, Handler& h) {
    return GetParam() ? RunAsync(p, id, request, h) : p.Execute(id, request, h);
  }
};

inline std::string SyncOrAsyncName(const ::testing::TestParamInfo<bool>& info) {
  return info.param ? "Async" : "Sync";
}

}  // namespace baton::framework::testing_util

#endif  // BATON_TESTS_FRAMEWORK_PIPELINE_TEST_UTIL_H_
