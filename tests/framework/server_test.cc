// The server entry point (framework/server.h) in-process: the operator plane
// lives on its own listener (never on the service port), with a token, a
// private unix socket and browser requests refused; definition and config
// mistakes are kInvalidArgument; TLS and mTLS on both front ends with the
// client certificate's subject as the principal; the authentication hook;
// TLS files re-read on ReloadCredentials (SIGHUP).
#include "framework/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <stdexcept>
#include <string>
#include <utility>  // Before Asio: Boost 1.74 uses std::exchange without it.

#include "absl/strings/str_cat.h"
#include "boost/asio.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/framework/client_tls_certs.h"

namespace baton::framework {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;

struct Answer {
  int status = 0;
  std::string body;
};

// One HTTP/1.1 request over TCP ("host:port") or a unix socket ("unix:/p").
Answer Call(const std::string& address, const std::string& method,
            const std::string& target,
            std::vector<std::pair<std::string, std::string>> headers = {},
            const std::string& body = "") {
  net::io_context ioc;
  http::request<http::string_body> req(http::string_to_verb(method), target, 11);
  req.set(http::field::host, "127.0.0.1");
  for (auto& [k, v] : headers) req.set(k, v);
  req.body() = body;
  req.prepare_payload();
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  beast::error_code ec;
  if (address.rfind("unix:", 0) == 0) {
    net::local::stream_protocol::socket s(ioc);
    s.connect(net::local::stream_protocol::endpoint(address.substr(5)), ec);
    if (ec) return {};
    http::write(s, req, ec);
    http::read(s, buf, res, ec);
  } else {
    const size_t colon = address.rfind(':');
    net::ip::tcp::socket s(ioc);
    s.connect({net::ip::make_address(address.substr(0, colon)),
               static_cast<uint16_t>(std::stoi(address.substr(colon + 1)))},
              ec);
    if (ec) return {};
    http::write(s, req, ec);
    http::read(s, buf, res, ec);
  }
  if (ec) return {};
  return {static_cast<int>(res.result_int()), res.body()};
}

// Answers {"principal": ...} and counts in the store.
ServiceDefinition EchoService() {
  ServiceDefinition s("echo");
  s.Route("POST", "/n",
          [](const Request& r, Transaction& txn) -> absl::StatusOr<Reply> {
            auto v = txn.Get("n");
            if (!v.ok()) return v.status();
            const int n = v->present() ? std::stoi(v->value) + 1 : 1;
            if (auto st = txn.Put("n", std::to_string(n)); !st.ok()) return st;
            return Reply::Json(absl::StatusCode::kOk,
                               absl::StrCat("{\"n\":", n, ",\"principal\":\"",
                                            r.principal, "\"}"));
          });
  s.Method("/echo.v1.Echo/Who",
           MakeHandler([](const Request& r, Transaction&) -> absl::StatusOr<Reply> {
             return Reply{absl::StatusCode::kOk, r.principal, "application/grpc"};
           }));
  return s;
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           absl::StrCat("baton-server-test-", ::getpid(), "-",
                        ::testing::UnitTest::GetInstance()
                            ->current_test_info()
                            ->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  ServerConfig Config() {
    ServerConfig c = DefaultServerConfig("echo");
    c.http.port = 0;
    c.store.data_dir = (dir_ / "data").string();
    c.store.sync = false;
    c.admin.listen = "127.0.0.1:0";
    return c;
  }
  std::string WriteToken(const std::string& token, mode_t mode) {
    const std::string path = (dir_ / "token").string();
    std::ofstream(path) << token << "\n";
    ::chmod(path.c_str(), mode);
    return path;
  }

  std::filesystem::path dir_;
};

TEST_F(ServerTest, DefinitionMistakesAreInvalidArgumentNamingTheRoute) {
  ServiceDefinition dup = EchoService();
  dup.Route("POST", "/n", [](const Request&, Transaction&) -> absl::StatusOr<Reply> {
    return Reply::Json(absl::StatusCode::kOk, "{}");
  });
  auto s = Server::Start(Config(), std::move(dup));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("POST /n"), std::string::npos)
      << s.status();
  auto bad = Server::Start(Config(), ServiceDefinition("Bad Name"));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  ServiceDefinition method("m");
  method.Method("nope", MakeHandler([](const Request&, Transaction&) {
                  return absl::StatusOr<Reply>(Reply{});
                }));
  EXPECT_EQ(Server::Start(Config(), std::move(method)).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Nothing was written: the store directory was never created.
  EXPECT_FALSE(std::filesystem::exists(dir_ / "data"));
}

TEST_F(ServerTest, PortInUseIsUnavailableAndStopsEverything) {
  auto first = Server::Start(Config(), EchoService());
  ASSERT_TRUE(first.ok()) << first.status();
  ServerConfig c = Config();
  c.store.data_dir = (dir_ / "data2").string();
  c.http.port = static_cast<uint16_t>(
      std::stoi((*first)->http_address().substr(10)));
  auto second = Server::Start(c, EchoService());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable)
      << second.status();
}

// Issue 13: POST /baton/drain on the service port drained the service, from
// any client. The operator plane now has a listener of its own.
TEST_F(ServerTest, OperatorPlaneIsNeverOnTheServicePort) {
  auto server = Server::Start(Config(), EchoService());
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string svc = (*server)->http_address();
  const std::string admin = (*server)->admin_address();
  ASSERT_FALSE(admin.empty());
  for (auto [method, target] :
       std::vector<std::pair<std::string, std::string>>{
           {"POST", "/baton/drain"}, {"POST", "/baton/drain?undo=1"},
           {"GET", "/baton/status"}, {"GET", "/baton/stats"},
           {"GET", "/metrics"}, {"GET", "/healthz"}}) {
    EXPECT_EQ(Call(svc, method, target).status, 404) << method << " " << target;
  }
  EXPECT_EQ(Call(svc, "POST", "/n").status, 200);
  Answer status = Call(admin, "GET", "/baton/status");
  EXPECT_EQ(status.status, 200);
  EXPECT_NE(status.body.find("\"service\":\"echo\""), std::string::npos)
      << status.body;
  EXPECT_EQ(Call(admin, "GET", "/healthz").status, 200);
  EXPECT_EQ(Call(admin, "GET", "/readyz").status, 200);
  EXPECT_TRUE((*server)->Ready());
  // No agent: nothing to drain, said plainly.
  Answer drain = Call(admin, "POST", "/baton/drain");
  EXPECT_EQ(drain.status, 404);
  EXPECT_NE(drain.body.find("no_agent"), std::string::npos);
  Answer metrics = Call(admin, "GET", "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("baton_requests_total{code=\"ok\",front_end="
                              "\"http\",operation=\"POST /n\"} 1"),
            std::string::npos)
      << metrics.body;
  EXPECT_NE(metrics.body.find("baton_pipeline_read_only_total"),
            std::string::npos);
  EXPECT_NE(metrics.body.find("baton_store_commits_total"), std::string::npos);
  EXPECT_NE(metrics.body.find("baton_connections_open{front_end=\"http\"}"),
            std::string::npos);
  EXPECT_NE(metrics.body.find("baton_request_duration_seconds_bucket"),
            std::string::npos);
}

TEST_F(ServerTest, BrowserRequestsToTheOperatorPlaneAreRefused) {
  auto server = Server::Start(Config(), EchoService());
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string admin = (*server)->admin_address();
  EXPECT_EQ(Call(admin, "POST", "/baton/drain",
                 {{"Origin", "http://evil.example"}})
                .status,
            403);
  EXPECT_EQ(Call(admin, "GET", "/baton/status", {{"Host", "evil.example"}}).status,
            403);
  EXPECT_EQ(Call(admin, "GET", "/baton/status", {{"Host", "localhost:1"}}).status,
            200);
}

TEST_F(ServerTest, AdminTokenGuardsAllButHealth) {
  ServerConfig c = Config();
  c.admin.token_file = WriteToken("s3cret-token-0123456789", 0600);
  auto server = Server::Start(c, EchoService());
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string admin = (*server)->admin_address();
  EXPECT_EQ(Call(admin, "GET", "/baton/status").status, 401);
  EXPECT_EQ(Call(admin, "GET", "/metrics",
                 {{"Authorization", "Bearer wrong-token-0123456789"}})
                .status,
            401);
  EXPECT_EQ(Call(admin, "GET", "/metrics",
                 {{"Authorization", "Bearer s3cret-token-0123456789"}})
                .status,
            200);
  EXPECT_EQ(Call(admin, "GET", "/healthz").status, 200);
  EXPECT_EQ(Call(admin, "GET", "/readyz").status, 200);
}

TEST_F(ServerTest, AdminConfigMistakesAreRefused) {
  ServerConfig c = Config();
  c.admin.token_file = WriteToken("s3cret-token-0123456789", 0644);
  auto open = Server::Start(c, EchoService());
  ASSERT_FALSE(open.ok());
  EXPECT_NE(open.status().message().find("readable by group or others"),
            std::string::npos)
      << open.status();
  ServerConfig wide = Config();
  wide.admin.listen = "0.0.0.0:0";
  auto no_token = Server::Start(wide, EchoService());
  ASSERT_FALSE(no_token.ok());
  EXPECT_NE(no_token.status().message().find("token_file"), std::string::npos)
      << no_token.status();
  ServerConfig short_token = Config();
  short_token.admin.token_file = WriteToken("short", 0600);
  EXPECT_FALSE(Server::Start(short_token, EchoService()).ok());
}

TEST_F(ServerTest, AdminUnixSocketIsPrivateFromTheStart) {
  const std::string path = (dir_ / "admin.sock").string();
  // A stale socket file left by a dead server is replaced.
  {
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ::close(fd);
  }
  ServerConfig c = Config();
  c.admin.listen = "unix:" + path;
  auto server = Server::Start(c, EchoService());
  ASSERT_TRUE(server.ok()) << server.status();
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600);
  // No temporary directory is left beside it.
  int entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir_)) {
    entries += e.path().filename().string().rfind(".btk", 0) == 0;
  }
  EXPECT_EQ(entries, 0);
  EXPECT_EQ(Call("unix:" + path, "GET", "/baton/status").status, 200);
  // A live server's socket is not taken over.
  ServerConfig c2 = Config();
  c2.store.data_dir = (dir_ / "data2").string();
  c2.admin.listen = "unix:" + path;
  auto second = Server::Start(c2, EchoService());
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("in use"), std::string::npos)
      << second.status();
  EXPECT_EQ(Call("unix:" + path, "GET", "/healthz").status, 200);
  (*server)->Shutdown();
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST_F(ServerTest, AuthenticationHookSetsThePrincipalOrRefuses) {
  ServiceDefinition s = EchoService();
  s.Authenticate([](const Request& r) -> absl::StatusOr<std::string> {
    auto it = r.metadata.find("authorization");
    if (it == r.metadata.end()) return absl::UnauthenticatedError("no token");
    if (it->second == "Bearer banned") {
      return absl::PermissionDeniedError("banned");
    }
    return "user:" + it->second.substr(7);
  });
  auto server = Server::Start(Config(), std::move(s));
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string svc = (*server)->http_address();
  EXPECT_EQ(Call(svc, "POST", "/n").status, 401);
  EXPECT_EQ(Call(svc, "POST", "/n", {{"Authorization", "Bearer banned"}}).status,
            403);
  Answer ok = Call(svc, "POST", "/n", {{"Authorization", "Bearer alice"}});
  EXPECT_EQ(ok.status, 200);
  EXPECT_NE(ok.body.find("\"principal\":\"user:alice\""), std::string::npos)
      << ok.body;
}

