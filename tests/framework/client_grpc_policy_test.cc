// What docs/client.md tells plain gRPC clients, run: a channel with the
// documented service config (gRPC's own retryPolicy) and an
// `idempotency-key` in the metadata, against baton's gRPC front end and
// pipeline on the in-memory store. A commit that fails as unavailable is
// retried by gRPC itself with the same key and the write lands once; the same
// key sent again is answered from the completion record. And what gRPC C++
// (C-core, this Debian's 1.51) does with a hedgingPolicy: it ignores it --
// the documented reason to hedge with baton's client, or with grpc-java /
// grpc-go, which implement it.
#include <atomic>
#include <future>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "framework/clock.h"
#include "framework/grpc/grpc_server.h"
#include "framework/pipeline.h"
#include "tests/framework/grpc_unary_call.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "framework/testing/fault_store.h"

namespace baton::framework {
namespace {

// The retry service config of docs/client.md, verbatim.
constexpr char kRetryConfig[] = R"({
  "methodConfig": [{
    "name": [{"service": "baton.kv.v1.Kv"}],
    "timeout": "30s",
    "retryPolicy": {
      "maxAttempts": 5,
      "initialBackoff": "0.02s",
      "maxBackoff": "1s",
      "backoffMultiplier": 2,
      "retryableStatusCodes": ["UNAVAILABLE", "ABORTED"]
    }
  }]
})";

// The hedging service config of docs/client.md (for grpc-java / grpc-go).
constexpr char kHedgingConfig[] = R"({
  "methodConfig": [{
    "name": [{"service": "baton.kv.v1.Kv"}],
    "timeout": "30s",
    "hedgingPolicy": {
      "maxAttempts": 2,
      "hedgingDelay": "0.05s",
      "nonFatalStatusCodes": ["UNAVAILABLE", "ABORTED"]
    }
  }]
})";

constexpr char kMethod[] = "/baton.kv.v1.Kv/Incr";

class GrpcPolicyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    GrpcRouter router;
    ASSERT_TRUE(router
                    .Add(kMethod, MakeHandler([this](const Request& req, Transaction& txn)
                                                  -> absl::StatusOr<Reply> {
                           ++arrivals_;
                           if (auto it = req.metadata.find("grpc-previous-rpc-attempts");
                               it != req.metadata.end()) {
                             absl::MutexLock lock(&mu_);
                             previous_attempts_ = it->second;
                           }
                           absl::SleepFor(handler_delay_);
                           auto v = txn.Get("n");
                           if (!v.ok()) return v.status();
                           const int n = v->version == 0 ? 1 : std::stoi(v->value) + 1;
                           if (auto s = txn.Put("n", std::to_string(n)); !s.ok()) return s;
                           return Reply::Text(absl::StatusCode::kOk, std::to_string(n));
                         }))
                    .ok());
    GrpcServerOptions o;
    o.port = 0;
    auto s = StartGrpcServer(o, std::move(router), pipeline_);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
  }

  // A plain gRPC call (no baton client) on a channel with `service_config`.
  using Answer = GrpcAnswer;
  Answer Call(const std::string& service_config, const std::string& key) {
    grpc::ChannelArguments args;
    args.SetServiceConfigJSON(service_config);
    auto channel = grpc::CreateCustomChannel(
        absl::StrCat("127.0.0.1:", server_->port()), grpc::InsecureChannelCredentials(),
        args);
    return GrpcUnaryCall(channel, kMethod, key, "{}");
  }

  std::unique_ptr<testing::FaultStore> store_ =
      testing::NewMemoryFaultStore(/*async_commits=*/false);
  RequestPipeline pipeline_{*store_, RealClock()};
  std::unique_ptr<GrpcServer> server_;
  std::atomic<int> arrivals_{0};
  absl::Duration handler_delay_ = absl::ZeroDuration();
  absl::Mutex mu_;
  std::string previous_attempts_ ABSL_GUARDED_BY(mu_);
};

TEST_F(GrpcPolicyTest, DocumentedRetryPolicyRetriesWithTheSameKeyAndWritesOnce) {
  // The first attempt's commit fails as unavailable (nothing written).
  store_->InjectNext(testing::Fault::Unavailable());
  Answer a = Call(kRetryConfig, "incr-1");
  ASSERT_TRUE(a.status.ok()) << a.status.error_message();
  EXPECT_EQ(a.body, "1");
  EXPECT_EQ(arrivals_.load(), 2);
  {
    absl::MutexLock lock(&mu_);
    EXPECT_EQ(previous_attempts_, "1") << "gRPC itself retried the call";
  }
  // The same key again (an application retry after a lost reply): the
  // stored reply, not a second increment.
  Answer again = Call(kRetryConfig, "incr-1");
  ASSERT_TRUE(again.status.ok());
  EXPECT_EQ(again.body, "1");
  EXPECT_EQ(again.replayed, "true");
  EXPECT_EQ(arrivals_.load(), 2);
  EXPECT_EQ(Call(kRetryConfig, "incr-2").body, "2");
}

TEST_F(GrpcPolicyTest, CoreGrpcIgnoresAHedgingPolicy) {
  handler_delay_ = absl::Milliseconds(300);
  Answer a = Call(kHedgingConfig, "hedge-1");
  ASSERT_TRUE(a.status.ok()) << a.status.error_message();
  EXPECT_EQ(a.body, "1");
  // Were hedging implemented, a second attempt would have arrived after
  // 50 ms and waited for the first in the pipeline.
  EXPECT_EQ(arrivals_.load(), 1);
  EXPECT_EQ(pipeline_.Stats().waited + pipeline_.Stats().replayed, 0u);
}

}  // namespace
}  // namespace baton::framework
