// End-to-end tests of the retrying client and the gRPC front end against the
// kv service served over HTTP and gRPC from one pipeline on one RocksDB store
// (in-process, temp directory), through a fault-injecting proxy:
//   - a reply dropped after the commit: the retry gets the stored reply,
//     flagged as a replay, and the counter moved once;
//   - a reply delayed past the client's attempt timeout: same;
//   - duplicate concurrent retries of one id: executed once, all get the
//     same reply;
//   - many clients with faults: counters end equal to the acknowledged INCRs;
//   - bad input: unknown method, missing/oversized metadata, an id reused
//     with a different body, a client id reading another client's records.
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "framework/client/client.h"
#include "framework/clock.h"
#include "framework/grpc/grpc_server.h"
#include "framework/grpc/typed.h"
#include "framework/http_server.h"
#include "framework/pipeline.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "samples/kvservice/kv_client.h"
#include "samples/kvservice/kv_grpc.h"
#include "samples/kvservice/kv_service.h"
#include "samples/kvservice/proto/kv.pb.h"
#include "storage/rocksdb/rocksdb_store.h"
#include "tests/kvservice/grpc_fault_proxy.h"

namespace baton::kvservice {
namespace {

using framework::client::ClientOptions;
using namespace std::chrono_literals;

class Servers {
 public:
  Servers() {
    dir_ = std::filesystem::temp_directory_path() /
           ("baton_grpc_e2e_" + std::to_string(::getpid()) + "_" +
            std::to_string(counter_++));
    std::filesystem::remove_all(dir_);
    storage::RocksDbOptions so;
    so.path = dir_.string();
    so.sync = false;  // Process-crash durability is the integration test's.
    store_ = *storage::OpenRocksDbStore(so);
    framework::PipelineOptions po;
    po.in_flight_wait = absl::Seconds(5);
    pipeline_ = std::make_unique<framework::RequestPipeline>(
        *store_, framework::RealClock(), po);
    framework::Router router;
    EXPECT_TRUE(RegisterKvRoutes(router).ok());
    framework::HttpServerOptions ho;
    ho.port = 0;
    ho.worker_threads = 8;
    http_ = *framework::StartHttpServer(ho, std::move(router), *pipeline_);
    framework::GrpcRouter grouter;
    EXPECT_TRUE(RegisterKvGrpcMethods(grouter).ok());
    framework::GrpcServerOptions go;
    go.port = 0;
    go.worker_threads = 8;
    grpc_ = *framework::StartGrpcServer(go, std::move(grouter), *pipeline_);
    http_proxy_ = std::make_unique<testing::FaultProxy>(http_->port());
    grpc_proxy_ = std::make_unique<testing::FaultProxy>(grpc_->port());
  }
  ~Servers() {
    http_proxy_.reset();
    grpc_proxy_.reset();
    grpc_->Stop();
    http_->Stop();
    pipeline_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Through the proxy of `p`.
  std::string Endpoint(KvProtocol p) const {
    return "127.0.0.1:" + std::to_string(Proxy(p).port());
  }
  // Straight to the server.
  std::string Direct(KvProtocol p) const {
    return "127.0.0.1:" + std::to_string(p == KvProtocol::kHttp ? http_->port()
                                                               : grpc_->port());
  }
  testing::FaultProxy& Proxy(KvProtocol p) const {
    return p == KvProtocol::kHttp ? *http_proxy_ : *grpc_proxy_;
  }
  framework::RequestPipeline& pipeline() { return *pipeline_; }

 private:
  static inline int counter_ = 0;
  std::filesystem::path dir_;
  std::unique_ptr<storage::StableStore> store_;
  std::unique_ptr<framework::RequestPipeline> pipeline_;
  std::unique_ptr<framework::HttpServer> http_;
  std::unique_ptr<framework::GrpcServer> grpc_;
  std::unique_ptr<testing::FaultProxy> http_proxy_, grpc_proxy_;
};

ClientOptions FastRetries() {
  ClientOptions o;
  o.retry.attempt_timeout = absl::Milliseconds(500);
  o.retry.deadline = absl::Seconds(20);
  o.retry.initial_backoff = absl::Milliseconds(5);
  o.retry.max_backoff = absl::Milliseconds(100);
  return o;
}

std::unique_ptr<KvClient> Connect(KvProtocol p, const std::string& endpoint,
                                  ClientOptions o = FastRetries()) {
  auto c = KvClient::Connect(p, endpoint, std::move(o));
  EXPECT_TRUE(c.ok()) << c.status();
  return *std::move(c);
}

int64_t Counter(Servers& s, KvProtocol p, const std::string& key) {
  auto c = Connect(p, s.Direct(p));
  KvResult r = c->Get(key);
  if (r.code == absl::StatusCode::kNotFound) return 0;
  EXPECT_TRUE(r.ok()) << r.error;
  int64_t n = -1;
  EXPECT_TRUE(absl::SimpleAtoi(r.value_json, &n)) << r.value_json;
  return n;
}

class E2eTest : public ::testing::TestWithParam<KvProtocol> {
 protected:
  Servers servers_;
};

std::string Name(const ::testing::TestParamInfo<KvProtocol>& i) {
  return i.param == KvProtocol::kHttp ? "Http" : "Grpc";
}

TEST_P(E2eTest, ReplyDroppedAfterCommitIsAnsweredFromTheRecordOnRetry) {
  auto c = Connect(GetParam(), servers_.Endpoint(GetParam()));
  ASSERT_TRUE(c->Get("warm").code == absl::StatusCode::kNotFound);
  servers_.Proxy(GetParam()).DropNextReplies(1);
  KvResult r = c->Incr("n", 5);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(servers_.Proxy(GetParam()).dropped(), 1);
  EXPECT_GE(r.call.attempts, 2);
  EXPECT_TRUE(r.replayed()) << "the retry must be answered from the record";
  EXPECT_EQ(r.value_json, "5");
  EXPECT_EQ(Counter(servers_, GetParam(), "n"), 5) << "INCR applied twice";
}

TEST_P(E2eTest, ReplyDelayedPastTheTimeoutIsAnsweredFromTheRecordOnRetry) {
  auto c = Connect(GetParam(), servers_.Endpoint(GetParam()));
  ASSERT_TRUE(c->Get("warm").code == absl::StatusCode::kNotFound);
  servers_.Proxy(GetParam()).DelayNextReplies(1, 1500ms);
  KvResult r = c->Append("log", "x");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_GE(r.call.attempts, 2);
  EXPECT_TRUE(r.replayed());
  EXPECT_GE(r.call.outage, absl::Milliseconds(400));
  auto d = Connect(GetParam(), servers_.Direct(GetParam()));
  EXPECT_EQ(d->Get("log").value_json, "\"x\"") << "APPEND applied twice";
}

TEST_P(E2eTest, DuplicateConcurrentRetriesOfOneIdExecuteOnce) {
  // Eight attempts of one (client, seq) at once, straight through a transport.
  absl::StatusOr<std::unique_ptr<framework::client::Transport>> t;
  auto kv = Connect(GetParam(), servers_.Direct(GetParam()));
  auto call = kv->MakeCall("incr", "dup", "1", "");
  ASSERT_TRUE(call.ok());
  if (GetParam() == KvProtocol::kHttp) {
    t = framework::client::MakeHttpTransport(
        {.host = "127.0.0.1",
         .port = static_cast<uint16_t>(std::stoi(
             servers_.Direct(GetParam()).substr(10)))});
  } else {
    t = framework::client::MakeGrpcTransport({.target = servers_.Direct(GetParam())});
  }
  ASSERT_TRUE(t.ok());
  framework::client::IdHeaders id;
  id.client_id = "dup-client";
  id.seq = 1;
  std::vector<absl::StatusOr<framework::client::Response>> out(8);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      out[i] = (*t)->Attempt(*call, id, absl::Seconds(10), false);
    });
  }
  for (auto& th : threads) th.join();
  int fresh = 0;
  for (const auto& r : out) {
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->code, absl::StatusCode::kOk) << r->body;
    EXPECT_EQ(r->body, out[0]->body) << "every duplicate gets the same bytes";
    fresh += !r->replayed;
  }
  EXPECT_EQ(fresh, 1);
  EXPECT_EQ(Counter(servers_, GetParam(), "dup"), 1);
}