// Issue 13: ids are scoped by principal. The same Idempotency-Key from two
// principals is two requests: neither sees the other's stored reply. Under
// one principal the key still dedups.
TEST_F(ServerTest, OnePrincipalNeverGetsAnothersStoredReply) {
  ServiceDefinition s = EchoService();
  s.Authenticate([](const Request& r) -> absl::StatusOr<std::string> {
    auto it = r.metadata.find("authorization");
    if (it == r.metadata.end()) return absl::UnauthenticatedError("no token");
    return "user:" + it->second.substr(7);
  });
  auto server = Server::Start(Config(), std::move(s));
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string svc = (*server)->http_address();
  auto call = [&](const std::string& who) {
    return Call(svc, "POST", "/n",
                {{"Authorization", "Bearer " + who},
                 {"Idempotency-Key", "\"shared-key\""}});
  };
  Answer alice = call("alice");
  Answer bob = call("bob");
  Answer alice_again = call("alice");
  ASSERT_EQ(alice.status, 200);
  ASSERT_EQ(bob.status, 200);
  EXPECT_NE(alice.body.find("\"n\":1,\"principal\":\"user:alice\""),
            std::string::npos)
      << alice.body;
  // Bob's request ran (n is 2 now) and answered as bob, not alice's replay.
  EXPECT_NE(bob.body.find("\"n\":2,\"principal\":\"user:bob\""),
            std::string::npos)
      << bob.body;
  EXPECT_EQ(alice_again.body, alice.body);  // Alice's retry: her own reply.
}

