// The retrying client over TLS (HTTP on Beast's ssl_stream, gRPC with
// SslCredentials) against minimal TLS servers started here, with throwaway
// certificates made here: a trusted server answers (and its connection is
// reused); a server signed by another CA, or whose certificate does not name
// the host, ends the call at once with kUnauthenticated, not retried and
// nothing delivered; mutual TLS works and a missing or foreign client
// certificate is refused the same way; a plain-text client reaching a TLS
// server, and a TLS client reaching a plain-text one, end at once with
// kFailedPrecondition that says so; bad files are refused when the transport
// is made.
#include <utility>  // Before Asio: Boost 1.74 uses std::exchange without it.

#include <sys/socket.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "boost/asio.hpp"
#include "boost/asio/ssl.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "boost/beast/ssl.hpp"
#include "framework/client/client.h"
#include "framework/client/transport.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/framework/client_tls_certs.h"
#include "tests/framework/client_test_server.h"

namespace baton::framework::client {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

struct MiniServerOptions {
  const testing::TestCertificates* certs = nullptr;
  // Require a client certificate signed by the test CA.
  bool require_client_cert = false;
};

// A minimal HTTPS/1.1 server: answers every request 200 with the client
// certificate's CN (or "-") and the Baton-Seq header in the body. Counts
// TLS connections and requests. A thread per connection.
class MiniHttpsServer {
 public:
  explicit MiniHttpsServer(MiniServerOptions o) : ctx_(ssl::context::tls_server) {
    ctx_.use_certificate_chain_file(o.certs->server_cert());
    ctx_.use_private_key_file(o.certs->server_key(), ssl::context::pem);
    if (o.require_client_cert) {
      ctx_.load_verify_file(o.certs->ca());
      ctx_.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
    }
    acceptor_.open(tcp::v4());
    acceptor_.bind({net::ip::make_address("127.0.0.1"), 0});
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }
  ~MiniHttpsServer() {
    stopping_ = true;
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
    accept_thread_.join();
    {
      absl::MutexLock lock(&mu_);
      for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
    }
    for (std::thread& t : threads_) t.join();
  }
  uint16_t port() const { return port_; }
  int connections() const { return connections_.load(); }
  int requests() const { return requests_.load(); }

 private:
  void AcceptLoop() {
    for (;;) {
      beast::error_code ec;
      tcp::socket s(ioc_);
      acceptor_.accept(s, ec);
      if (ec || stopping_) return;
      absl::MutexLock lock(&mu_);
      fds_.push_back(s.native_handle());
      threads_.emplace_back([this, s = std::move(s)]() mutable { Serve(std::move(s)); });
    }
  }
  void Serve(tcp::socket s) {
    beast::ssl_stream<tcp::socket> stream(std::move(s), ctx_);
    beast::error_code ec;
    stream.handshake(ssl::stream_base::server, ec);
    if (ec) return;
    ++connections_;
    std::string peer = "-";
    if (X509* x = SSL_get1_peer_certificate(stream.native_handle())) {
      char cn[256] = {0};
      X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn);
      peer = cn;
      X509_free(x);
    }
    beast::flat_buffer buffer;
    for (;;) {
      http::request<http::string_body> req;
      http::read(stream, buffer, req, ec);
      if (ec) return;
      ++requests_;
      http::response<http::string_body> res{http::status::ok, 11};
      res.set(http::field::content_type, "application/json");
      res.body() = "{\"peer\":\"" + peer + "\",\"seq\":\"" +
                   std::string(req["Baton-Seq"]) + "\"}";
      res.keep_alive(req.keep_alive());
      res.prepare_payload();
      http::write(stream, res, ec);
      if (ec || !req.keep_alive()) return;
    }
  }

  net::io_context ioc_;
  ssl::context ctx_;
  tcp::acceptor acceptor_{ioc_};
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> connections_{0};
  std::atomic<int> requests_{0};
  std::thread accept_thread_;
  absl::Mutex mu_;
  std::vector<int> fds_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
};

