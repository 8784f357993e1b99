// framework/request_builder.h: the one place that turns what a front end
// received into a Request and a RequestId must answer exactly as the front
// ends do. Checked differentially: every case goes to a real HTTP server
// (framework/http_server.h, over a socket) and through BuildHttpRequest plus
// a second pipeline, and the two must agree on the status, the error code
// and message, the Allow header, the Request the handler saw, the replay
// flag and the completion record written (whose key spells the id). The gRPC
// form is compared with the gRPC front end's RequestIdFromMetadata.
#include "framework/request_builder.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "boost/asio.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "framework/clock.h"
#include "framework/http_server.h"
#include "framework/pipeline.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "storage/memory/memory_store.h"
#if BATON_TEST_GRPC
#include "framework/grpc/grpc_server.h"
#endif

namespace baton::framework {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

// Echoes what it was given (and writes, so keyed requests leave a record).
absl::StatusOr<Reply> Echo(const Request& r, Transaction& txn) {
  if (absl::Status s = txn.Put("last", r.body); !s.ok()) return s;
  nlohmann::json j = {{"operation", r.operation}, {"path", r.path},
                      {"params", r.params},       {"body", r.body},
                      {"metadata", r.metadata},   {"local", r.local_address},
                      {"principal", r.principal}};
  return Reply::Json(absl::StatusCode::kOk, j.dump());
}

// Anonymous without credentials; "Bearer <name>" is <name>; "deny" -> 403;
// anything else -> 401.
absl::StatusOr<std::string> Authenticate(const Request& r) {
  auto it = r.metadata.find("authorization");
  if (it == r.metadata.end()) return std::string();
  if (it->second == "deny") return absl::PermissionDeniedError("not yours");
  if (it->second.rfind("Bearer ", 0) == 0) return it->second.substr(7);
  return absl::UnauthenticatedError("bad credentials");
}

Router MakeRouter() {
  Router router;
  EXPECT_TRUE(router.Add("GET", "/echo", MakeHandler(Echo)).ok());
  EXPECT_TRUE(router.Add("POST", "/items/{id}/sub", MakeHandler(Echo)).ok());
  EXPECT_TRUE(router.Add("PUT", "/items/{id}/sub", MakeHandler(Echo)).ok());
  return router;
}

// What a client sees of one answer.
struct Seen {
  int status = 0;
  std::string code;     // Errors: the JSON body's error code.
  std::string message;  // Errors: its message.
  std::string body;     // Replies: the body.
  std::string allow;
  std::string www_authenticate;
  bool replayed = false;

  friend bool operator==(const Seen&, const Seen&) = default;
};

void PrintTo(const Seen& s, std::ostream* os) {
  *os << s.status << " code=" << s.code << " message=" << s.message
      << " allow=" << s.allow << " www-authenticate=" << s.www_authenticate
      << " replayed=" << s.replayed << " body=" << s.body;
}

struct Case {
  std::string method;
  std::string target;
  Headers headers;
  std::string body;
};

class RequestBuilderHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_store_ = *storage::OpenMemoryStore();
    kit_store_ = *storage::OpenMemoryStore();
    server_pipeline_ = std::make_unique<RequestPipeline>(*server_store_, clock_);
    kit_pipeline_ = std::make_unique<RequestPipeline>(*kit_store_, clock_);
    HttpServerOptions options;
    options.port = 0;
    options.authenticate = Authenticate;
    auto server = StartHttpServer(options, MakeRouter(), *server_pipeline_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    router_ = MakeRouter();
  }

  // Over a socket, to the real front end.
  Seen ThroughServer(const Case& c) {
    namespace net = boost::asio;
    namespace http = boost::beast::http;
    net::io_context ioc;
    net::ip::tcp::socket socket(ioc);
    socket.connect({net::ip::make_address("127.0.0.1"), server_->port()});
    std::string raw = absl::StrCat(c.method, " ", c.target, " HTTP/1.1\r\n");
    for (const auto& [name, value] : WireHeaders(c)) {
      absl::StrAppend(&raw, name, ": ", value, "\r\n");
    }
    absl::StrAppend(&raw, "\r\n", c.body);
    net::write(socket, net::buffer(raw));
    boost::beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(socket, buffer, res);
    Seen seen;
    seen.status = static_cast<int>(res.result_int());
    seen.allow = std::string(res[http::field::allow]);
    seen.www_authenticate = std::string(res[http::field::www_authenticate]);
    seen.replayed = res["Idempotent-Replayed"] == "true";
    if (seen.status == 200) {
      seen.body = res.body();
    } else {
      nlohmann::json j = nlohmann::json::parse(res.body());
      seen.code = j["error"]["code"];
      seen.message = j["error"]["message"];
    }
    return seen;
  }