TEST_P(E2eTest, CountersEqualAcknowledgedIncrsUnderDroppedAndDelayedReplies) {
  constexpr int kClients = 4, kIncrs = 40;
  std::atomic<int> acked{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&] {
      auto c = Connect(GetParam(), servers_.Endpoint(GetParam()));
      for (int j = 0; j < kIncrs; ++j) {
        KvResult r = c->Incr("total");
        if (r.ok()) ++acked;
      }
    });
  }
  for (int k = 0; k < 6; ++k) {
    std::this_thread::sleep_for(30ms);
    if (k % 2) {
      servers_.Proxy(GetParam()).DropNextReplies(2);
    } else {
      servers_.Proxy(GetParam()).DelayNextReplies(1, 700ms);
    }
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(acked.load(), kClients * kIncrs) << "the client must not give up";
  EXPECT_EQ(Counter(servers_, GetParam(), "total"), acked.load());
}

TEST_P(E2eTest, RequestIdReusedWithADifferentBodyIsRefusedNotReplayed) {
  auto c = Connect(GetParam(), servers_.Direct(GetParam()));
  auto first = c->MakeCall("put", "k", "1", "");
  auto second = c->MakeCall("put", "k", "2", "");
  ASSERT_TRUE(first.ok() && second.ok());
  auto& rc = c->client();
  KvResult a = c->Decode(rc.SendWithKey(*first, "reused-key"));
  ASSERT_TRUE(a.ok()) << a.error;
  KvResult b = c->Decode(rc.SendWithKey(*second, "reused-key"));
  EXPECT_EQ(b.call.attempts, 1);
  EXPECT_FALSE(b.ok());
  EXPECT_EQ(b.call.response.error_code, "idempotency_key_reused");
  EXPECT_EQ(b.code, absl::StatusCode::kFailedPrecondition);  // HTTP 422
  EXPECT_EQ(Counter(servers_, GetParam(), "k"), 1);
}

