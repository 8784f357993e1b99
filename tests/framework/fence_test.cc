// Fencing of the store by take-over slots (framework/fence.h), on both
// backends: the embedded RocksDB store in-process and a real etcd that the
// test starts on loopback. Two "hosts" A and B are two pipelines with their
// own fence tables over one store. Deterministic: every interleaving is
// forced with latches, no sleeps decide an outcome.
//
//   - A holds slot 0 and writes; B takes over with a higher epoch; A's next
//     request and A's request whose handler was already running when B took
//     over are both refused (kDeposed -> HTTP 503) and change nothing;
//   - a stale epoch (stored >= ours) is refused when the fence is written;
//   - a slot whose fence is not ready (being written, released) refuses
//     writes with 503 + Retry-After: 0, other addresses are not fenced;
//   - over HTTP: 503 codes, Retry-After and the Baton-Node header.
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>  // Before Asio: Boost 1.74 uses std::exchange without it.

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "boost/asio.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "framework/clock.h"
#include "framework/fence.h"
#include "framework/http_server.h"
#include "framework/pipeline.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "storage/etcd/etcd_store.h"
#include "storage/etcd/testing/etcd_launcher.h"
#include "storage/rocksdb/rocksdb_store.h"

namespace baton::framework {
namespace {

using storage::StableStore;

constexpr char kSlotAddress[] = "10.78.0.100";

// One etcd per test process (ctest runs each test in its own process).
storage::testing::EtcdCluster* SharedEtcd(absl::Status* error) {
  static std::mutex mu;
  static storage::testing::EtcdCluster* cluster = nullptr;
  std::lock_guard<std::mutex> lock(mu);
  if (cluster != nullptr) return cluster;
  auto c = storage::testing::EtcdCluster::Start({});
  if (!c.ok()) {
    *error = c.status();
    return nullptr;
  }
  cluster = c->release();
  std::atexit([] { delete cluster; });
  return cluster;
}

class FenceTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    static std::atomic<int> n{0};
    const std::string unique = absl::StrCat(::getpid(), "-", n++);
    if (GetParam() == "rocksdb") {
      dir_ = absl::StrCat(::testing::TempDir(), "/fence-test-", unique);
      std::filesystem::remove_all(dir_);
      auto s = storage::OpenRocksDbStore({.path = dir_});
      ASSERT_TRUE(s.ok()) << s.status();
      store_ = *std::move(s);
    } else {
      absl::StatusOr<std::string> binary =
          storage::testing::EtcdCluster::FindBinary();
      if (!binary.ok()) {
        const char* ci = std::getenv("CI");
        if (ci != nullptr && std::string(ci) == "true") {
          FAIL() << binary.status() << " (required under CI=true)";
        }
        GTEST_SKIP() << binary.status();
      }
      absl::Status error;
      storage::testing::EtcdCluster* etcd = SharedEtcd(&error);
      ASSERT_NE(etcd, nullptr) << error;
      storage::EtcdOptions o;
      o.endpoints = etcd->ClientEndpoints();
      o.key_prefix = absl::StrCat("fence-test-", unique, "/");
      o.dial_timeout = std::chrono::milliseconds(500);
      o.request_timeout = std::chrono::milliseconds(3000);
      auto s = storage::OpenEtcdStore(o);
      ASSERT_TRUE(s.ok()) << s.status();
      store_ = *std::move(s);
    }
    a_ = std::make_unique<RequestPipeline>(*store_, RealClock());
    b_ = std::make_unique<RequestPipeline>(*store_, RealClock());
    a_->SetFenceTable(&fa_);
    b_->SetFenceTable(&fb_);
  }
  void TearDown() override {
    a_.reset();
    b_.reset();
    store_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // Host `fences` takes slot 0 with `epoch` and writes its fence.
  absl::Status Take(FenceTable& fences, uint64_t epoch) {
    fences.Held(0, kSlotAddress, epoch);
    return fences.Establish(*store_, 0, epoch);
  }

  int64_t Counter() {
    auto v = store_->Get("n");
    EXPECT_TRUE(v.ok()) << v.status();
    int64_t n = 0;
    if (v.ok() && v->present()) {
      EXPECT_TRUE(absl::SimpleAtoi(v->value, &n));
    }
    return n;
  }

  static Request Incr(std::string local = kSlotAddress) {
    Request r;
    r.operation = "POST /n/incr";
    r.path = "/n/incr";
    r.local_address = std::move(local);
    return r;
  }

  std::string dir_;
  std::unique_ptr<StableStore> store_;
  FenceTable fa_, fb_;
  std::unique_ptr<RequestPipeline> a_, b_;
  // Increments "n"; when `latch` is set, blocks after reading until it opens.
  std::shared_ptr<Handler> incr_ = MakeHandler(
      [this](const Request&, Transaction& txn) -> absl::StatusOr<Reply> {
        auto v = txn.Get("n");
        if (!v.ok()) return v.status();
        int64_t n = 0;
        if (v->present() && !absl::SimpleAtoi(v->value, &n)) {
          return absl::InternalError("bad counter");
        }
        if (in_handler_ != nullptr && !in_handler_->HasBeenNotified()) {
          in_handler_->Notify();
          latch_->WaitForNotification();
        }
        if (absl::Status s = txn.Put("n", absl::StrCat(n + 1)); !s.ok()) {
          return s;
        }
        return Reply::Json(absl::StatusCode::kOk, absl::StrCat(n + 1));
      });
  absl::Notification* in_handler_ = nullptr;
  absl::Notification* latch_ = nullptr;
};

void ExpectDeposed(const absl::StatusOr<PipelineResult>& r) {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_EQ(GetPipelineError(r.status()), PipelineError::kDeposed)
      << r.status();
}

TEST_P(FenceTest, NewHolderDeposesOldOneAndItsRequestsChangeNothing) {
  ASSERT_TRUE(Take(fa_, 1).ok());
  auto first = a_->Execute(RequestId::Key("a-1"), Incr(), *incr_);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(Counter(), 1);

  ASSERT_TRUE(Take(fb_, 2).ok());  // B takes over; A does not know yet.
  EXPECT_EQ(fa_.Snapshot()[0].state, FenceState::kReady);

  // A's next request, keyed and unkeyed: refused, nothing written, no record.
  ExpectDeposed(a_->Execute(RequestId::Key("a-2"), Incr(), *incr_));
  EXPECT_EQ(Counter(), 1);
  EXPECT_EQ(fa_.Snapshot()[0].state, FenceState::kDeposed);
  EXPECT_EQ(fa_.Counters().deposed, 1u);
  // Once deposed, A refuses before committing.
  auto again = a_->Execute(RequestId::None(), Incr(), *incr_);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(GetPipelineError(again.status()), PipelineError::kFenceNotReady);
  EXPECT_EQ(Counter(), 1);

  // The client's retry of a-2 at B executes it there, once.
  auto at_b = b_->Execute(RequestId::Key("a-2"), Incr(), *incr_);
  ASSERT_TRUE(at_b.ok()) << at_b.status();
  EXPECT_FALSE(at_b->replayed);
  EXPECT_EQ(Counter(), 2);
}

TEST_P(FenceTest, RequestInFlightDuringTakeOverIsDeposed) {
  ASSERT_TRUE(Take(fa_, 1).ok());
  ASSERT_TRUE(a_->Execute(RequestId::None(), Incr(), *incr_).ok());
  absl::Notification in_handler, latch;
  in_handler_ = &in_handler;
  latch_ = &latch;
  std::future<absl::StatusOr<PipelineResult>> inflight = std::async(
      std::launch::async,
      [&] { return a_->Execute(RequestId::Key("slow"), Incr(), *incr_); });
  in_handler.WaitForNotification();  // A's handler has read n = 1.
  ASSERT_TRUE(Take(fb_, 2).ok());    // B takes over meanwhile.
  latch.Notify();
  ExpectDeposed(inflight.get());
  EXPECT_EQ(Counter(), 1);
  // Its id has no completion record: B executes the retry for real.
  auto at_b = b_->Execute(RequestId::Key("slow"), Incr(), *incr_);
  ASSERT_TRUE(at_b.ok()) << at_b.status();
  EXPECT_FALSE(at_b->replayed);
  EXPECT_EQ(Counter(), 2);
}

TEST_P(FenceTest, AsynchronousPathIsDeposedToo) {
  ASSERT_TRUE(Take(fa_, 1).ok());
  ASSERT_TRUE(Take(fb_, 2).ok());
  std::promise<absl::StatusOr<PipelineResult>> done;
  Request r = Incr();
  a_->ExecuteAsync(RequestId::Key("async"), r, *incr_,
                   [&](absl::StatusOr<PipelineResult> res) {
                     done.set_value(std::move(res));
                   });
  ExpectDeposed(done.get_future().get());
  EXPECT_EQ(Counter(), 0);
}

TEST_P(FenceTest, StaleEpochIsRefusedAtEstablishment) {
  ASSERT_TRUE(Take(fb_, 5).ok());
  for (uint64_t stale : {3u, 5u}) {
    absl::Status s = Take(fa_, stale);
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
    EXPECT_EQ(fa_.Snapshot()[0].state, FenceState::kDeposed);
    auto r = a_->Execute(RequestId::None(), Incr(), *incr_);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(GetPipelineError(r.status()), PipelineError::kFenceNotReady);
  }
  EXPECT_EQ(Counter(), 0);
  EXPECT_EQ(fa_.Counters().establish_refused, 2u);
  // B's fence is untouched: B still writes.
  ASSERT_TRUE(b_->Execute(RequestId::None(), Incr(), *incr_).ok());
  EXPECT_EQ(Counter(), 1);
  // A later, higher epoch at A works again (A is the newest holder).
  ASSERT_TRUE(Take(fa_, 6).ok());
  ASSERT_TRUE(a_->Execute(RequestId::None(), Incr(), *incr_).ok());
  EXPECT_EQ(Counter(), 2);
}

TEST_P(FenceTest, NotReadySlotRefusesWritesOtherAddressesAreNotFenced) {
  fa_.Held(0, kSlotAddress, 1);  // Taken, fence not yet written.
  auto r = a_->Execute(RequestId::None(), Incr(), *incr_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(GetPipelineError(r.status()), PipelineError::kFenceNotReady);
  // The host's own address is not a slot: not fenced.
  ASSERT_TRUE(a_->Execute(RequestId::None(), Incr("127.0.0.1"), *incr_).ok());
  EXPECT_EQ(Counter(), 1);
  ASSERT_TRUE(fa_.Establish(*store_, 0, 1).ok());
  ASSERT_TRUE(a_->Execute(RequestId::None(), Incr(), *incr_).ok());
  EXPECT_EQ(Counter(), 2);
  fa_.Released(0);
  r = a_->Execute(RequestId::None(), Incr(), *incr_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(GetPipelineError(r.status()), PipelineError::kFenceNotReady);
  EXPECT_EQ(Counter(), 2);
  EXPECT_EQ(fa_.Counters().not_ready, 2u);
  // A release while the fence is being written wins: the result is stale.
  fa_.Held(0, kSlotAddress, 2);
  fa_.Released(0);
  EXPECT_EQ(fa_.Establish(*store_, 0, 2).code(), absl::StatusCode::kAborted);
  EXPECT_EQ(fa_.Snapshot()[0].state, FenceState::kReleased);
}

// Over HTTP: loopback plays the service address, so requests to 127.0.0.1
// are fenced by slot 0.
TEST_P(FenceTest, HttpAnswers503WithRetryAfterZeroAndNamesTheNode) {
  namespace beast = boost::beast;
  namespace http = beast::http;
  namespace net = boost::asio;
  Router router;
  ASSERT_TRUE(router.Add("POST", "/n/incr", incr_).ok());
  HttpServerOptions options;
  options.port = 0;
  options.node_name = "host-a";
  auto server = StartHttpServer(options, std::move(router), *a_);
  ASSERT_TRUE(server.ok()) << server.status();
  struct Answer {
    int status = 0;
    std::string code, retry_after, node;
  };
  auto post = [&](const std::string& key) {
    net::io_context ioc;
    net::ip::tcp::socket socket(ioc);
    socket.connect({net::ip::make_address("127.0.0.1"), (*server)->port()});
    http::request<http::string_body> req(http::verb::post, "/n/incr", 11);
    req.set(http::field::host, "127.0.0.1");
    req.set("Idempotency-Key", key);
    req.prepare_payload();
    http::write(socket, req);
    beast::flat_buffer buf;
    http::response<http::string_body> res;
    http::read(socket, buf, res);
    Answer a;
    a.status = static_cast<int>(res.result_int());
    a.retry_after = std::string(res[http::field::retry_after]);
    a.node = std::string(res["Baton-Node"]);
    if (a.status != 200) {
      a.code = nlohmann::json::parse(res.body())["error"]["code"];
    }
    return a;
  };
  fa_.Held(0, "127.0.0.1", 1);
  Answer a = post("h-1");
  EXPECT_EQ(a.status, 503);
  EXPECT_EQ(a.code, "fence_not_ready");
  EXPECT_EQ(a.retry_after, "0");
  EXPECT_EQ(a.node, "host-a");
  ASSERT_TRUE(fa_.Establish(*store_, 0, 1).ok());
  a = post("h-1");
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(a.node, "host-a");
  fb_.Held(0, "127.0.0.1", 2);
  ASSERT_TRUE(fb_.Establish(*store_, 0, 2).ok());
  a = post("h-2");
  EXPECT_EQ(a.status, 503);
  EXPECT_EQ(a.code, "deposed");
  EXPECT_EQ(a.retry_after, "0");
  EXPECT_EQ(Counter(), 1);
  (*server)->Stop();
}

INSTANTIATE_TEST_SUITE_P(Backends, FenceTest,
                         ::testing::Values("rocksdb", "etcd"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace baton::framework
