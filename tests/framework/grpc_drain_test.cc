// A planned release of a service address on the gRPC front end
// (GrpcServer::CloseConnections, issue 14): the address's own listener sends
// its connections GOAWAY -- the client's channel leaves READY and its next
// call opens a new connection -- while a call running there finishes and is
// answered (executed once); connections on other addresses are untouched; the
// address can be served again afterwards. Listeners of service addresses are
// bound with IP_FREEBIND (192.0.2.x is on no interface here) and cost no
// threads.
#include <dirent.h>

#include <cstdio>

#include <atomic>
#include <chrono>
#include <fstream>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "framework/client/client.h"
#include "framework/client/transport.h"
#include "framework/clock.h"
#include "framework/grpc/grpc_server.h"
#include "framework/pipeline.h"
#include "tests/framework/grpc_unary_call.h"
#include "framework/testing/fault_store.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

namespace baton::framework {
namespace {

constexpr char kMethod[] = "/baton.test.Drain/Incr";

// Resident memory in KiB (VmRSS), -1 if unknown.
long RssKib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

int ThreadCount() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/task")) {
    while (dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
    ::closedir(d);
  }
  return n;
}

class GrpcDrainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    GrpcRouter router;
    ASSERT_TRUE(router
                    .Add(kMethod, MakeHandler([this](const Request& req, Transaction& txn)
                                                  -> absl::StatusOr<Reply> {
                           {
                             absl::MutexLock lock(&mu_);
                             local_addresses_.push_back(req.local_address);
                           }
                           if (req.body == "slow") {
                             in_slow_.Notify();
                             release_slow_.WaitForNotification();
                           }
                           ++executions_;
                           if (req.body == "own") {  // a key of its own: no conflicts
                             std::string key;
                             for (const char* m : {"idempotency-key", "baton-client-id", "baton-seq"}) {
                               if (auto k = req.metadata.find(m); k != req.metadata.end()) {
                                 key += k->second + "/";
                               }
                             }
                             if (auto s = txn.Put(key, "1"); !s.ok()) return s;
                             return Reply::Text(absl::StatusCode::kOk, "1");
                           }
                           auto v = txn.Get("n");
                           if (!v.ok()) return v.status();
                           const int n = v->version == 0 ? 1 : std::stoi(v->value) + 1;
                           if (auto s = txn.Put("n", std::to_string(n)); !s.ok()) return s;
                           return Reply::Text(absl::StatusCode::kOk, std::to_string(n));
                         }))
                    .ok());
    GrpcServerOptions o;
    o.address = "0.0.0.0";
    o.port = 0;
    // 127.0.0.2 is on lo; 192.0.2.77 (TEST-NET-1) on no interface: its
    // listener exists only thanks to IP_FREEBIND.
    o.service_addresses = {"127.0.0.2", "192.0.2.77"};
    auto s = StartGrpcServer(o, std::move(router), pipeline_);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
  }

  std::shared_ptr<grpc::Channel> Channel(const std::string& host) {
    grpc::ChannelArguments args;
    // A name that is no address: the call's local address must come from
    // the listener, not from :authority.
    args.SetString(GRPC_ARG_DEFAULT_AUTHORITY, "kv.example");
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return grpc::CreateCustomChannel(absl::StrCat(host, ":", server_->port()),
                                     grpc::InsecureChannelCredentials(), args);
  }

  using Answer = GrpcAnswer;
  // Starts a call; its answer comes through the future.
  std::future<Answer> Start(std::shared_ptr<grpc::Channel> channel, std::string key,
                            std::string body) {
    return std::async(std::launch::async, [channel, key, body] {
      return GrpcUnaryCall(channel, kMethod, key, body, std::chrono::seconds(10));
    });
  }
  Answer Call(std::shared_ptr<grpc::Channel> channel, std::string key) {
    return Start(std::move(channel), std::move(key), "{}").get();
  }

  std::vector<std::string> LocalAddresses() {
    absl::MutexLock lock(&mu_);
    return local_addresses_;
  }

  std::unique_ptr<testing::FaultStore> store_ =
      testing::NewMemoryFaultStore(/*async_commits=*/false);
  RequestPipeline pipeline_{*store_, RealClock()};
  std::unique_ptr<GrpcServer> server_;
  std::atomic<int> executions_{0};
  absl::Notification in_slow_, release_slow_;
  absl::Mutex mu_;
  std::vector<std::string> local_addresses_ ABSL_GUARDED_BY(mu_);
};