TEST_P(E2eTest, AClientIdCannotReadAnotherClientsCompletionRecords) {
  ClientOptions alice = FastRetries();
  alice.client_id = "alice";
  auto a = Connect(GetParam(), servers_.Direct(GetParam()), alice);
  ASSERT_TRUE(a->Put("secret", "\"alice's\"").ok());
  // Mallory claims alice's id and seq for another request: refused, and
  // alice's reply is not disclosed.
  ClientOptions mallory = FastRetries();
  mallory.client_id = "alice";
  auto m = Connect(GetParam(), servers_.Direct(GetParam()), mallory);
  KvResult r = m->Get("secret");  // seq 1, as alice's PUT
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(r.replayed());
  EXPECT_EQ(r.call.response.error_code, "idempotency_key_reused");
  EXPECT_EQ(r.call.response.body.find("alice's"), std::string::npos);
  // An idempotency key spelled like alice's record name is another key
  // space: it executes as a new request.
  auto k = Connect(GetParam(), servers_.Direct(GetParam()));
  auto call = k->MakeCall("put", "secret", "\"k\"", "");
  KvResult kr = k->Decode(k->client().SendWithKey(*call, "alice"));
  EXPECT_TRUE(kr.ok());
  EXPECT_FALSE(kr.replayed());
}

INSTANTIATE_TEST_SUITE_P(BothFrontEnds, E2eTest,
                         ::testing::Values(KvProtocol::kHttp, KvProtocol::kGrpc),
                         Name);

// gRPC-specific bad input, with a raw generic stub.
class GrpcBadInputTest : public ::testing::Test {
 protected:
  grpc::Status Call(const std::string& method, const std::string& body,
                    std::vector<std::pair<std::string, std::string>> md,
                    std::string* error_name = nullptr, bool* replayed = nullptr) {
    auto channel = grpc::CreateChannel(servers_.Direct(KvProtocol::kGrpc),
                                       grpc::InsecureChannelCredentials());
    grpc::GenericStub stub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    for (auto& [k, v] : md) ctx.AddMetadata(k, v);
    grpc::Slice slice(body);
    grpc::ByteBuffer req(&slice, 1), resp;
    std::promise<grpc::Status> p;
    stub.UnaryCall(&ctx, method, grpc::StubOptions(), &req, &resp,
                   [&p](grpc::Status s) { p.set_value(s); });
    grpc::Status s = p.get_future().get();
    auto md_in = ctx.GetServerTrailingMetadata();
    if (error_name) {
      auto it = md_in.find("baton-error");
      *error_name = it == md_in.end() ? "" : std::string(it->second.data(), it->second.size());
    }
    if (replayed) {
      *replayed = md_in.find("idempotent-replayed") != md_in.end();
    }
    return s;
  }
  std::string IncrBody() {
    kv::v1::IncrRequest m;
    m.set_key("c");
    return m.SerializeAsString();
  }
  Servers servers_;
};