// Issue 12: a handler that throws gets one clear 500 and commits nothing, on
// the event-loop path (RocksDB commits asynchronously) and on the workers.
TEST_F(ServerTest, AThrowingHandlerIsA500AndCommitsNothingOnBothPaths) {
  for (auto threads : {HttpServerOptions::HandlerThreads::kAuto,
                       HttpServerOptions::HandlerThreads::kWorkers}) {
    ServiceDefinition s("boom");
    s.Route("POST", "/boom",
            [](const Request&, Transaction& txn) -> absl::StatusOr<Reply> {
              if (auto st = txn.Put("written", "1"); !st.ok()) return st;
              throw std::runtime_error("a handler bug");
            });
    s.Route("GET", "/written",
            [](const Request&, Transaction& txn) -> absl::StatusOr<Reply> {
              auto v = txn.Get("written");
              if (!v.ok()) return v.status();
              return Reply::Json(absl::StatusCode::kOk,
                                 v->present() ? "true" : "false");
            });
    ServerConfig c = Config();
    c.store.data_dir = (dir_ / (threads == HttpServerOptions::HandlerThreads::kAuto
                                    ? "auto"
                                    : "workers"))
                           .string();
    c.http.handler_threads = threads;
    auto server = Server::Start(c, std::move(s));
    ASSERT_TRUE(server.ok()) << server.status();
    const std::string svc = (*server)->http_address();
    Answer a = Call(svc, "POST", "/boom", {{"Idempotency-Key", "\"b1\""}});
    EXPECT_EQ(a.status, 500);
    EXPECT_NE(a.body.find("handler failed"), std::string::npos) << a.body;
    EXPECT_EQ(Call(svc, "GET", "/written").body, "false");
    // The retry runs it again (nothing was recorded) and fails the same way.
    EXPECT_EQ(Call(svc, "POST", "/boom", {{"Idempotency-Key", "\"b1\""}}).status,
              500);
  }
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// gRPC over TLS with client certificates: the certificate's subject is the
// call's principal; a client without one is refused.
TEST_F(ServerTest, GrpcMutualTlsNamesThePrincipal) {
  baton::testing::TestCertificates certs;
  ServerConfig c = Config();
  c.http_enabled = false;
  c.grpc_enabled = true;
  c.grpc.port = 0;
  c.grpc.tls.cert_file = certs.server_cert();
  c.grpc.tls.key_file = certs.server_key();
  c.grpc.tls.client_ca_file = certs.ca();
  auto server = Server::Start(c, EchoService());
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string target =
      "localhost:" + (*server)->grpc_address().substr(10);
  auto call = [&](bool with_cert, std::string* principal) {
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = ReadFile(certs.ca());
    if (with_cert) {
      o.pem_private_key = ReadFile(certs.client_key());
      o.pem_cert_chain = ReadFile(certs.client_cert());
    }
    auto channel = grpc::CreateChannel(target, grpc::SslCredentials(o));
    grpc::GenericStub stub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    grpc::Slice slice(std::string("x"));
    grpc::ByteBuffer req(&slice, 1), res;
    std::promise<grpc::Status> done;
    stub.UnaryCall(&ctx, "/echo.v1.Echo/Who", grpc::StubOptions(), &req, &res,
                   [&](grpc::Status s) { done.set_value(s); });
    grpc::Status s = done.get_future().get();
    std::vector<grpc::Slice> slices;
    if (s.ok() && res.Dump(&slices).ok()) {
      for (auto& sl : slices) {
        principal->append(reinterpret_cast<const char*>(sl.begin()), sl.size());
      }
    }
    return s;
  };
  std::string who;
  grpc::Status s = call(true, &who);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(who, "CN=client-1");
  std::string none;
  EXPECT_FALSE(call(false, &none).ok());
}

// The subject of the certificate a TLS server presents at `port`.
std::string PresentedSubject(uint16_t port, const std::string& ca) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_load_verify_locations(ctx, ca.c_str(), nullptr);
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string subject;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    SSL* ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) == 1) {
      X509* cert = SSL_get1_peer_certificate(ssl);
      char buf[256] = {};
      X509_NAME_oneline(X509_get_subject_name(cert), buf, sizeof buf - 1);
      subject = buf;
      X509_free(cert);
    }
    SSL_free(ssl);
  }
  ::close(fd);
  SSL_CTX_free(ctx);
  return subject;
}

