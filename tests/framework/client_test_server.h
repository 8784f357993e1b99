// A real baton HTTP server for client tests: framework::HttpServer on
// 127.0.0.1 (an ephemeral port) and a RequestPipeline on the in-memory store,
// with one slow, counting handler: POST /kv/{key}/incr waits `delay` (so that
// a hedge or a retry arrives while it runs), increments the key and answers
// {"n":<new value>,"principal":"<the request's principal>"}.
//
// Thread safety: construct and destroy on one thread; executions() from any.
#ifndef BATON_TESTS_FRAMEWORK_CLIENT_TEST_SERVER_H_
#define BATON_TESTS_FRAMEWORK_CLIENT_TEST_SERVER_H_

#include <atomic>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "framework/clock.h"
#include "framework/http_server.h"
#include "framework/pipeline.h"
#include "framework/testing/fault_store.h"
#include "gtest/gtest.h"

namespace baton::testing {

class SlowCountingServer {
 public:
  explicit SlowCountingServer(absl::Duration delay,
                              framework::TlsServerOptions tls = {}) {
    framework::Router router;
    EXPECT_TRUE(router
                    .Add("POST", "/kv/{key}/incr",
                         framework::MakeHandler(
                             [this, delay](const framework::Request& req,
                                           framework::Transaction& txn)
                                 -> absl::StatusOr<framework::Reply> {
                               ++executions_;
                               absl::SleepFor(delay);
                               auto v = txn.Get(req.Param("key"));
                               if (!v.ok()) return v.status();
                               const int n = v->version == 0 ? 1 : std::stoi(v->value) + 1;
                               if (auto s = txn.Put(req.Param("key"), std::to_string(n));
                                   !s.ok()) {
                                 return s;
                               }
                               return framework::Reply::Json(
                                   absl::StatusCode::kOk,
                                   absl::StrCat("{\"n\":", n, ",\"principal\":\"",
                                                req.principal, "\"}"));
                             }))
                    .ok());
    framework::HttpServerOptions so;
    so.port = 0;
    so.handler_threads = framework::HttpServerOptions::HandlerThreads::kWorkers;
    so.worker_threads = 4;
    so.tls = std::move(tls);
    auto server = framework::StartHttpServer(so, std::move(router), pipeline_);
    EXPECT_TRUE(server.ok()) << server.status();
    if (server.ok()) server_ = *std::move(server);
  }
  ~SlowCountingServer() {
    if (server_) server_->Stop();
  }

  bool ok() const { return server_ != nullptr; }
  uint16_t port() const { return server_->port(); }
  int executions() const { return executions_.load(); }
  framework::RequestPipeline& pipeline() { return pipeline_; }

 private:
  std::unique_ptr<FaultStore> store_ = NewMemoryFaultStore(/*async_commits=*/false);
  framework::RequestPipeline pipeline_{*store_, framework::RealClock()};
  std::atomic<int> executions_{0};
  std::unique_ptr<framework::HttpServer> server_;
};

}  // namespace baton::testing

#endif  // BATON_TESTS_FRAMEWORK_CLIENT_TEST_SERVER_H_
