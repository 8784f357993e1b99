// Typed gRPC methods (framework/grpc/typed.h) end to end: a real GrpcServer
// and RequestPipeline, called with a raw generic stub so that the bytes on
// the wire are what is checked. Every test runs on both of the front end's
// paths: handlers on gRPC's threads with asynchronous commits (RocksDB) and
// handlers on the worker pool with blocking commits (the in-memory store
// with async_commits off, as etcd would be).
//
// The messages are protobuf's well-known types (google/protobuf/wrappers.pb.h),
// so no code generation is needed; the docs' example (docs/framework.md,
// "Typed gRPC methods") is the first block below, checked word for word.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "framework/clock.h"
#include "framework/grpc/grpc_server.h"
#include "framework/grpc/typed.h"
#include "framework/pipeline.h"
#include "framework/server.h"
#include "google/protobuf/wrappers.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "storage/memory/memory_store.h"
#include "storage/rocksdb/rocksdb_store.h"
#include "tests/framework/docs_code.h"

namespace baton::framework {
namespace docs_example {

// [docs:typed-grpc]
using baton::framework::AddTypedMethod;
using baton::framework::MakeTypedHandler;
using baton::framework::RequestContext;
using baton::framework::Transaction;
using baton::framework::TypedReply;
using google::protobuf::Int64Value;
using google::protobuf::StringValue;

// "/counter.v1.Counter/Incr": adds 1 to the counter named in the request and
// answers its new value. A retry with the same id gets the same bytes.
absl::StatusOr<Int64Value> IncrCounter(const StringValue& name,
                                       const RequestContext& ctx,
                                       Transaction& txn) {
  if (name.value().empty()) return absl::InvalidArgumentError("no counter name");
  if (!ctx.has_id()) {  // without an id, a retry would count twice
    return absl::FailedPreconditionError("send an idempotency-key");
  }
  const std::string key = "counter/" + name.value();
  auto cur = txn.Get(key);
  if (!cur.ok()) return cur.status();  // e.g. UNAVAILABLE: the client retries
  int64_t n = 0;
  if (cur->present() && !absl::SimpleAtoi(cur->value, &n)) {
    return absl::DataLossError("counter " + key + " is not a number");
  }
  if (auto s = txn.Put(key, std::to_string(n + 1)); !s.ok()) return s;
  Int64Value reply;
  reply.set_value(n + 1);
  return reply;
}

void DefineCounterService(baton::framework::ServiceDefinition& service) {
  service.Method("/counter.v1.Counter/Incr",
                 MakeTypedHandler<StringValue, Int64Value>(IncrCounter));
}

// Or on a bare GrpcRouter (StartGrpcServer):
absl::Status AddCounterMethods(baton::framework::GrpcRouter& router) {
  return AddTypedMethod<StringValue, Int64Value>(
      router, "/counter.v1.Counter/Incr", IncrCounter);
}

// An application error that is an answer: committed with the handler's
// writes and replayed to retries (a Status would discard them).
absl::StatusOr<TypedReply<Int64Value>> Withdraw(const Int64Value& amount,
                                                const RequestContext& ctx,
                                                Transaction& txn) {
  auto balance = txn.Get("balance");
  if (!balance.ok()) return balance.status();
  int64_t have = 0;
  if (balance->present() && !absl::SimpleAtoi(balance->value, &have)) {
    return absl::DataLossError("balance is not a number");
  }
  if (amount.value() > have) {
    // The refusal is recorded (an audit entry), and a retry sees it again.
    if (auto s = txn.Put("refused/" + ctx.id().idempotency_key, "1"); !s.ok()) {
      return s;
    }
    Int64Value available;
    available.set_value(have);
    return TypedReply<Int64Value>::Error(absl::StatusCode::kFailedPrecondition,
                                         "insufficient funds",
                                         "insufficient_funds")
        .WithDetail(available);
  }
  if (auto s = txn.Put("balance", std::to_string(have - amount.value()));
      !s.ok()) {
    return s;
  }
  Int64Value left;
  left.set_value(have - amount.value());
  return TypedReply<Int64Value>(left);
}
// [docs:typed-grpc-end]

}  // namespace docs_example

namespace {

using google::protobuf::Int64Value;
using google::protobuf::StringValue;
using namespace std::chrono_literals;

enum class Path { kInline, kWorkers };

std::string PathName(const ::testing::TestParamInfo<Path>& p) {
  return p.param == Path::kInline ? "Inline" : "Workers";
}

// What a call got back.
struct Answer {
  grpc::Status status;
  std::string body;  // The response message bytes (OK only).
  std::map<std::string, std::string> trailers;
  bool replayed() const { return trailers.count("idempotent-replayed") > 0; }
  std::string error_name() const {
    auto it = trailers.find("baton-error");
    return it == trailers.end() ? "" : it->second;
  }
};

using Metadata = std::vector<std::pair<std::string, std::string>>;

class TypedGrpcTest : public ::testing::TestWithParam<Path> {
 protected:
  static constexpr int kMaxMessageBytes = 4096;