TEST_F(GrpcDrainTest, ReleaseSendsGoawayThereWhileItsRunningCallFinishes) {
  auto service = Channel("127.0.0.2");
  auto host = Channel("127.0.0.1");
  ASSERT_TRUE(Call(service, "k1").status.ok());
  ASSERT_TRUE(Call(host, "k2").status.ok());
  EXPECT_EQ(LocalAddresses(),
            (std::vector<std::string>{"127.0.0.2", "kv.example"}))
      << "a call on a service address's listener is fenced by that address";
  ASSERT_EQ(service->GetState(false), GRPC_CHANNEL_READY);
  ASSERT_EQ(host->GetState(false), GRPC_CHANNEL_READY);

  // A call running on the service address when it is released.
  std::future<Answer> slow = Start(service, "k3", "slow");
  ASSERT_TRUE(in_slow_.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(server_->CloseConnections("127.0.0.2"), 1u);

  // GOAWAY: the channel leaves READY, although a call is still running on
  // its connection.
  EXPECT_TRUE(service->WaitForStateChange(
      GRPC_CHANNEL_READY, std::chrono::system_clock::now() + std::chrono::seconds(5)));
  // The next call goes over a new connection (to the fresh listener).
  Answer next = Call(service, "k4");
  EXPECT_TRUE(next.status.ok()) << next.status.error_message();
  // Another address's connection is untouched.
  EXPECT_FALSE(host->WaitForStateChange(
      GRPC_CHANNEL_READY, std::chrono::system_clock::now() + std::chrono::milliseconds(200)));
  EXPECT_EQ(server_->CloseConnections("127.0.0.2"), 1u) << "still finishing";

  // The running call finishes and is answered, executed once.
  release_slow_.Notify();
  Answer s = slow.get();
  EXPECT_TRUE(s.status.ok()) << s.status.error_message();
  const absl::Time until = absl::Now() + absl::Seconds(10);
  size_t left = 1;
  while ((left = server_->CloseConnections("127.0.0.2")) > 0 && absl::Now() < until) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_EQ(left, 0u);
  EXPECT_EQ(executions_.load(), 4);

  // Served again (a later holding), and released again the same way.
  EXPECT_TRUE(Call(Channel("127.0.0.2"), "k5").status.ok());
  EXPECT_EQ(server_->CloseConnections("127.0.0.2"), 1u);
  EXPECT_EQ(host->GetState(false), GRPC_CHANNEL_READY);
  EXPECT_EQ(server_->CloseConnections("127.0.0.9"), 0u) << "no listener of its own";
  server_->Stop();
}

// Calls that race with the release (sent while the GOAWAY is on its way):
// each is answered, or fails retryably (UNAVAILABLE; CANCELLED, which gRPC
// C++ 1.51 gives a call that arrives after its Shutdown began) without having
// been executed -- never executed and lost. Through baton's retrying client
// (gRPC transport) every call then succeeds, executed once.
TEST_F(GrpcDrainTest, CallsRacingTheReleaseAreAnsweredOrNotExecuted) {
  auto service = Channel("127.0.0.2");
  ASSERT_TRUE(Call(service, "warm").status.ok());
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, retryable{0}, other{0}, n{0};
  std::vector<std::thread> plain;
  for (int t = 0; t < 4; ++t) {
    plain.emplace_back([&, t] {
      while (!stop.load()) {
        Answer a =
            Start(service, absl::StrCat("p", t, "-", n.fetch_add(1)), "own").get();
        const grpc::StatusCode c = a.status.error_code();
        (c == grpc::StatusCode::OK ? ok
         : c == grpc::StatusCode::UNAVAILABLE || c == grpc::StatusCode::CANCELLED
             ? retryable
             : other)++;
      }
    });
  }
  // baton's retrying client over its gRPC transport.
  std::atomic<int> client_ok{0}, client_failed{0};
  auto transport =
      client::MakeGrpcTransport({.target = absl::StrCat("127.0.0.2:", server_->port())});
  ASSERT_TRUE(transport.ok()) << transport.status();
  client::ClientOptions co;
  co.retry.attempt_timeout = absl::Seconds(5);
  client::RetryingClient retrying(*std::move(transport), co);
  client::Call call;
  call.method = kMethod;
  call.body = "own";
  std::thread with_client([&] {
    while (!stop.load()) {
      client::CallResult r = retrying.Send(call);
      (r.status.ok() && r.response.code == absl::StatusCode::kOk ? client_ok : client_failed)++;
    }
  });
  for (int round = 0; round < 20; ++round) {
    absl::SleepFor(absl::Milliseconds(10));
    (void)server_->CloseConnections("127.0.0.2");
    const absl::Time until = absl::Now() + absl::Seconds(10);
    while (server_->CloseConnections("127.0.0.2") > 0 && absl::Now() < until) {
      absl::SleepFor(absl::Milliseconds(1));
    }
  }
  stop.store(true);
  for (std::thread& t : plain) t.join();
  with_client.join();
  EXPECT_EQ(other.load(), 0);
  EXPECT_GT(ok.load(), 0);
  EXPECT_EQ(client_failed.load(), 0);
  EXPECT_GT(client_ok.load(), 0);
  // Every execution was answered: no call executed whose answer was lost.
  EXPECT_EQ(executions_.load(), ok.load() + client_ok.load() + 1)
      << retryable.load() << " retryable";
}

TEST(GrpcListenerCost, ListenersOfServiceAddressesStartNoThreads) {
  auto store = testing::NewMemoryFaultStore(/*async_commits=*/false);
  RequestPipeline pipeline(*store, RealClock());
  GrpcServerOptions o;
  o.address = "0.0.0.0";
  o.port = 0;
  o.worker_threads = 1;
  // gRPC's process-wide threads start with the first server.
  auto first = StartGrpcServer(o, GrpcRouter(), pipeline);
  ASSERT_TRUE(first.ok()) << first.status();
  const int before = ThreadCount();
  const long rss_before = RssKib();
  for (int i = 1; i <= 32; ++i) o.service_addresses.push_back(absl::StrCat("192.0.2.", i));
  auto many = StartGrpcServer(o, GrpcRouter(), pipeline);
  ASSERT_TRUE(many.ok()) << many.status();
  // One worker thread of its own, as any GrpcServer; nothing per address.
  EXPECT_LE(ThreadCount() - before, 2) << "threads per 32 service addresses";
  std::printf("32 service-address listeners: %d thread(s), %ld KiB resident\n",
              ThreadCount() - before, RssKib() - rss_before);
  (*many)->Stop();
  (*first)->Stop();
}

}  // namespace
}  // namespace baton::framework
