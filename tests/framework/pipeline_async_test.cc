// RequestPipeline::ExecuteAsync on the RocksDB store: duplicates of one request
// id arriving concurrently run the handler once and all get the same reply; a
// reused key with another body is refused. Execute() on the same store (whose
// commits call back on its committer thread) runs every handler run on the
// calling thread.
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"
#include "framework/clock.h"
#include "framework/pipeline.h"
#include "gtest/gtest.h"
#include "storage/rocksdb/rocksdb_store.h"

namespace baton::framework {
namespace {

// A fresh RocksDB store in the test's temp dir; removed by ~TempStore.
struct TempStore {
  explicit TempStore(const std::string& name)
      : dir(absl::StrCat(::testing::TempDir(), "/", name, "-", ::getpid())) {
    std::filesystem::remove_all(dir);
    absl::StatusOr<std::unique_ptr<storage::StableStore>> s =
        storage::OpenRocksDbStore({.path = dir});
    EXPECT_TRUE(s.ok()) << s.status();
    if (s.ok()) store = *std::move(s);
  }
  ~TempStore() {
    store.reset();
    std::filesystem::remove_all(dir);
  }
  const std::string dir;
  std::unique_ptr<storage::StableStore> store;
};

TEST(PipelineAsync, ConcurrentDuplicatesExecuteOnceAndGetTheSameReply) {
  TempStore temp("pipeline-async");
  ASSERT_NE(temp.store, nullptr);
  storage::StableStore* store = temp.store.get();
  RequestPipeline pipeline(*store, RealClock());
  ASSERT_TRUE(pipeline.ExecutesInline());

  std::atomic<int> runs{0};
  std::shared_ptr<Handler> incr = MakeHandler(
      [&](const Request& r, Transaction& txn) -> absl::StatusOr<Reply> {
        ++runs;
        absl::StatusOr<storage::Versioned> v = txn.Get("counter" + r.body);
        if (!v.ok()) return v.status();
        uint64_t c = 0;
        if (v->present() && !absl::SimpleAtoi(v->value, &c)) {
          return absl::InternalError("bad counter");
        }
        if (absl::Status s = txn.Put("counter" + r.body, absl::StrCat(c + 1));
            !s.ok()) {
          return s;
        }
        return Reply::Text(absl::StatusCode::kOk, absl::StrCat(c + 1));
      });

  constexpr int kKeys = 20, kThreads = 4, kPerThread = 50;
  std::vector<Request> requests(kKeys);
  for (int k = 0; k < kKeys; ++k) {
    requests[k].operation = "POST /incr";
    requests[k].path = "/incr";
    requests[k].body = absl::StrCat(k);
  }
  std::atomic<int> fresh{0}, replayed{0}, failed{0};
  std::mutex mu;
  std::map<int, std::vector<std::string>> bodies;  // per key, every reply
  absl::BlockingCounter pending(kThreads * kPerThread);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const int key = (t * kPerThread + i) % kKeys;
        pipeline.ExecuteAsync(
            RequestId::Key(absl::StrCat("key", key)), requests[key], *incr,
            [&, key](absl::StatusOr<PipelineResult> r) {
              if (!r.ok()) {
                ++failed;
              } else {
                ++(r->replayed ? replayed : fresh);
                std::lock_guard<std::mutex> lock(mu);
                bodies[key].push_back(r->reply.body);
              }
              pending.DecrementCount();
            });
      }
    });
  }
  for (std::thread& t : threads) t.join();
  pending.Wait();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(fresh.load(), kKeys);
  EXPECT_EQ(replayed.load(), kThreads * kPerThread - kKeys);
  EXPECT_EQ(runs.load(), kKeys) << "a duplicate ran the handler again";
  for (int k = 0; k < kKeys; ++k) {
    absl::StatusOr<storage::Versioned> v =
        store->Get(absl::StrCat("counter", k));
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(v->value, "1") << "key " << k << " applied more than once";
    for (const std::string& body : bodies[k]) EXPECT_EQ(body, "1");
  }

  Request other = requests[3];
  other.body = "different";
  absl::Notification done;
  pipeline.ExecuteAsync(RequestId::Key("key3"), other, *incr,
                        [&](absl::StatusOr<PipelineResult> r) {
                          EXPECT_EQ(GetPipelineError(r.status()),
                                    PipelineError::kKeyReused);
                          done.Notify();
                        });
  done.WaitForNotification();
  EXPECT_EQ(runs.load(), kKeys);
}

TEST(PipelineAsync, ExecuteRunsEveryHandlerRunOnTheCallingThread) {
  TempStore temp("pipeline-caller");
  ASSERT_NE(temp.store, nullptr);
  storage::StableStore* store = temp.store.get();
  RequestPipeline pipeline(*store, RealClock());
  // The first run's read is made stale by a write behind its back, so its
  // commit conflicts (on the committer thread) and the handler runs again.
  std::vector<std::thread::id> runs;
  std::shared_ptr<Handler> incr = MakeHandler(
      [&](const Request&, Transaction& txn) -> absl::StatusOr<Reply> {
        runs.push_back(std::this_thread::get_id());
        absl::StatusOr<storage::Versioned> v = txn.Get("n");
        if (!v.ok()) return v.status();
        if (runs.size() == 1) {
          absl::StatusOr<uint64_t> c =
              store->Commit({}, {storage::Write::Put("n", "10")});
          if (!c.ok()) return c.status();
        }
        if (absl::Status s = txn.Put("n", v->value + "+1"); !s.ok()) return s;
        return Reply::Text(absl::StatusCode::kOk, v->value + "+1");
      });
  Request r;
  r.operation = "POST /incr";
  r.path = "/incr";
  absl::StatusOr<PipelineResult> result =
      pipeline.Execute(RequestId::Key("k"), r, *incr);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->reply.body, "10+1");
  ASSERT_EQ(runs.size(), 2u);
  for (const std::thread::id& id : runs) {
    EXPECT_EQ(id, std::this_thread::get_id())
        << "a handler ran on a store thread under Execute()";
  }
}

}  // namespace
}  // namespace baton::framework