  // Wraps a handler so that its runs are counted.
  template <typename Fn>
  auto Counted(Fn fn) {
    return [this, fn](const auto& req, const RequestContext& ctx,
                      Transaction& txn) {
      ++runs_;
      return fn(req, ctx, txn);
    };
  }

  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           absl::StrCat("baton_typed_grpc_", ::getpid(), "_", counter_++);
    std::filesystem::remove_all(dir_);
    storage::RocksDbOptions so;
    so.path = dir_.string();
    so.sync = false;  // Durability is RocksDB's own tests' business.
    if (GetParam() == Path::kInline) {
      auto opened = storage::OpenRocksDbStore(so);
      ASSERT_TRUE(opened.ok()) << opened.status();
      store_ = *std::move(opened);
    } else {
      storage::MemoryStoreOptions mo;
      mo.async_commits = false;
      auto opened = storage::OpenMemoryStore(mo);
      ASSERT_TRUE(opened.ok()) << opened.status();
      store_ = *std::move(opened);
    }
    pipeline_ = std::make_unique<RequestPipeline>(*store_, RealClock());
    ASSERT_EQ(pipeline_->ExecutesInline(), GetParam() == Path::kInline);

    GrpcRouter router;
    ASSERT_TRUE(docs_example::AddCounterMethods(router).ok());
    ASSERT_TRUE((AddTypedMethod<Int64Value, Int64Value>(
                    router, "/test.v1.Bank/Withdraw", Counted(docs_example::Withdraw))
                    .ok()));
    // Writes, then fails with the code given in the request.
    ASSERT_TRUE((AddTypedMethod<Int64Value, Int64Value>(
                    router, "/test.v1.T/FailAfterWrite",
                    Counted([](const Int64Value& code, const RequestContext&,
                               Transaction& txn) -> absl::StatusOr<Int64Value> {
                      if (auto s = txn.Put("written", "x"); !s.ok()) return s;
                      return absl::Status(
                          static_cast<absl::StatusCode>(code.value()),
                          absl::StrCat("failed with ", code.value()));
                    }))
                    .ok()));
    ASSERT_TRUE((AddTypedMethod<StringValue, Int64Value>(
                    router, "/test.v1.T/Throw",
                    Counted([](const StringValue&, const RequestContext&,
                               Transaction& txn) -> absl::StatusOr<Int64Value> {
                      if (auto s = txn.Put("written", "x"); !s.ok()) return s;
                      throw std::runtime_error("boom");
                    }))
                    .ok()));
    ASSERT_TRUE((AddTypedMethod<StringValue, StringValue>(
                    router, "/test.v1.T/Whoami",
                    Counted([](const StringValue&, const RequestContext& ctx,
                               Transaction&) -> absl::StatusOr<StringValue> {
                      StringValue out;
                      const RequestId& id = ctx.id();
                      out.set_value(absl::StrCat(
                          ctx.method(), "|", static_cast<int>(id.kind), "|",
                          id.client_id, "/", id.seq, "/", id.idempotency_key,
                          "|", ctx.principal(), "|", ctx.local_address(), "|",
                          std::string(ctx.metadata("x-user")), "|",
                          std::string(ctx.metadata("absent"))));
                      return out;
                    }))
                    .ok()));
    // The same name twice is refused (the router's error).
    EXPECT_EQ(docs_example::AddCounterMethods(router).code(),
              absl::StatusCode::kAlreadyExists);