// A minimal gRPC server (generic callback service): every method answers OK
// with the client certificate's CN (or "-") and counts calls. TLS unless
// `certs` is null.
class MiniGrpcServer {
 public:
  explicit MiniGrpcServer(MiniServerOptions o) {
    std::shared_ptr<grpc::ServerCredentials> creds = grpc::InsecureServerCredentials();
    if (o.certs != nullptr) {
      grpc::SslServerCredentialsOptions so(
          o.require_client_cert
              ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
              : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
      so.pem_root_certs = o.require_client_cert ? Read(o.certs->ca()) : "";
      so.pem_key_cert_pairs.push_back(
          {Read(o.certs->server_key()), Read(o.certs->server_cert())});
      creds = grpc::SslServerCredentials(so);
    }
    grpc::ServerBuilder b;
    int port = 0;
    b.AddListeningPort("127.0.0.1:0", creds, &port);
    b.RegisterCallbackGenericService(&service_);
    server_ = b.BuildAndStart();
    port_ = port;
  }
  ~MiniGrpcServer() { server_->Shutdown(); }
  std::string target() const { return "localhost:" + std::to_string(port_); }
  uint16_t port() const { return static_cast<uint16_t>(port_); }
  int calls() const { return service_.calls.load(); }

 private:
  static std::string Read(const std::string& path) {
    std::FILE* f = std::fopen(path.c_str(), "r");
    std::string s;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
    std::fclose(f);
    return s;
  }

  class Service : public grpc::CallbackGenericService {
   public:
    std::atomic<int> calls{0};
    grpc::ServerGenericBidiReactor* CreateReactor(
        grpc::GenericCallbackServerContext* ctx) override {
      ++calls;
      std::string peer = "-";
      auto auth = ctx->auth_context();
      if (auth) {
        for (const auto& v : auth->FindPropertyValues("x509_common_name")) {
          peer = std::string(v.data(), v.size());
        }
      }
      return new Reactor(peer);
    }

   private:
    class Reactor : public grpc::ServerGenericBidiReactor {
     public:
      explicit Reactor(std::string peer) : slice_(peer), reply_(&slice_, 1) {
        StartRead(&request_);
      }
      void OnReadDone(bool ok) override {
        if (!ok) {
          Finish(grpc::Status::OK);
          return;
        }
        StartWriteAndFinish(&reply_, grpc::WriteOptions(), grpc::Status::OK);
      }
      void OnWriteDone(bool) override {}
      void OnDone() override { delete this; }

     private:
      grpc::ByteBuffer request_;
      grpc::Slice slice_;
      grpc::ByteBuffer reply_;
    };
  };

  Service service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

ClientOptions Options() {
  ClientOptions o;
  o.retry.deadline = absl::Seconds(20);
  o.retry.attempt_timeout = absl::Seconds(5);
  o.async_threads = 1;
  return o;
}

const Call kHttpCall{"POST", "/kv/a/incr", "{}"};
const Call kGrpcCall{"/test.Echo/Call", "", "x"};

std::unique_ptr<RetryingClient> HttpsClient(uint16_t port, TlsOptions tls,
                                            std::string host = "localhost") {
  tls.enabled = true;
  HttpTransportOptions o;
  o.host = std::move(host);
  o.port = port;
  o.tls = std::move(tls);
  auto t = MakeHttpTransport(o);
  EXPECT_TRUE(t.ok()) << t.status();
  return std::make_unique<RetryingClient>(*std::move(t), Options());
}

std::unique_ptr<RetryingClient> GrpcClient(const std::string& target,
                                           std::optional<TlsOptions> tls) {
  GrpcTransportOptions o;
  o.target = target;
  if (tls) {
    o.tls = *tls;
    o.tls.enabled = true;
  }
  auto t = MakeGrpcTransport(o);
  EXPECT_TRUE(t.ok()) << t.status();
  return std::make_unique<RetryingClient>(*std::move(t), Options());
}

// A call that ended at once with `code`, after one attempt, well before the
// deadline, and whose message contains `words`.
void ExpectFinalFailure(const CallResult& r, absl::StatusCode code,
                        const std::string& words) {
  EXPECT_EQ(r.status.code(), code) << r.status;
  EXPECT_EQ(r.attempts, 1) << r.status;
  EXPECT_LT(r.finished - r.started, absl::Seconds(3)) << r.status;
  EXPECT_NE(r.status.message().find(words), absl::string_view::npos) << r.status;
}

class ClientTlsTest : public ::testing::Test {
 protected:
  testing::TestCertificates certs_;
};

TEST_F(ClientTlsTest, HttpsToATrustedServerByNameAndByAddress) {
  MiniHttpsServer server({.certs = &certs_});
  auto c = HttpsClient(server.port(), {.ca_file = certs_.ca()});
  for (int i = 0; i < 3; ++i) {
    CallResult r = c->Send(kHttpCall);
    ASSERT_TRUE(r.status.ok()) << r.status;
    EXPECT_EQ(r.response.http_status, 200);
    EXPECT_EQ(r.response.body, "{\"peer\":\"-\",\"seq\":\"" + std::to_string(i + 1) + "\"}");
  }
  EXPECT_EQ(server.connections(), 1) << "the TLS connection is kept alive and reused";
  // The certificate also names 127.0.0.1 (an IP entry; no SNI is sent).
  auto by_ip = HttpsClient(server.port(), {.ca_file = certs_.ca()}, "127.0.0.1");
  EXPECT_TRUE(by_ip->Send(kHttpCall).status.ok());
}

TEST_F(ClientTlsTest, HttpsWrongCaIsFinalAndNothingIsSent) {
  MiniHttpsServer server({.certs = &certs_});
  auto c = HttpsClient(server.port(), {.ca_file = certs_.other_ca()});
  ExpectFinalFailure(c->Send(kHttpCall), absl::StatusCode::kUnauthenticated,
                     "not trusted");
  EXPECT_EQ(server.requests(), 0);
}

TEST_F(ClientTlsTest, HttpsWrongHostNameIsFinal) {
  MiniHttpsServer server({.certs = &certs_});
  auto c = HttpsClient(server.port(),
                       {.ca_file = certs_.ca(), .server_name = "kv.example"});
  CallResult r = c->Send(kHttpCall);
  ExpectFinalFailure(r, absl::StatusCode::kUnauthenticated, "hostname mismatch");
  EXPECT_EQ(server.requests(), 0);
  // The system store does not know the test CA either.
  auto sys = HttpsClient(server.port(), {});
  ExpectFinalFailure(sys->Send(kHttpCall), absl::StatusCode::kUnauthenticated,
                     "system CA store");
}

TEST_F(ClientTlsTest, HttpsMutualTls) {
  MiniHttpsServer server({.certs = &certs_, .require_client_cert = true});
  auto good = HttpsClient(server.port(), {.ca_file = certs_.ca(),
                                          .cert_file = certs_.client_cert(),
                                          .key_file = certs_.client_key()});
  CallResult r = good->Send(kHttpCall);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.response.body, "{\"peer\":\"client-1\",\"seq\":\"1\"}");

  auto none = HttpsClient(server.port(), {.ca_file = certs_.ca()});
  ExpectFinalFailure(none->Send(kHttpCall), absl::StatusCode::kUnauthenticated,
                     "refused this client's certificate");
  auto rogue = HttpsClient(server.port(), {.ca_file = certs_.ca(),
                                           .cert_file = certs_.rogue_client_cert(),
                                           .key_file = certs_.rogue_client_key()});
  ExpectFinalFailure(rogue->Send(kHttpCall), absl::StatusCode::kUnauthenticated,
                     "refused this client's certificate");
  EXPECT_EQ(server.requests(), 1);
}

TEST_F(ClientTlsTest, PlainHttpClientToTlsServerFailsClearly) {
  MiniHttpsServer server({.certs = &certs_});
  auto t = MakeHttpTransport({.host = "127.0.0.1", .port = server.port()});
  ASSERT_TRUE(t.ok());
  RetryingClient c(*std::move(t), Options());
  ExpectFinalFailure(c.Send(kHttpCall), absl::StatusCode::kFailedPrecondition,
                     "speaks TLS");
  EXPECT_EQ(server.requests(), 0);
}

TEST_F(ClientTlsTest, HttpsClientToPlainServerFailsClearly) {
  testing::SlowCountingServer server(absl::ZeroDuration());  // baton's, plain.
  ASSERT_TRUE(server.ok());
  auto c = HttpsClient(server.port(), {.ca_file = certs_.ca()});
  ExpectFinalFailure(c->Send(kHttpCall), absl::StatusCode::kFailedPrecondition,
                     "does not speak TLS");
  EXPECT_EQ(server.executions(), 0);
}

// End to end against baton's own HTTP front end with TLS and client
// certificates (framework/tls.h): the principal is the client certificate's
// subject; a hedged write over TLS executes once.
TEST_F(ClientTlsTest, AgainstTheFrameworkHttpServerWithMutualTls) {
  framework::TlsServerOptions tls;
  tls.cert_file = certs_.server_cert();
  tls.key_file = certs_.server_key();
  tls.client_ca_file = certs_.ca();
  testing::SlowCountingServer server(absl::Milliseconds(100), tls);
  ASSERT_TRUE(server.ok());
  const uint16_t port = server.port();

  HttpTransportOptions ho;
  ho.host = "localhost";
  ho.port = port;
  ho.tls = {.enabled = true, .ca_file = certs_.ca(), .cert_file = certs_.client_cert(),
            .key_file = certs_.client_key()};
  auto t = MakeHttpTransport(ho);
  ASSERT_TRUE(t.ok()) << t.status();
  ClientOptions co = Options();
  co.retry.hedge.enabled = true;
  co.retry.hedge.delay = absl::Milliseconds(20);
  RetryingClient c(*std::move(t), co);
  CallResult r = c.Send(kHttpCall);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.response.http_status, 200) << r.response.body;
  EXPECT_EQ(r.response.body, "{\"n\":1,\"principal\":\"CN=client-1\"}");
  EXPECT_EQ(r.hedges, 1);
  EXPECT_EQ(server.executions(), 1) << "a hedged write over TLS executes once";