TEST_F(GrpcBadInputTest, UnknownMethodIsUnimplemented) {
  std::string name;
  grpc::Status s = Call("/baton.kv.v1.Kv/Frobnicate", "", {}, &name);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_NE(s.error_message().find("Frobnicate"), std::string::npos);
  EXPECT_EQ(name, "unknown_method");
}

TEST_F(GrpcBadInputTest, IncompleteOrMalformedIdMetadataIsRefused) {
  const std::vector<std::vector<std::pair<std::string, std::string>>> bad = {
      {{"baton-seq", "1"}},                                 // no client id
      {{"baton-client-id", "c1"}},                          // no seq
      {{"baton-client-id", "c1"}, {"baton-seq", "x1"}},     // not a number
      {{"baton-client-id", "c1"}, {"baton-seq", "1"}, {"baton-ack", "-1"}},
      {{"idempotency-key", "k"}, {"baton-client-id", "c1"}, {"baton-seq", "1"}},
      {{"idempotency-key", std::string(300, 'k')}},         // oversized
      {{"baton-client-id", std::string(200, 'c')}, {"baton-seq", "1"}},
  };
  for (const auto& md : bad) {
    std::string name;
    grpc::Status s = Call(kGrpcIncr, IncrBody(), md, &name);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << md[0].first << " " << s.error_message();
    EXPECT_FALSE(s.error_message().empty());
  }
  // Nothing was executed.
  EXPECT_EQ(Counter(servers_, KvProtocol::kGrpc, "c"), 0);
}

TEST_F(GrpcBadInputTest, MetadataOverTheLimitIsRefusedBeforeExecution) {
  grpc::Status s = Call(kGrpcIncr, IncrBody(),
                        {{"idempotency-key", "big"},
                         {"x-padding", std::string(16 * 1024, 'p')}});
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(Counter(servers_, KvProtocol::kGrpc, "c"), 0);
}