  // Through BuildHttpRequest and a pipeline, as the test kit runs requests.
  Seen ThroughBuilder(const Case& c) {
    Headers wire = WireHeaders(c);
    std::vector<HttpHeader> headers;
    for (const auto& [name, value] : wire) headers.push_back({name, value});
    const HttpAuthenticator authenticate = Authenticate;
    auto built = BuildHttpRequest(
        router_, {c.method, c.target, headers, c.body, "127.0.0.1", "", &authenticate});
    Seen seen;
    if (auto* e = std::get_if<HttpRequestError>(&built)) {
      seen.status = e->status;
      seen.code = e->code;
      seen.message = e->message;
      for (const auto& [name, value] : e->headers) {
        if (name == "Allow") seen.allow = value;
        if (name == "WWW-Authenticate") seen.www_authenticate = value;
      }
      return seen;
    }
    RoutedRequest& r = std::get<RoutedRequest>(built);
    absl::StatusOr<PipelineResult> result =
        kit_pipeline_->Execute(r.id, r.request, *r.handler);
    if (!result.ok()) {
      errors_.push_back(result.status());
      seen.status = HttpStatusForError(result.status());
      seen.code = ErrorName(result.status());
      seen.message = std::string(result.status().message());
      return seen;
    }
    seen.status = HttpStatusForCode(result->reply.code);
    seen.body = result->reply.body;
    seen.replayed = result->replayed;
    return seen;
  }

  // The headers as the server receives them (Beast strips blanks around
  // values).
  static Headers WireHeaders(const Case& c) {
    Headers h = {{"Host", "test"},
                 {"Content-Length", std::to_string(c.body.size())}};
    for (const auto& [name, value] : c.headers) {
      h.emplace_back(name, std::string(absl::StripAsciiWhitespace(value)));
    }
    return h;
  }

  static std::vector<std::string> FrameworkKeys(storage::StableStore& store) {
    std::vector<std::string> keys;
    auto all = store.Scan({.prefix = std::string(storage::kReservedPrefix),
                           .start_after = "",
                           .limit = 10000});
    EXPECT_TRUE(all.ok());
    for (const storage::KeyValue& kv : *all) keys.push_back(kv.key);
    return keys;
  }

  SimulatedClock clock_;
  std::unique_ptr<storage::MemoryStore> server_store_, kit_store_;
  std::unique_ptr<RequestPipeline> server_pipeline_, kit_pipeline_;
  std::unique_ptr<HttpServer> server_;
  Router router_;
  std::vector<absl::Status> errors_;  // What the kit's pipeline refused.
};