  ExpectFinalFailure(HttpsClient(port, {.ca_file = certs_.ca()})->Send(kHttpCall),
                     absl::StatusCode::kUnauthenticated,
                     "refused this client's certificate");
  ExpectFinalFailure(HttpsClient(port, {.ca_file = certs_.other_ca(),
                                        .cert_file = certs_.client_cert(),
                                        .key_file = certs_.client_key()})
                         ->Send(kHttpCall),
                     absl::StatusCode::kUnauthenticated, "not trusted");
  auto plain = MakeHttpTransport({.host = "127.0.0.1", .port = port});
  ASSERT_TRUE(plain.ok());
  RetryingClient pc(*std::move(plain), Options());
  ExpectFinalFailure(pc.Send(kHttpCall), absl::StatusCode::kFailedPrecondition,
                     "speaks TLS");
  EXPECT_EQ(server.executions(), 1);
}

TEST_F(ClientTlsTest, BadFilesAreRefusedWhenTheTransportIsMade) {
  auto make = [](TlsOptions tls) {
    tls.enabled = true;
    HttpTransportOptions h;
    h.tls = tls;
    GrpcTransportOptions g;
    g.tls = tls;
    absl::Status hs = MakeHttpTransport(h).status();
    absl::Status gs = MakeGrpcTransport(g).status();
    EXPECT_EQ(hs.code(), gs.code()) << hs << " / " << gs;
    return hs;
  };
  EXPECT_EQ(make({.ca_file = certs_.Path("missing.pem")}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(make({.ca_file = certs_.server_key()}).code(),
            absl::StatusCode::kInvalidArgument);  // No certificate in it.
  EXPECT_EQ(make({.cert_file = certs_.client_cert()}).code(),
            absl::StatusCode::kInvalidArgument);  // Certificate without key.
  absl::Status mismatch = make({.cert_file = certs_.client_cert(),
                                .key_file = certs_.server_key()});
  EXPECT_EQ(mismatch.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(mismatch.message().find("does not belong"), absl::string_view::npos)
      << mismatch;
  EXPECT_TRUE(make({.ca_file = certs_.ca(), .cert_file = certs_.client_cert(),
                    .key_file = certs_.client_key()})
                  .ok());
}

TEST_F(ClientTlsTest, GrpcToATrustedServer) {
  MiniGrpcServer server({.certs = &certs_});
  auto c = GrpcClient(server.target(), TlsOptions{.ca_file = certs_.ca()});
  CallResult r = c->Send(kGrpcCall);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.response.code, absl::StatusCode::kOk) << r.response.body;
  EXPECT_EQ(r.response.body, "-");
}

TEST_F(ClientTlsTest, GrpcWrongCaAndWrongNameAreFinal) {
  MiniGrpcServer server({.certs = &certs_});
  auto wrong_ca = GrpcClient(server.target(), TlsOptions{.ca_file = certs_.other_ca()});
  ExpectFinalFailure(wrong_ca->Send(kGrpcCall), absl::StatusCode::kUnauthenticated,
                     "not trusted");
  auto wrong_name = GrpcClient(
      server.target(), TlsOptions{.ca_file = certs_.ca(), .server_name = "kv.example"});
  ExpectFinalFailure(wrong_name->Send(kGrpcCall), absl::StatusCode::kUnauthenticated,
                     "not trusted");
  EXPECT_EQ(server.calls(), 0);
}

TEST_F(ClientTlsTest, GrpcMutualTls) {
  MiniGrpcServer server({.certs = &certs_, .require_client_cert = true});
  auto good = GrpcClient(server.target(), TlsOptions{.ca_file = certs_.ca(),
                                                     .cert_file = certs_.client_cert(),
                                                     .key_file = certs_.client_key()});
  CallResult r = good->Send(kGrpcCall);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.response.body, "client-1");
  auto none = GrpcClient(server.target(), TlsOptions{.ca_file = certs_.ca()});
  ExpectFinalFailure(none->Send(kGrpcCall), absl::StatusCode::kUnauthenticated,
                     "refused this client's certificate");
  auto rogue = GrpcClient(server.target(),
                          TlsOptions{.ca_file = certs_.ca(),
                                     .cert_file = certs_.rogue_client_cert(),
                                     .key_file = certs_.rogue_client_key()});
  ExpectFinalFailure(rogue->Send(kGrpcCall), absl::StatusCode::kUnauthenticated,
                     "refused this client's certificate");
  EXPECT_EQ(server.calls(), 1);
}

TEST_F(ClientTlsTest, GrpcPlainClientToTlsServerAndTheReverseFailClearly) {
  MiniGrpcServer tls_server({.certs = &certs_});
  auto plain = GrpcClient(tls_server.target(), std::nullopt);
  ExpectFinalFailure(plain->Send(kGrpcCall), absl::StatusCode::kFailedPrecondition,
                     "speaks TLS");
  MiniGrpcServer plain_server({});
  auto tls = GrpcClient(plain_server.target(), TlsOptions{.ca_file = certs_.ca()});
  ExpectFinalFailure(tls->Send(kGrpcCall), absl::StatusCode::kFailedPrecondition,
                     "does not speak TLS");
}

}  // namespace
}  // namespace baton::framework::client