// SIGHUP's work: new certificate files are used for new connections; a
// broken file keeps the old certificate and says why.
TEST_F(ServerTest, ReloadCredentialsPicksUpNewCertificates) {
  baton::testing::TestCertificates certs;
  const std::string cert = (dir_ / "srv.pem").string();
  const std::string key = (dir_ / "srv.key").string();
  std::filesystem::copy_file(certs.server_cert(), cert);
  std::filesystem::copy_file(certs.server_key(), key);
  ServerConfig c = Config();
  c.http.tls.cert_file = cert;
  c.http.tls.key_file = key;
  auto server = Server::Start(c, EchoService());
  ASSERT_TRUE(server.ok()) << server.status();
  const uint16_t port = static_cast<uint16_t>(
      std::stoi((*server)->http_address().substr(10)));
  EXPECT_EQ(PresentedSubject(port, certs.ca()), "/CN=localhost");
  std::filesystem::copy_file(certs.client_cert(), cert,
                             std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(certs.client_key(), key,
                             std::filesystem::copy_options::overwrite_existing);
  ASSERT_TRUE((*server)->ReloadCredentials().ok());
  EXPECT_EQ(PresentedSubject(port, certs.ca()), "/CN=client-1");
  std::ofstream(cert) << "not a certificate\n";
  absl::Status broken = (*server)->ReloadCredentials();
  EXPECT_EQ(broken.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(broken.message().find(cert), std::string::npos) << broken;
  EXPECT_EQ(PresentedSubject(port, certs.ca()), "/CN=client-1");
  // A plain-text request to the TLS listener gets no answer.
  EXPECT_EQ(Call((*server)->http_address(), "POST", "/n").status, 0);
}

TEST_F(ServerTest, UnusableTlsFilesAreAConfigError) {
  ServerConfig c = Config();
  c.http.tls.cert_file = (dir_ / "missing.pem").string();
  c.http.tls.key_file = (dir_ / "missing.key").string();
  auto s = Server::Start(c, EchoService());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("missing.pem"), std::string::npos)
      << s.status();
}

}  // namespace
}  // namespace baton::framework