TEST_F(GrpcBadInputTest, MalformedMessageIsInvalidArgument) {
  grpc::Status s = Call(kGrpcIncr, "\xff\xff\xff", {{"idempotency-key", "m"}});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

// Issue 13: a Put with a deeply nested value_json crashed the server (stack
// overflow while the value was printed). Now refused before it is built;
// the server still answers.
TEST_F(GrpcBadInputTest, DeeplyNestedValueJsonIsRefusedAndTheServerLives) {
  kv::v1::PutRequest put;
  put.set_key("deep");
  put.set_value_json(std::string(100000, '[') + std::string(100000, ']'));
  std::string name;
  grpc::Status s = Call(kGrpcPut, put.SerializeAsString(),
                        {{"idempotency-key", "deep"}}, &name);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << s.error_message();
  EXPECT_NE(s.error_message().find("nested deeper than"), std::string::npos)
      << s.error_message();
  kv::v1::GetRequest g;
  g.set_key("deep");
  EXPECT_EQ(Call(kGrpcGet, g.SerializeAsString(), {}).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(GrpcBadInputTest, ReplayFlagAndCodesMapOneToOne) {
  bool replayed = false;
  grpc::Status s = Call(kGrpcIncr, IncrBody(), {{"idempotency-key", "r1"}},
                        nullptr, &replayed);
  EXPECT_TRUE(s.ok());
  EXPECT_FALSE(replayed);
  s = Call(kGrpcIncr, IncrBody(), {{"idempotency-key", "r1"}}, nullptr, &replayed);
  EXPECT_TRUE(s.ok());
  EXPECT_TRUE(replayed);
  kv::v1::GetRequest g;
  g.set_key("absent");
  s = Call(kGrpcGet, g.SerializeAsString(), {});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  kv::v1::CasRequest cas;
  cas.set_key("c");
  cas.set_expected_json("99");
  cas.set_value_json("1");
  s = Call(kGrpcCas, cas.SerializeAsString(), {});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

}  // namespace
}  // namespace baton::kvservice

namespace baton::kvservice {
namespace {

// Both front ends name the node in every answer (client Response::node) and
// fence by the address the request came to: HTTP by the connection's local
// address, gRPC by the :authority host (here 127.0.0.1 plays slot 0).
TEST(NodeAndFenceTest, BothFrontEndsNameTheNodeAndFenceBySlotAddress) {
  const std::string dir = (std::filesystem::temp_directory_path() /
                           ("baton_node_fence_" + std::to_string(::getpid())))
                              .string();
  std::filesystem::remove_all(dir);
  storage::RocksDbOptions so;
  so.path = dir;
  so.sync = false;
  auto store = storage::OpenRocksDbStore(so);
  ASSERT_TRUE(store.ok()) << store.status();
  framework::FenceTable fences;
  framework::RequestPipeline pipeline(**store, framework::RealClock());
  pipeline.SetFenceTable(&fences);
  framework::Router router;
  ASSERT_TRUE(RegisterKvRoutes(router).ok());
  framework::HttpServerOptions ho;
  ho.port = 0;
  ho.node_name = "n1";
  auto http = framework::StartHttpServer(ho, std::move(router), pipeline);
  ASSERT_TRUE(http.ok()) << http.status();
  framework::GrpcRouter grouter;
  ASSERT_TRUE(RegisterKvGrpcMethods(grouter).ok());
  framework::GrpcServerOptions go;
  go.port = 0;
  go.node_name = "n1";
  auto grpc = framework::StartGrpcServer(go, std::move(grouter), pipeline);
  ASSERT_TRUE(grpc.ok()) << grpc.status();

  auto ht = framework::client::MakeHttpTransport(
      {.host = "127.0.0.1", .port = (*http)->port()});
  ASSERT_TRUE(ht.ok());
  auto gt = framework::client::MakeGrpcTransport(
      {.target = "127.0.0.1:" + std::to_string((*grpc)->port())});
  ASSERT_TRUE(gt.ok());
  baton::kv::v1::IncrRequest incr;
  incr.set_key("n");
  const framework::client::Call grpc_incr{"/baton.kv.v1.Kv/Incr", "",
                                          incr.SerializeAsString(), ""};
  const framework::client::Call http_incr{"POST", "/kv/n/incr", "{\"by\":1}"};
  auto attempt = [](framework::client::Transport& t,
                    const framework::client::Call& call, std::string key) {
    framework::client::IdHeaders id;
    id.idempotency_key = std::move(key);
    auto r = t.Attempt(call, id, absl::Seconds(5), false);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : framework::client::Response{};
  };

  fences.Held(0, "127.0.0.1", 1);  // Taken, fence not written yet.
  for (auto* t : {ht->get(), gt->get()}) {
    const bool is_grpc = t == gt->get();
    auto r = attempt(*t, is_grpc ? grpc_incr : http_incr, "k0");
    EXPECT_EQ(r.code, absl::StatusCode::kUnavailable) << r.body;
    EXPECT_EQ(r.error_code, "fence_not_ready") << r.body;
    EXPECT_EQ(r.node, "n1");
  }
  ASSERT_TRUE(fences.Establish(**store, 0, 1).ok());
  for (auto* t : {ht->get(), gt->get()}) {
    const bool is_grpc = t == gt->get();
    auto r = attempt(*t, is_grpc ? grpc_incr : http_incr,
                     is_grpc ? "k-grpc" : "k-http");
    EXPECT_EQ(r.code, absl::StatusCode::kOk) << r.body;
    EXPECT_EQ(r.node, "n1");
  }
  // A newer holder's fence: both are refused as deposed, nothing written.
  framework::FenceTable other;
  other.Held(0, "127.0.0.1", 2);
  ASSERT_TRUE(other.Establish(**store, 0, 2).ok());
  for (auto* t : {ht->get(), gt->get()}) {
    const bool is_grpc = t == gt->get();
    auto r = attempt(*t, is_grpc ? grpc_incr : http_incr,
                     is_grpc ? "k-grpc-2" : "k-http-2");
    EXPECT_EQ(r.code, absl::StatusCode::kUnavailable) << r.body;
    EXPECT_EQ(r.node, "n1");
  }
  auto n = (*store)->Get("n");
  ASSERT_TRUE(n.ok());
  EXPECT_NE(n->value.find("\"value\":2"), std::string::npos) << n->value;
  (*grpc)->Stop();
  (*http)->Stop();
  store->reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace baton::kvservice

namespace baton::kvservice {
namespace {

// The kv operations answer alike over HTTP (JSON routes) and gRPC (typed
// methods): same codes, same values and versions, and the gRPC status
// message is the HTTP error body, byte for byte.
TEST(KvBothFormsTest, EveryOperationAnswersAlikeOverHttpAndGrpc) {
  Servers servers;
  auto h = Connect(KvProtocol::kHttp, servers.Direct(KvProtocol::kHttp));
  auto g = Connect(KvProtocol::kGrpc, servers.Direct(KvProtocol::kGrpc));
  struct Op {
    std::string op, arg1, arg2;
  };
  const std::vector<Op> ops = {
      {"get", "", ""},           {"delete", "", ""},
      {"put", "1", ""},          {"incr", "41", ""},
      {"append", "x", ""},       {"cas", "1", "2"},
      {"cas", "42", "\"s\""},    {"incr", "1", ""},
      {"append", "t", ""},       {"get", "", ""},
      {"put", "9223372036854775807", ""},
      {"incr", "1", ""},         {"cas", "null", "3"},
      {"put", "{\"a\":[1,{\"b\":null}]}", ""},
      {"get", "", ""},           {"delete", "", ""},
      {"delete", "", ""},        {"cas", "null", "\"new\""},
  };
  int step = 0;
  for (const Op& o : ops) {
    SCOPED_TRACE(absl::StrCat("step ", step++, ": ", o.op, " ", o.arg1, " ", o.arg2));
    auto hc = h->MakeCall(o.op, "k", o.arg1, o.arg2);
    auto gc = g->MakeCall(o.op, "k2", o.arg1, o.arg2);
    ASSERT_TRUE(hc.ok() && gc.ok());
    KvResult hr = h->Decode(h->client().Send(*hc));
    KvResult gr = g->Decode(g->client().Send(*gc));
    ASSERT_TRUE(hr.call.status.ok()) << hr.call.status;
    ASSERT_TRUE(gr.call.status.ok()) << gr.call.status;
    EXPECT_EQ(hr.code, gr.code);
    EXPECT_EQ(hr.value_json, gr.value_json);
    EXPECT_EQ(hr.version, gr.version);
    EXPECT_EQ(hr.deleted, gr.deleted);
    EXPECT_EQ(hr.error, gr.error);
    if (hr.ok()) {
      EXPECT_EQ(hr.key, "k");
      EXPECT_EQ(gr.key, "k2");
    } else {
      EXPECT_EQ(gr.call.response.error_code,
                nlohmann::json::parse(hr.error)["error"]["code"])
          << "baton-error is the JSON error's code";
    }
  }
}

// A CAS mismatch over gRPC: the refusal's details carry the current value as
// a KvReply, and a retry of a refused write is not executed twice.
TEST_F(GrpcBadInputTest, RefusalsCarryTheCurrentValueAsADetail) {
  kv::v1::PutRequest put;
  put.set_key("c");
  put.set_value_json("{\"n\":1}");
  ASSERT_TRUE(Call(kGrpcPut, put.SerializeAsString(), {{"idempotency-key", "p"}}).ok());
  kv::v1::CasRequest cas;
  cas.set_key("c");
  cas.set_expected_json("2");
  cas.set_value_json("3");
  std::string name;
  auto channel = grpc::CreateChannel(servers_.Direct(KvProtocol::kGrpc),
                                     grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.AddMetadata("idempotency-key", "cas-1");
  grpc::Slice slice(cas.SerializeAsString());
  grpc::ByteBuffer req(&slice, 1), resp;
  std::promise<grpc::Status> p;
  stub.UnaryCall(&ctx, kGrpcCas, grpc::StubOptions(), &req, &resp,
                 [&p](grpc::Status s) { p.set_value(s); });
  grpc::Status s = p.get_future().get();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(s.error_message(),
            "{\"current\":{\"n\":1},\"error\":{\"code\":\"precondition_failed\","
            "\"message\":\"current value differs from \\\"expected\\\"\"}}");
  auto md = ctx.GetServerTrailingMetadata();
  auto it = md.find("baton-error");
  ASSERT_NE(it, md.end());
  EXPECT_EQ(std::string(it->second.data(), it->second.size()), "precondition_failed");
  absl::StatusOr<framework::RpcStatus> details =
      framework::ParseRpcStatus(s.error_details());
  ASSERT_TRUE(details.ok()) << details.status();
  ASSERT_EQ(details->details.size(), 1u);
  kv::v1::KvReply current;
  ASSERT_TRUE(details->details[0].UnpackTo(&current));
  EXPECT_EQ(current.key(), "c");
  EXPECT_EQ(current.value_json(), "{\"n\":1}");
  // Garbage for a typed method: the framework's message, nothing executed.
  s = Call(kGrpcPut, "\x0a\x09" "short", {{"idempotency-key", "g"}}, &name);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("malformed baton.kv.v1.PutRequest"),
            std::string::npos) << s.error_message();
  EXPECT_EQ(name, "invalid_argument");
}

}  // namespace
}  // namespace baton::kvservice