TEST_F(RequestBuilderHttpTest, AnswersExactlyAsTheHttpFrontEnd) {
  const std::vector<Case> cases = {
      {"GET", "/echo", {}, ""},
      {"POST", "/items/a%20b/sub?x=1", {{"Idempotency-Key", "\"k1\""}}, "one"},
      // The same key again: a replay; with another body: 422.
      {"POST", "/items/a%20b/sub?x=1", {{"Idempotency-Key", "\"k1\""}}, "one"},
      {"POST", "/items/a%20b/sub?x=1", {{"Idempotency-Key", "\"k1\""}}, "two"},
      {"PUT", "/items/x/sub", {{"Idempotency-Key", "bare-token_1"}}, "b"},
      {"PUT", "/items/x/sub", {{"idempotency-key", "\"Lower \\\"q\\\"\";p=1"}}, "c"},
      {"PUT", "/items/x/sub", {{"Idempotency-Key", "\"bad\\q\""}}, ""},
      {"PUT", "/items/x/sub", {{"Idempotency-Key", "two words"}}, ""},
      {"PUT", "/items/x/sub", {{"Idempotency-Key", "\"\""}}, ""},
      {"PUT", "/items/x/sub", {{"Idempotency-Key", std::string(256, 'k')}}, ""},
      {"PUT", "/items/x/sub", {{"Idempotency-Key", "k"}, {"Baton-Client-Id", "c"}}, ""},
      {"PUT", "/items/x/sub", {{"Idempotency-Key", "k"}, {"Baton-Seq", "1"}}, ""},
      // The ack is ignored next to a key (HTTP form only).
      {"PUT", "/items/x/sub", {{"Idempotency-Key", "k2"}, {"Baton-Ack", "1"}}, "d"},
      {"POST", "/items/y/sub",
       {{"Baton-Client-Id", "c1"}, {"Baton-Seq", "5"}, {"Baton-Ack", "3"}}, "e"},
      {"POST", "/items/y/sub", {{"Baton-Client-Id", "c1"}, {"Baton-Seq", "+7"}}, "f"},
      {"POST", "/items/y/sub", {{"Baton-Client-Id", "c1"}, {"Baton-Seq", "7"}}, "f"},
      {"POST", "/items/y/sub", {{"Baton-Client-Id", "c1"}, {"Baton-Seq", "2"}}, "g"},
      {"POST", "/items/y/sub", {{"Baton-Seq", "5"}}, ""},
      {"POST", "/items/y/sub", {{"Baton-Client-Id", "c1"}}, ""},
      {"POST", "/items/y/sub", {{"Baton-Ack", "5"}}, ""},
      {"POST", "/items/y/sub", {{"Baton-Client-Id", "c1"}, {"Baton-Seq", "abc"}}, ""},
      {"POST", "/items/y/sub",
       {{"Baton-Client-Id", "c1"}, {"Baton-Seq", "99999999999999999999999"}}, ""},
      {"POST", "/items/y/sub",
       {{"Baton-Client-Id", "c1"}, {"Baton-Seq", "8"}, {"Baton-Ack", "-1"}}, ""},
      // Refused by the pipeline (client ids have no spaces): same answer.
      {"POST", "/items/y/sub", {{"Baton-Client-Id", "c 1"}, {"Baton-Seq", "9"}}, ""},
      // Repeated headers: the first one identifies, metadata joins them.
      {"POST", "/items/y/sub",
       {{"Idempotency-Key", "first"}, {"X-Tag", "a"}, {"idempotency-key", "second"},
        {"x-tag", "b"}}, "h"},
      // Authentication: a principal, or refused after routing and the id.
      {"PUT", "/items/x/sub", {{"Authorization", "Bearer alice"}, {"Idempotency-Key", "a1"}}, "i"},
      {"PUT", "/items/x/sub", {{"Authorization", "deny"}}, ""},
      {"PUT", "/items/x/sub", {{"Authorization", "junk"}}, ""},
      {"PUT", "/items/x/sub", {{"Authorization", "junk"}, {"Baton-Seq", "x"}}, ""},
      {"GET", "/nope", {{"Baton-Seq", "bad"}}, ""},
      {"DELETE", "/items/z/sub", {}, ""},
      {"GET", "/items/%zz/sub", {}, ""},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    SCOPED_TRACE(absl::StrCat("case ", i, ": ", c.method, " ", c.target));
    Seen server = ThroughServer(c);
    Seen kit = ThroughBuilder(c);
    EXPECT_EQ(kit, server);
    EXPECT_EQ(FrameworkKeys(*kit_store_), FrameworkKeys(*server_store_))
        << "the same completion records (their keys spell the ids)";
  }
  // Not vacuous: replays, pipeline errors and records happened.
  EXPECT_GE(server_pipeline_->Stats().replayed, 2u);
  EXPECT_GE(FrameworkKeys(*server_store_).size(), 10u);
  ASSERT_GE(errors_.size(), 2u);
#if BATON_TEST_GRPC
  // The gRPC front end names them as the HTTP front end does.
  for (const absl::Status& s : errors_) EXPECT_EQ(ErrorName(s), GrpcErrorName(s)) << s;
#endif
}