    GrpcServerOptions go;
    go.port = 0;
    go.worker_threads = 4;
    go.max_message_bytes = kMaxMessageBytes;
    go.authenticate = [](const Request& r) -> absl::StatusOr<std::string> {
      auto it = r.metadata.find("x-user");
      return it == r.metadata.end() ? std::string() : "user:" + it->second;
    };
    auto server = StartGrpcServer(go, std::move(router), *pipeline_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                   grpc::InsecureChannelCredentials());
  }

  void TearDown() override {
    if (server_) server_->Stop();
    pipeline_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  Answer Call(const std::string& method, const std::string& body,
              const Metadata& md = {}) {
    grpc::GenericStub stub(channel_);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    for (const auto& [k, v] : md) ctx.AddMetadata(k, v);
    grpc::Slice slice(body);
    grpc::ByteBuffer request(&slice, 1), response;
    std::promise<grpc::Status> done;
    stub.UnaryCall(&ctx, method, grpc::StubOptions(), &request, &response,
                   [&done](grpc::Status s) { done.set_value(std::move(s)); });
    Answer a;
    a.status = done.get_future().get();
    for (const auto& [k, v] : ctx.GetServerTrailingMetadata()) {
      a.trailers[std::string(k.data(), k.size())] = std::string(v.data(), v.size());
    }
    std::vector<grpc::Slice> slices;
    if (a.status.ok() && response.Dump(&slices).ok()) {
      for (const grpc::Slice& s : slices) {
        a.body.append(reinterpret_cast<const char*>(s.begin()), s.size());
      }
    }
    return a;
  }

  static std::string Name(const std::string& n) {
    StringValue m;
    m.set_value(n);
    return m.SerializeAsString();
  }
  static std::string Amount(int64_t n) {
    Int64Value m;
    m.set_value(n);
    return m.SerializeAsString();
  }
  static int64_t Value(const Answer& a) {
    Int64Value m;
    EXPECT_TRUE(m.ParseFromString(a.body));
    return m.value();
  }
  // The stored value of `key`, "" when absent.
  std::string Stored(const std::string& key) {
    auto v = store_->Get(key);
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() ? v->value : "";
  }
  bool Present(const std::string& key) {
    auto v = store_->Get(key);
    return v.ok() && v->present();
  }

  static inline int counter_ = 0;
  std::filesystem::path dir_;
  std::unique_ptr<storage::StableStore> store_;
  std::unique_ptr<RequestPipeline> pipeline_;
  std::unique_ptr<GrpcServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::atomic<int> runs_{0};
};

constexpr char kIncr[] = "/counter.v1.Counter/Incr";

TEST_P(TypedGrpcTest, RoundTripParsesTheRequestAndSerializesTheResponse) {
  Answer a = Call(kIncr, Name("visits"), {{"idempotency-key", "r1"}});
  ASSERT_TRUE(a.status.ok()) << a.status.error_message();
  EXPECT_EQ(Value(a), 1);
  EXPECT_FALSE(a.replayed());
  Answer b = Call(kIncr, Name("visits"), {{"idempotency-key", "r2"}});
  ASSERT_TRUE(b.status.ok()) << b.status.error_message();
  EXPECT_EQ(Value(b), 2);
  EXPECT_EQ(Stored("counter/visits"), "2");
  // The handler's own validation and use of the context.
  Answer c = Call(kIncr, Name("visits"));
  EXPECT_EQ(c.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(c.status.error_message(), "send an idempotency-key");
  EXPECT_EQ(c.error_name(), "failed_precondition");
  EXPECT_EQ(Stored("counter/visits"), "2");
}

TEST_P(TypedGrpcTest, RetriesGetByteIdenticalRepliesAndExecuteOnce) {
  Answer first = Call(kIncr, Name("n"), {{"idempotency-key", "once"}});
  ASSERT_TRUE(first.status.ok()) << first.status.error_message();
  const Metadata seq = {{"baton-client-id", "c1"}, {"baton-seq", "7"}};
  Answer s1 = Call(kIncr, Name("n"), seq);
  ASSERT_TRUE(s1.status.ok()) << s1.status.error_message();
  for (int i = 0; i < 3; ++i) {
    Answer again = Call(kIncr, Name("n"), {{"idempotency-key", "once"}});
    ASSERT_TRUE(again.status.ok()) << again.status.error_message();
    EXPECT_TRUE(again.replayed());
    EXPECT_EQ(again.body, first.body) << "a retry must get the same bytes";
    Answer s2 = Call(kIncr, Name("n"), seq);
    ASSERT_TRUE(s2.status.ok());
    EXPECT_TRUE(s2.replayed());
    EXPECT_EQ(s2.body, s1.body);
  }
  EXPECT_EQ(Value(first), 1);
  EXPECT_EQ(Value(s1), 2);
  EXPECT_EQ(Stored("counter/n"), "2") << "a retry was executed again";
}

TEST_P(TypedGrpcTest, GarbageRequestIsInvalidArgumentAndCommitsNothing) {
  for (const std::string& garbage :
       {std::string("\xff\xff\xff"), std::string("\x0a\x05" "ab"),
        std::string("\x0a\x80\x80\x80\x80\x10")}) {
    Answer a = Call(kIncr, garbage, {{"idempotency-key", "g"}});
    EXPECT_EQ(a.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(a.status.error_message().find("malformed google.protobuf.StringValue"),
              std::string::npos)
        << a.status.error_message();
    EXPECT_EQ(a.error_name(), "invalid_argument");
  }
  EXPECT_FALSE(Present("counter/"));
  // Nothing was recorded for the id: the same id with a well-formed request
  // executes (it is neither a replay nor "reused for another request").
  Answer ok = Call(kIncr, Name("g"), {{"idempotency-key", "g"}});
  ASSERT_TRUE(ok.status.ok()) << ok.status.error_message();
  EXPECT_FALSE(ok.replayed());
  EXPECT_EQ(Value(ok), 1);
}

TEST_P(TypedGrpcTest, MessageOverTheSizeLimitIsRefusedBeforeTheHandler) {
  Answer a = Call(kIncr, Name(std::string(kMaxMessageBytes + 1, 'x')),
                  {{"idempotency-key", "big"}});
  EXPECT_EQ(a.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  Answer b = Call("/test.v1.T/Throw", Name(std::string(kMaxMessageBytes, 'x')));
  EXPECT_EQ(b.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(runs_.load(), 0);
}

TEST_P(TypedGrpcTest, AReturnedStatusMapsItsCodeAndDiscardsTheWrites) {
  for (absl::StatusCode code :
       {absl::StatusCode::kInvalidArgument, absl::StatusCode::kNotFound,
        absl::StatusCode::kAlreadyExists, absl::StatusCode::kPermissionDenied,
        absl::StatusCode::kFailedPrecondition, absl::StatusCode::kAborted,
        absl::StatusCode::kOutOfRange, absl::StatusCode::kUnavailable,
        absl::StatusCode::kDataLoss}) {
    const std::string key = absl::StrCat("fail-", static_cast<int>(code));
    Answer a = Call("/test.v1.T/FailAfterWrite", Amount(static_cast<int>(code)),
                    {{"idempotency-key", key}});
    EXPECT_EQ(static_cast<int>(a.status.error_code()), static_cast<int>(code));
    EXPECT_EQ(a.status.error_message(),
              absl::StrCat("failed with ", static_cast<int>(code)));
    EXPECT_EQ(a.error_name(),
              absl::AsciiStrToLower(absl::StatusCodeToString(code)));
    // Not recorded: a retry runs the handler again.
    const int before = runs_.load();
    Answer retry = Call("/test.v1.T/FailAfterWrite",
                        Amount(static_cast<int>(code)), {{"idempotency-key", key}});
    EXPECT_FALSE(retry.replayed());
    EXPECT_EQ(runs_.load(), before + 1);
  }
  EXPECT_FALSE(Present("written")) << "a failed request's write was committed";
}

TEST_P(TypedGrpcTest, ATypedErrorIsCommittedWithItsWritesAndReplayedWithDetails) {
  ASSERT_TRUE(store_->Commit({}, {storage::Write::Put("balance", "30")}).ok());
  const Metadata id = {{"idempotency-key", "w1"}};
  Answer a = Call("/test.v1.Bank/Withdraw", Amount(50), id);
  EXPECT_EQ(a.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(a.status.error_message(), "insufficient funds");
  EXPECT_EQ(a.error_name(), "insufficient_funds");
  EXPECT_FALSE(a.replayed());
  absl::StatusOr<RpcStatus> details = ParseRpcStatus(a.status.error_details());
  ASSERT_TRUE(details.ok()) << details.status();
  EXPECT_EQ(details->code, absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(details->message, "insufficient funds");
  ASSERT_EQ(details->details.size(), 1u);
  Int64Value available;
  ASSERT_TRUE(details->details[0].UnpackTo(&available));
  EXPECT_EQ(available.value(), 30);
  EXPECT_EQ(Stored("refused/w1"), "1") << "the refusal's write was not committed";

  Answer b = Call("/test.v1.Bank/Withdraw", Amount(50), id);
  EXPECT_TRUE(b.replayed());
  EXPECT_EQ(b.status.error_code(), a.status.error_code());
  EXPECT_EQ(b.status.error_message(), a.status.error_message());
  EXPECT_EQ(b.status.error_details(), a.status.error_details());
  EXPECT_EQ(b.error_name(), "insufficient_funds");
  EXPECT_EQ(runs_.load(), 1) << "a replayed refusal ran the handler again";

  Answer c = Call("/test.v1.Bank/Withdraw", Amount(20), {{"idempotency-key", "w2"}});
  ASSERT_TRUE(c.status.ok()) << c.status.error_message();
  EXPECT_EQ(Value(c), 10);
  EXPECT_EQ(Stored("balance"), "10");
}

TEST_P(TypedGrpcTest, AThrowingHandlerIsInternalAndCommitsNothing) {
  const Metadata id = {{"idempotency-key", "t1"}};
  Answer a = Call("/test.v1.T/Throw", Name("x"), id);
  EXPECT_EQ(a.status.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_EQ(a.status.error_message(), "handler failed");
  EXPECT_EQ(a.error_name(), "internal");
  EXPECT_FALSE(Present("written"));
  // Nothing recorded: a retry runs it again (and fails again).
  Answer b = Call("/test.v1.T/Throw", Name("x"), id);
  EXPECT_EQ(b.status.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_FALSE(b.replayed());
  EXPECT_EQ(runs_.load(), 2);
  Answer c = Call("/test.v1.T/Throw", Name("x"));
  EXPECT_EQ(c.status.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_FALSE(Present("written"));
  // The server still serves.
  EXPECT_TRUE(Call(kIncr, Name("alive"), {{"idempotency-key", "a"}}).status.ok());
}

TEST_P(TypedGrpcTest, TheContextTellsMethodIdPrincipalAddressAndMetadata) {
  auto who = [&](const Metadata& md) {
    Answer a = Call("/test.v1.T/Whoami", Name(""), md);
    EXPECT_TRUE(a.status.ok()) << a.status.error_message();
    StringValue v;
    EXPECT_TRUE(v.ParseFromString(a.body));
    return v.value();
  };
  EXPECT_EQ(who({{"idempotency-key", "k9"}, {"x-user", "ann"}}),
            "/test.v1.T/Whoami|2|/0/k9|user:ann|127.0.0.1|ann|");
  EXPECT_EQ(who({{"baton-client-id", "c2"}, {"baton-seq", "5"}}),
            "/test.v1.T/Whoami|1|c2/5/||127.0.0.1||");
  EXPECT_EQ(who({}), "/test.v1.T/Whoami|0|/0/||127.0.0.1||");
}

INSTANTIATE_TEST_SUITE_P(BothPaths, TypedGrpcTest,
                         ::testing::Values(Path::kInline, Path::kWorkers),
                         PathName);

TEST(TypedGrpcDocsTest, TheServiceDefinitionFormRegistersTheMethod) {
  ServiceDefinition service("counter");
  docs_example::DefineCounterService(service);
  EXPECT_TRUE(service.status().ok()) << service.status();
  EXPECT_NE(service.grpc().Find("/counter.v1.Counter/Incr"), nullptr);
  docs_example::DefineCounterService(service);
  EXPECT_EQ(service.status().code(), absl::StatusCode::kAlreadyExists);
}

// The example in docs/framework.md is this file's, word for word.
TEST(TypedGrpcDocsTest, TheDocsExampleIsThisFilesCode) {
  EXPECT_TRUE(baton::testing::DocsShowMarkedCode(BATON_FRAMEWORK_DOCS,
                                                 BATON_TYPED_TEST_SOURCE, "typed-grpc"));
}

TEST(GrpcErrorReplyTest, RoundTripsAndRefusesWhatItDidNotMake) {
  GrpcError e{absl::StatusCode::kAborted, "too_late", std::string("a,b:\0c", 6),
              std::string("\x08\x0a", 2)};
  Reply r = GrpcErrorReply(e);
  EXPECT_EQ(r.code, absl::StatusCode::kAborted);
  std::optional<GrpcError> back = ParseGrpcErrorReply(r);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, e);
  // Names that cannot be metadata become the code's name; kOk is not an error.
  EXPECT_EQ(ParseGrpcErrorReply(GrpcErrorReply({absl::StatusCode::kNotFound,
                                                "Bad Name\n", "m", ""}))
                ->name,
            "not_found");
  EXPECT_EQ(GrpcErrorReply({absl::StatusCode::kOk, "", "m", ""}).code,
            absl::StatusCode::kUnknown);
  // Other replies, and damaged bodies, are not named errors.
  EXPECT_FALSE(
      ParseGrpcErrorReply(Reply::Text(absl::StatusCode::kAborted, "x")).has_value());
  for (const std::string& body :
       {std::string(""), std::string("3:abc,"), std::string("3:abc,1:m,0:,x"),
        std::string("9:abc,1:m,0:,"), std::string("99999999999:a,"),
        std::string("3:ab,,1:m,0:,"), std::string("-1:a,1:m,0:,")}) {
    Reply bad = r;
    bad.body = body;
    EXPECT_FALSE(ParseGrpcErrorReply(bad).has_value()) << body;
  }
}

TEST(RpcStatusTest, RoundTripsAndRefusesGarbage) {
  RpcStatus s;
  s.code = absl::StatusCode::kResourceExhausted;
  s.message = "slow down";
  Int64Value v;
  v.set_value(-3);
  s.details.emplace_back().PackFrom(v);
  absl::StatusOr<RpcStatus> back = ParseRpcStatus(SerializeRpcStatus(s));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->code, s.code);
  EXPECT_EQ(back->message, s.message);
  ASSERT_EQ(back->details.size(), 1u);
  Int64Value got;
  ASSERT_TRUE(back->details[0].UnpackTo(&got));
  EXPECT_EQ(got.value(), -3);
  EXPECT_TRUE(ParseRpcStatus("").ok());
  EXPECT_FALSE(ParseRpcStatus("\xff\xff\xff").ok());
  EXPECT_FALSE(ParseRpcStatus("\x12\x05" "ab").ok());
}

}  // namespace
}  // namespace baton::framework