TEST(RequestBuilderTest, RequestCarriesRouteParamsAndMetadata) {
  Router router = MakeRouter();
  std::vector<HttpHeader> headers = {{"X-A", "1"}, {"x-a", "2"}, {"Baton-Client-Id", " c9 "},
                                     {"Baton-Seq", "4"}};
  auto built = BuildHttpRequest(router, {"POST", "/items/a%2Fb/sub?q", headers,
                                         "body", "10.0.0.1", "CN=tls-client", nullptr});
  ASSERT_TRUE(std::holds_alternative<RoutedRequest>(built));
  const RoutedRequest& r = std::get<RoutedRequest>(built);
  EXPECT_NE(r.handler, nullptr);
  EXPECT_EQ(r.request.operation, "POST /items/{id}/sub");
  EXPECT_EQ(r.request.path, "/items/a%2Fb/sub?q");
  EXPECT_EQ(r.request.Param("id"), "a/b");
  EXPECT_EQ(r.request.body, "body");
  EXPECT_EQ(r.request.local_address, "10.0.0.1");
  EXPECT_EQ(r.request.principal, "CN=tls-client");
  EXPECT_EQ(r.request.metadata.at("x-a"), "1,2");
  EXPECT_EQ(r.id.kind, RequestId::Kind::kClientSeq);
  EXPECT_EQ(r.id.client_id, "c9");
  EXPECT_EQ(r.id.seq, 4u);
  EXPECT_FALSE(r.id.acked.has_value());
}

TEST(RequestBuilderTest, ErrorNamesAndStatuses) {
  EXPECT_EQ(ErrorName(absl::UnavailableError("x")), "unavailable");
  EXPECT_EQ(HttpStatusForError(absl::UnavailableError("x")), 503);
  EXPECT_EQ(ErrorName(absl::AbortedError("x")), "aborted");
  EXPECT_EQ(HttpStatusForError(absl::AbortedError("x")), 409);
  EXPECT_EQ(ErrorName(absl::InvalidArgumentError("x")), "invalid_argument");
}

#if BATON_TEST_GRPC
using Metadata = std::map<std::string, std::string, std::less<>>;

void ExpectSameAsGrpcFrontEnd(const Metadata& md) {
  absl::StatusOr<RequestId> kit = RequestIdFromGrpcMetadata(md);
  absl::StatusOr<RequestId> front = RequestIdFromMetadata(md);
  ASSERT_EQ(kit.ok(), front.ok()) << kit.status() << " vs " << front.status();
  if (!kit.ok()) {
    EXPECT_EQ(kit.status(), front.status());
    return;
  }
  EXPECT_EQ(kit->kind, front->kind);
  EXPECT_EQ(kit->client_id, front->client_id);
  EXPECT_EQ(kit->seq, front->seq);
  EXPECT_EQ(kit->idempotency_key, front->idempotency_key);
  EXPECT_EQ(kit->acked, front->acked);
}

TEST(RequestBuilderTest, GrpcFormAnswersExactlyAsTheGrpcFrontEnd) {
  const std::string long_value(256, 'v');
  const std::vector<Metadata> cases = {
      {},
      {{"x-other", "1"}},
      {{"idempotency-key", "k"}},
      {{"idempotency-key", "\"quoted stays quoted\""}},
      {{"idempotency-key", ""}},
      {{"idempotency-key", long_value}},
      {{"idempotency-key", "k"}, {"baton-ack", "1"}},
      {{"idempotency-key", "k"}, {"baton-client-id", "c"}},
      {{"baton-client-id", "c"}, {"baton-seq", "1"}},
      {{"baton-client-id", " c "}, {"baton-seq", "1"}, {"baton-ack", "0"}},
      {{"baton-client-id", "c"}, {"baton-seq", "+1"}},
      {{"baton-client-id", "c"}, {"baton-seq", " 1"}},
      {{"baton-client-id", "c"}, {"baton-seq", "18446744073709551615"}},
      {{"baton-client-id", "c"}, {"baton-seq", "18446744073709551616"}},
      {{"baton-client-id", "c"}, {"baton-seq", "1"}, {"baton-ack", "x"}},
      {{"baton-client-id", "c"}, {"baton-seq", long_value}},
      {{"baton-client-id", "c"}},
      {{"baton-seq", "1"}},
      {{"baton-ack", "1"}},
      {{"baton-client-id", "c"}, {"baton-seq", "1,2"}},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(absl::StrCat("case ", i));
    ExpectSameAsGrpcFrontEnd(cases[i]);
  }
}
#endif

}  // namespace
}  // namespace baton::framework
